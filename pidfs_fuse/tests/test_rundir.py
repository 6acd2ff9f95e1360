"""The run directory's rules and the mountinfo parser, without a mount."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time

import pytest

from pidfs_fuse import rundir

LINE = ("69 27 0:42 / /tmp/a\\040b\\134c rw,nosuid,nodev,relatime shared:1 - fuse.pidfs pidfs_fuse "
        "rw,user_id=1000,group_id=1000,default_permissions")


def test_mountinfo_line_with_escapes_and_optional_fields():
    [m] = rundir.parse_mountinfo(LINE + "\n")
    assert (m.mount_id, m.dev, m.mountpoint, m.fstype, m.source) == (
        69, "0:42", "/tmp/a b\\c", "fuse.pidfs", "pidfs_fuse")
    assert m.user_id == 1000 and rundir.is_ours(m)
    assert rundir.parse_mountinfo("garbage\n") == []


@pytest.mark.parametrize("uid, env, expected", [
    (0, {"XDG_RUNTIME_DIR": "/run/user/0"}, "/run/pidfs-fuse"),
    (65534, {}, "{tmp}/pidfs-fuse-65534"),
    (65534, {"XDG_RUNTIME_DIR": "relative"}, "{tmp}/pidfs-fuse-65534"),
    (65534, {"XDG_RUNTIME_DIR": "/run/user/0"}, "{tmp}/pidfs-fuse-65534"),  # not theirs
], ids=["root", "no-xdg", "relative-xdg", "someone-elses-xdg"])
def test_run_dir_path(uid, env, expected):
    assert rundir.run_dir_path(uid, env) == expected.format(tmp=tempfile.gettempdir())


def test_private_xdg_runtime_dir_is_used(tmp_path):
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    uid = os.geteuid()
    if uid == 0:  # root's is always /run/pidfs-fuse: check the rule for another user
        uid = 65534
        os.chown(xdg, uid, uid)
    assert rundir.run_dir_path(uid, {"XDG_RUNTIME_DIR": str(xdg)}) == f"{xdg}/pidfs-fuse"
    os.chmod(xdg, 0o755)
    assert rundir.run_dir_path(uid, {"XDG_RUNTIME_DIR": str(xdg)}) != f"{xdg}/pidfs-fuse"


def test_sweep_removes_what_older_versions_left_and_dead_records(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir, "run_dir_path", lambda *a, **k: str(tmp_path))
    monkeypatch.setattr(rundir, "mountinfo", lambda *a, **k: [])
    dead = 2**22 + 7  # above any pid_max: no such process
    (tmp_path / "aaaa.pid").write_text(f"{dead}\n")
    (tmp_path / "aaaa.pid.log").write_text("old\n")
    (tmp_path / "bbbb.pid").write_text(f"{os.getpid()}\n")  # a live server of an old version
    (tmp_path / "bbbb.pid.log").write_text("")
    (tmp_path / "cccc.pid.log").write_text("")  # a mount starting right now
    old = tmp_path / "dddd.pid.log"
    old.write_text("")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    log = tmp_path / "eeee.log"
    log.write_text("x")
    rec = rundir.Record("/nowhere", dead, 1, time.time(), log=str(log))
    (tmp_path / (rundir.mount_key("/nowhere", resolved=True) + ".json")).write_text(
        json.dumps(dataclasses.asdict(rec)))
    rundir.sweep()
    assert sorted(os.listdir(tmp_path)) == ["aaaa.pid.log", "bbbb.pid", "bbbb.pid.log", "cccc.pid.log"]
    rundir.sweep()  # aaaa's log is young and now has no pid file: it goes after the hour
    assert "aaaa.pid.log" in os.listdir(tmp_path)
