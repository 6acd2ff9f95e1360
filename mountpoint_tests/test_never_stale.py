"""After any change the very next read, stat or lookup shows it, despite the kernel's caches."""

from __future__ import annotations

import os

import pytest


def _read(p) -> str:
    with open(p) as f:
        return f.read()


def test_reused_pid_shows_the_new_process_at_once(mnt):
    old = mnt.new(1, "comm=first", "set_tid=700")
    assert old == 700
    assert "Name:\tfirst" in _read(mnt / "700" / "status")
    st_old = os.stat(mnt / "700")
    mnt.ctl("exit_group", "700", "0")
    mnt.ctl("wait", "1", "pid=700")
    with pytest.raises(FileNotFoundError):
        os.stat(mnt / "700")
    assert mnt.new(1, "comm=second", "set_tid=700") == 700
    assert "Name:\tsecond" in _read(mnt / "700" / "status")
    assert _read(mnt / "700" / "comm") == "second\n"
    assert os.stat(mnt / "700").st_ino != st_old.st_ino


def test_exit_and_reap_are_visible_immediately(mnt):
    pid = mnt.new(1, "comm=short")
    assert "State:\tS (sleeping)" in _read(mnt / str(pid) / "status")
    mnt.ctl("exit_group", str(pid), "4")
    assert "State:\tZ (zombie)" in _read(mnt / str(pid) / "status")
    assert " Z " in _read(mnt / str(pid) / "stat")
    assert mnt.ctl("wait", "1", f"pid={pid}") == f"{pid} exited 4\n"
    assert not os.path.exists(mnt / str(pid))
    assert str(pid) not in os.listdir(mnt.path)


def test_exec_and_set_change_the_files_at_once(mnt):
    pid = mnt.new(1, "comm=before")
    status = mnt / str(pid) / "status"
    size_before = os.stat(status).st_size
    assert size_before == len(_read(status).encode())
    mnt.ctl("exec", str(pid), "comm=after-a-much-longer-name", "argv=after --flag")
    assert _read(mnt / str(pid) / "comm") == "after-a-much-lo\n"
    assert _read(mnt / str(pid) / "cmdline") == "after\0--flag\0"
    # unlike procfs (size 0), the mount gives a per-pid file its length, so `stat` must not
    # keep the old one: "Name:\tbefore" became "Name:\tafter-a-much-lo" (the comm limit)
    text = _read(status)
    assert "Name:\tafter-a-much-lo\n" in text
    assert os.stat(status).st_size == len(text.encode()) == size_before + len("after-a-much-lo") - len("before")
    mnt.ctl("set", str(pid), "state=R", "uid=1000")
    assert "State:\tR (running)" in _read(mnt / str(pid) / "status")
    assert os.stat(mnt / str(pid)).st_uid == 1000


def test_thread_count_follows_clone_and_exit(mnt):
    pid = mnt.new(1, "comm=grow")
    assert "Threads:\t1" in _read(mnt / str(pid) / "status")
    tids = mnt.ctl("clone", str(pid), "thread", "count=3").split()
    assert "Threads:\t4" in _read(mnt / str(pid) / "status")
    mnt.ctl("exit", tids[0], "0")
    assert "Threads:\t3" in _read(mnt / str(pid) / "status")
    assert not os.path.exists(mnt / str(pid) / "task" / tids[0])


def test_reparenting_shows_in_ppid(mnt):
    parent = mnt.new(1, "comm=parent")
    child = int(mnt.ctl("clone", str(parent), "comm=child").split()[0])
    assert f"PPid:\t{parent}" in _read(mnt / str(child) / "status")
    mnt.ctl("exit_group", str(parent), "0")
    assert "PPid:\t1" in _read(mnt / str(child) / "status")


def test_a_file_opened_before_its_task_died_reads_whole_after(mnt):
    """Opened alive, read once the task is a zombie and the kernel has the zombie's size (a
    stat, an `ls -l`): the read is the zombie's text, whole, as procfs renders at read time.
    It used to be the live text (read at open) cut at the zombie's length: a status ending in
    "Cpus_" that the soak saw under churn."""
    pid = mnt.new(1, "comm=opened")
    status = mnt / str(pid) / "status"
    live = _read(status)
    with open(status) as f:
        mnt.ctl("exit_group", str(pid), "0")
        zombie_size = os.stat(status).st_size
        text = f.read()
    assert "State:\tZ (zombie)" in text and "VmRSS" in live and "VmRSS" not in text
    assert len(text.encode()) == zombie_size < len(live.encode())
    assert text == _read(status)
