"""hidepid=, gid= and subset=pid, judged by the calling uid FUSE reports (a real non-root caller)."""

from __future__ import annotations

import os
import subprocess

import pytest


def as_user(uid: int, *cmd: str, groups: str | None = None) -> subprocess.CompletedProcess:
    pre = ["setpriv", f"--reuid={uid}", f"--regid={uid}"]
    pre += [f"--groups={groups}"] if groups else ["--clear-groups"]
    return subprocess.run([*pre, *cmd], capture_output=True, text=True, timeout=30)


@pytest.fixture
def users_table(mount_table):
    def make(opts: str):
        m = mount_table("-o", opts, public=True)
        alice = m.new(1, "comm=alice-job", "uid=1000", "gid=1000")
        return m, alice
    return make


def _pids(out: str) -> set[int]:
    return {int(x) for x in out.split() if x.isdigit()}


def test_hidepid_invisible_hides_other_users_processes(users_table):
    m, alice = users_table("hidepid=invisible,allow_other")
    r = as_user(1000, "ls", m.path)
    assert r.returncode == 0, r.stderr
    listed = _pids(r.stdout)
    table = _pids(" ".join(os.listdir(m.path)))  # root's listing: the table's processes
    mine = listed & table
    assert alice in mine and 1 not in mine
    assert len(listed - table) == 1  # ls itself, its own entry (Linux lists a task to itself)
    for p in mine:  # only uid 1000's processes
        with open(f"{m.path}/{p}/status") as f:
            assert "Uid:\t1000\t" in f.read()
    assert len(mine) < len(table)
    r = as_user(1000, "cat", f"{m.path}/1/status")
    assert r.returncode != 0 and "No such file" in r.stderr
    r = as_user(1000, "cat", f"{m.path}/{alice}/comm")
    assert r.stdout == "alice-job\n"
    assert 1 in _pids(subprocess.run(["ls", m.path], capture_output=True, text=True).stdout)


def test_hidepid_noaccess_lists_but_denies(users_table):
    m, alice = users_table("hidepid=1,allow_other")
    r = as_user(1000, "ls", m.path)
    assert 1 in _pids(r.stdout) and alice in _pids(r.stdout)
    r = as_user(1000, "cat", f"{m.path}/1/status")
    assert r.returncode != 0 and "Operation not permitted" in r.stderr
    assert as_user(1000, "cat", f"{m.path}/{alice}/comm").stdout == "alice-job\n"


def test_gid_option_exempts_a_group(users_table):
    m, _alice = users_table("hidepid=2,gid=4242,allow_other")
    r = as_user(1000, "ls", m.path, groups="4242")
    assert 1 in _pids(r.stdout)
    r = as_user(1000, "cat", f"{m.path}/1/comm", groups="4242")
    assert r.returncode == 0, r.stderr


def test_subset_pid_shows_only_processes(users_table):
    m, alice = users_table("subset=pid")
    names = os.listdir(m.path)
    assert "meminfo" not in names and "stat" not in names
    assert "1" in names and str(alice) in names and "self" in names
    assert not os.path.exists(os.path.join(m.path, "meminfo"))
