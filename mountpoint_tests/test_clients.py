"""Real /proc clients against the mount: procps, psmisc and psutil see the table the model holds.

procps and psmisc only read /proc, so they run in a private mount namespace with the mount bound
over /proc. The expected table comes from loading the same embedded scenario in this process:
loading is deterministic, so numbers, parents, names, thread counts and states must agree.
"""

from __future__ import annotations

import os
import re

import pytest

from pidfs_fuse import scenario

from .conftest import in_private_proc


@pytest.fixture(scope="module")
def table():
    k = scenario.load_default().kernel
    ns = k.root_ns
    rows = {}
    for nr, t in k.iter_tgids(ns):
        parent = t.group.parent
        rows[nr] = dict(ppid=parent.group.leader.pid.nr_in(ns) if parent is not None else 0,
                        comm=t.comm, nlwp=len(t.group.threads), state=t.display_state,
                        uid=t.group.uid, argv=list(t.group.argv),
                        tids=[th.pid.nr_in(ns) for th in t.group.threads])
    return rows


def _ps(mount, args):
    r = in_private_proc(mount, f"ps {args}")
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_ps_ef_lists_every_process_with_its_parent(shared_mnt, table):
    lines = _ps(shared_mnt, "-e -o pid=,ppid=,comm=")
    got = {}
    for ln in lines:
        pid, ppid, comm = ln.split(None, 2)
        got[int(pid)] = (int(ppid), comm.strip())
    assert got == {nr: (row["ppid"], row["comm"]) for nr, row in table.items()}


def test_ps_ef_full_format_runs(shared_mnt, table):
    lines = _ps(shared_mnt, "-ef")
    assert lines[0].split()[:3] == ["UID", "PID", "PPID"]
    assert sorted(int(ln.split()[1]) for ln in lines[1:]) == sorted(table)


def test_ps_eLf_shows_every_thread(shared_mnt, table):
    lines = _ps(shared_mnt, "-eL -o pid=,lwp=,nlwp=")
    got: dict[int, list[int]] = {}
    for ln in lines:
        pid, lwp, nlwp = map(int, ln.split())
        got.setdefault(pid, []).append(lwp)
        assert nlwp == table[pid]["nlwp"]
    assert got == {nr: row["tids"] for nr, row in table.items()}


def test_ps_aux_states_and_users(shared_mnt, table):
    lines = _ps(shared_mnt, "-e -o pid=,stat=,uid=")
    for ln in lines:
        pid, st, uid = ln.split()
        assert st[0] == table[int(pid)]["state"], ln
        assert int(uid) == table[int(pid)]["uid"]
    r = in_private_proc(shared_mnt, "ps aux")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == len(table) + 1


def test_pgrep_and_pidof_find_processes_by_name(shared_mnt, table):
    # pidof matches argv[0]'s basename, pgrep -x the 15-character comm: pick a name both agree on
    name = next(row["comm"] for nr, row in table.items() if nr != 1 and row["state"] != "Z"
                and row["argv"] and os.path.basename(row["argv"][0]) == row["comm"])
    want = sorted(nr for nr, row in table.items() if row["comm"] == name and row["state"] != "Z")
    r = in_private_proc(shared_mnt, f"pgrep -x {name}")
    assert sorted(map(int, r.stdout.split())) == want
    r = in_private_proc(shared_mnt, f"pgrep -a -x {name}")
    assert all(re.match(r"^\d+ ", ln) for ln in r.stdout.splitlines())
    r = in_private_proc(shared_mnt, f"pidof {name}")
    assert sorted(map(int, r.stdout.split())) == want


def test_top_batch_mode_runs(shared_mnt, table):
    r = in_private_proc(shared_mnt, "top -b -n1 -w 200")
    assert r.returncode == 0, r.stderr
    assert "Tasks:" in r.stdout
    pids = {int(ln.split()[0]) for ln in r.stdout.splitlines() if ln.strip()[:1].isdigit()}
    assert pids == set(table)


def test_pstree_shows_the_hierarchy(shared_mnt, table):
    r = in_private_proc(shared_mnt, "pstree -p -A -l 1")
    assert r.returncode == 0, r.stderr
    shown = {int(x) for x in re.findall(r"\((\d+)\)", r.stdout)}
    # pstree shows processes and (as {name}) threads
    want = set(table) | {t for row in table.values() for t in row["tids"]}
    assert shown == want


def test_psutil_reads_everything(shared_mnt, table):
    psutil = pytest.importorskip("psutil")
    old = psutil.PROCFS_PATH
    psutil.PROCFS_PATH = str(shared_mnt)
    try:
        seen = {}
        for p in psutil.process_iter(["name", "ppid", "status", "cmdline", "num_threads", "threads",
                                      "uids", "create_time"]):
            seen[p.pid] = p.info
        assert set(seen) == set(table)
        for nr, info in seen.items():
            row = table[nr]
            # psutil completes a 15-character comm from cmdline, as on real Linux
            assert info["name"] == row["comm"] or (len(row["comm"]) == 15 and
                                                   info["name"].startswith(row["comm"]))
            assert info["ppid"] == row["ppid"]
            assert info["num_threads"] == row["nlwp"]
            assert sorted(t.id for t in info["threads"]) == sorted(row["tids"])
            assert info["uids"].real == row["uid"]
            if row["state"] != "Z":
                want = row["argv"]
                if len(want) == 1 and " " in want[0]:  # a rewritten title: psutil splits at spaces
                    want = want[0].split(" ")
                assert info["cmdline"] == want
            else:
                assert info["status"] == psutil.STATUS_ZOMBIE
        kids = psutil.Process(1).children(recursive=True)
        assert sorted(c.pid for c in kids) == sorted(nr for nr in table if nr != 1)
    finally:
        psutil.PROCFS_PATH = old
