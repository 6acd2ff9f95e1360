"""Layout and formats of the mounted tree, read with coreutils and plain system calls."""

from __future__ import annotations

import errno
import os
import stat
import subprocess

import pytest


def _read(p) -> str:
    with open(p) as f:
        return f.read()


def test_root_lists_globals_then_pids_in_ascending_order(shared_mnt):
    names = os.listdir(shared_mnt.path)
    for g in ("self", "thread-self", "stat", "uptime", "loadavg", "meminfo", "cpuinfo", "version", "sys"):
        assert g in names
    pids = [int(n) for n in names if n.isdigit()]
    assert pids == sorted(pids) and pids[0] == 1
    first_pid = next(i for i, n in enumerate(names) if n.isdigit())
    assert all(n.isdigit() for n in names[first_pid:])


def test_pid_directory_has_the_files_clients_read(shared_mnt):
    names = set(os.listdir(shared_mnt / "1"))
    assert {"status", "stat", "statm", "cmdline", "comm", "environ", "cwd", "exe", "root", "fd",
            "fdinfo", "ns", "task", "pidfd"} <= names
    assert sorted(os.listdir(shared_mnt / "1" / "ns")) == ["cgroup", "ipc", "mnt", "net", "pid", "pid_for_children",
                                                         "time", "time_for_children", "user", "uts"]


def test_status_and_stat_of_init(shared_mnt):
    status = _read(shared_mnt / "1" / "status")
    lines = status.splitlines()
    assert lines[0].startswith("Name:\t")
    keys = [ln.split(":", 1)[0] for ln in lines]
    for k in ("Umask", "State", "Tgid", "Ngid", "Pid", "PPid", "TracerPid", "Uid", "Gid", "NStgid",
              "NSpid", "NSpgid", "NSsid", "Threads", "SigIgn"):
        assert k in keys
    assert keys.index("State") < keys.index("Tgid") < keys.index("Pid") < keys.index("PPid")
    assert "Pid:\t1" in lines and "PPid:\t0" in lines
    stat_ = _read(shared_mnt / "1" / "stat")
    assert stat_.endswith("\n")
    rest = stat_[stat_.rindex(")") + 2:].split()
    assert stat_.split()[0] == "1"
    assert len(rest) + 2 == 52


def test_modes_owners_and_links(shared_mnt):
    d = os.stat(shared_mnt / "1")
    assert stat.S_ISDIR(d.st_mode) and stat.S_IMODE(d.st_mode) == 0o555
    assert stat.S_IMODE(os.stat(shared_mnt / "1" / "environ").st_mode) == 0o400
    assert stat.S_IMODE(os.stat(shared_mnt / "1" / "status").st_mode) == 0o444
    assert stat.S_IMODE(os.stat(shared_mnt / ".control").st_mode) == 0o600
    assert os.readlink(shared_mnt / "1" / "ns" / "pid") == "pid:[4026531836]"
    assert os.readlink(shared_mnt / "self") == str(os.getpid())
    assert os.readlink(shared_mnt / "thread-self") == f"{os.getpid()}/task/{os.getpid()}"
    r = subprocess.run(["readlink", str(shared_mnt / "1" / "exe")], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip().startswith("/")


def test_directory_owner_is_the_tasks_uid(mnt):
    pid = mnt.new(1, "comm=alice", "uid=1000", "gid=1000")
    st = os.stat(mnt / str(pid))
    assert (st.st_uid, st.st_gid) == (1000, 1000)
    assert "Uid:\t1000\t1000\t1000\t1000" in _read(mnt / str(pid) / "status")


def test_comm_with_spaces_and_parentheses_round_trips(mnt):
    pid = mnt.new(1, "comm=a) (b")
    assert _read(mnt / str(pid) / "comm") == "a) (b\n"
    s = _read(mnt / str(pid) / "stat")
    assert s.startswith(f"{pid} (a) (b) S 1 ")
    assert len(s[s.rindex(")") + 2:].split()) == 50


def test_a_pid_that_exists_never_answers_enoent_for_its_files(mnt):
    pid = mnt.new(1, "comm=soon-zombie")
    mnt.ctl("exit_group", str(pid), "3")
    for name in ("status", "stat", "statm", "cmdline", "comm"):
        with open(mnt / str(pid) / name, "rb") as f:
            f.read()
    # Linux 6.18: the mm is gone, so environ fails with ESRCH (kernel_facts.json), not ENOENT
    with pytest.raises(ProcessLookupError):
        open(mnt / str(pid) / "environ", "rb").close()
    assert os.lstat(mnt / str(pid) / "environ").st_size == 0
    assert "State:\tZ (zombie)" in _read(mnt / str(pid) / "status")
    assert _read(mnt / str(pid) / "cmdline") == ""


def test_self_resolves_for_procps_observers(mnt):
    me = os.getpid()
    # the test process is not in the table, so /<me> answers with a hidden observer entry
    assert str(me) not in os.listdir(mnt.path)
    s = _read(mnt / str(me) / "stat")
    assert s.split()[0] == str(me)
    assert _read(mnt / "self" / "stat") == s


def test_pidns_views_show_the_tree_from_another_namespace(mnt):
    init = mnt.new(1, "newpid", "comm=cinit")
    child = int(mnt.ctl("clone", str(init), "comm=inside").split()[0])
    inum = os.readlink(mnt / str(init) / "ns" / "pid_for_children")
    inner = os.readlink(mnt / str(child) / "ns" / "pid")
    n = inner[len("pid:["):-1]
    view = mnt / ".pidns" / n
    assert sorted(int(x) for x in os.listdir(view) if x.isdigit()) == [1, 2]
    status = _read(view / "2" / "status")
    assert "Pid:\t2" in status and "PPid:\t1" in status
    assert f"NSpid:\t{child}\t2" in _read(mnt / str(child) / "status")
    assert inum.startswith("pid:[")


def test_sysctls_are_writable_with_the_kernels_bounds(mnt):
    p = mnt / "sys" / "kernel" / "pid_max"
    assert _read(p) == "32768\n"
    for bad in ("300", "4194305", "abc"):
        with pytest.raises(OSError) as e, open(p, "w") as f:
            f.write(bad)
        assert e.value.errno == errno.EINVAL
    with open(p, "w") as f:
        f.write("1000\n")
    assert _read(p) == "1000\n"
    with open(mnt / "sys" / "kernel" / "ns_last_pid", "w") as f:
        f.write("500")
    assert mnt.new(1) == 501
    assert _read(mnt / "sys" / "kernel" / "ns_last_pid") == "501\n"


def test_global_files_parse(shared_mnt):
    st = _read(shared_mnt / "stat")
    keys = {ln.split()[0] for ln in st.splitlines()}
    assert {"cpu", "btime", "processes", "procs_running"} <= keys
    up = _read(shared_mnt / "uptime").split()
    assert len(up) == 2 and float(up[0]) >= 0
    la = _read(shared_mnt / "loadavg").split()
    assert len(la) == 5 and "/" in la[3]
