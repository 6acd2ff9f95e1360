"""The control plane (``pidfs_fuse.control``) and the settable fields (``kernel.fields``).

Every command's happy path with its exact reply, its errnos, the syntax errors (which name the
token and show the usage), the blocking ``wait`` protocol (``WouldBlock`` then ``run()`` again),
and a fuzz: thousands of random and malformed lines, each of which must either succeed or raise
``KernelError`` (nothing else) and, when it fails, leave the model exactly as it was.
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import itertools
import json
import os
import random
import shlex
from pathlib import Path
from typing import Any

import pytest

from pidfs_fuse.control import COMMANDS, Call, Control, WouldBlock
from pidfs_fuse.kernel import (
    CLONE_NEWPID,
    EventKind,
    ExitState,
    Kernel,
    KernelError,
    Pid,
    PidNamespace,
    Task,
    ThreadGroup,
    restore,
)
from pidfs_fuse.kernel.fields import FIELDS, set_field, set_fields
from pidfs_fuse.tests.conftest import fuzz_budget

SIGCHLD = 17


def new_kernel(**kw: Any) -> Kernel:
    return Kernel(clock=itertools.count(1_000_000, 1_000_000).__next__, **kw)


@pytest.fixture
def k() -> Kernel:
    return new_kernel()


@pytest.fixture
def c(k: Kernel) -> Control:
    return Control(k)


def err(c: Control, line: str | bytes) -> KernelError:
    """Run ``line``, require a KernelError, and require that the model did not change."""
    before = dump(c.kernel)
    with pytest.raises(KernelError) as info:
        c.execute(line)
    assert dump(c.kernel) == before, f"failed line {line!r} changed the model"
    return info.value


def run(c: Control, *lines: str) -> list[str]:
    return [c.execute(line) for line in lines]


# -- a canonical dump of the whole model ----------------------------------------------------


def dump(k: Kernel) -> list[Any]:
    """Every slot of every object reachable from the kernel (namespaces, pids, tasks, thread
    groups, pid handles), as plain values; objects are named by identity (pids by pidfs inode,
    namespaces by inum), so a replaced object shows as a change."""
    names: dict[int, str] = {}
    out: list[Any] = [("kernel", restore.counters(k), k.nr_threads)]
    todo: list[Any] = [k.root_ns, k.init]

    def name(o: Any) -> str:
        if id(o) not in names:
            if isinstance(o, Pid):
                names[id(o)] = f"pid#{o.ino}"
            elif isinstance(o, PidNamespace):
                names[id(o)] = f"ns#{o.inum}"
            else:
                names[id(o)] = f"{type(o).__name__}#{len(names)}"
            todo.append(o)
        return names[id(o)]

    def val(v: Any) -> Any:
        if isinstance(v, (Task, ThreadGroup, Pid, PidNamespace)) or (
                dataclasses.is_dataclass(v) and not isinstance(v, type) and type(v).__name__ in ("PidFd", "PidAttr")):
            return name(v)
        if isinstance(v, dict):
            return tuple((val(a), val(b)) for a, b in v.items())
        if isinstance(v, (list, tuple)):
            return tuple(val(x) for x in v)
        if isinstance(v, enum.Enum):
            return repr(v)
        if hasattr(v, "items") and hasattr(v, "cursor"):  # the Idr
            return (v.cursor, len(v), v.tagged_count,
                    tuple((nr, val(p), v.is_tagged(nr)) for nr, p in v.items()))
        return v

    name(k.root_ns)
    name(k.init)
    while todo:
        o = todo.pop()
        slots = [s for cls in type(o).__mro__ for s in getattr(cls, "__slots__", ())]
        out.append((names[id(o)], tuple((s, val(getattr(o, s))) for s in slots)))
    return sorted(out, key=repr)


#: what a running clock moves by itself: the CPU times of running tasks
_TIME_FIELDS = frozenset({"utime", "stime", "cutime", "cstime"})


def _timeless(d: list[Any]) -> list[Any]:
    """``dump`` with the CPU times blanked out."""
    return [row if row[0] == "kernel" else
            (row[0], tuple((f, None if f in _TIME_FIELDS else v) for f, v in row[1])) for row in d]


def test_timeless_dump_ignores_cpu_times_only(k: Kernel) -> None:
    before = dump(k)
    k.init.utime += 3
    assert dump(k) != before and _timeless(dump(k)) == _timeless(before)
    k.init.nice = 5
    assert _timeless(dump(k)) != _timeless(before)


def test_dump_sees_a_field_a_cursor_and_a_new_task(k: Kernel) -> None:
    before = dump(k)
    k.init.group.rss = 5
    assert dump(k) != before
    before = dump(k)
    k.set_last_pid(k.root_ns, 50)
    assert dump(k) != before
    before = dump(k)
    k.clone(k.init)
    assert dump(k) != before
    assert dump(k) == dump(k)


# -- the command table ---------------------------------------------------------------------


def test_every_spec_command_is_in_the_table() -> None:
    spec = {"clone", "exit", "exit_group", "kill", "exec", "wait", "setsid", "setpgid",
            "subreaper", "unshare", "pid_max", "set", "snapshot", "setns", "ns_last_pid", "help"}
    assert spec <= set(COMMANDS)
    for name, cmd in COMMANDS.items():
        assert cmd.usage.split()[0] == name


def test_parse_binds_and_run_performs(c: Control, k: Kernel) -> None:
    call = c.parse("clone 1 comm=x")
    assert isinstance(call, Call) and call.name == "clone" and call.args == ("1", "comm=x")
    assert k.find_task(k.root_ns, 2) is None  # parsing changes nothing
    assert call.run() == "2\n"
    assert k.get_task(k.root_ns, 2).comm == "x"


def test_execute_accepts_bytes_and_a_trailing_newline(c: Control) -> None:
    assert c.execute(b"clone 1\n") == "2\n"


def test_help_lists_every_command_with_its_usage(c: Control) -> None:
    text = c.execute("help")
    assert text.splitlines() == [cmd.usage for cmd in COMMANDS.values()]
    assert text.splitlines()[0].startswith("clone PARENT [thread] [parent] [newpid] [pidfd]")
    one = c.execute("help wait")
    assert one.startswith("wait PARENT [pid=N | pgid=N] [nohang]")
    assert all(f"    {key}: " in c.execute("help set") for key in FIELDS)


# -- clone -----------------------------------------------------------------------------------


def test_clone_prints_new_tids_one_per_line(c: Control, k: Kernel) -> None:
    assert c.execute("clone 1") == "2\n"
    assert c.execute("clone 2 count=3") == "3\n4\n5\n"
    assert c.execute("clone 2 thread comm=worker") == "6\n"
    t = k.get_task(k.root_ns, 6)
    assert t.group is k.get_task(k.root_ns, 2).group and t.comm == "worker" and t.exit_signal == -1
    assert k.get_task(k.root_ns, 3).exit_signal == SIGCHLD  # the control plane's default


def test_clone_keys_reach_the_model(c: Control, k: Kernel) -> None:
    c.execute("""clone 1 'comm=a) (b' "argv=sleep '1 0'" uid=1000 gid=100 exit_signal=USR1""")
    t = k.get_task(k.root_ns, 2)
    assert (t.comm, t.group.argv, t.group.uid, t.group.gid, t.exit_signal) == (
        "a) (b", ("sleep", "1 0"), 1000, 100, 10)
    assert c.execute("clone 1 set_tid=77") == "77\n"
    assert c.execute("clone 1 comm=0123456789abcdefXYZ") == "3\n"
    assert k.get_task(k.root_ns, 3).comm == "0123456789abcde"


def test_clone_newpid_replies_in_the_view_namespace(c: Control, k: Kernel) -> None:
    assert c.execute("clone 1 newpid") == "2\n"
    ns = k.get_task(k.root_ns, 2).active_ns
    assert ns.level == 1
    assert c.execute("clone 2 count=2") == "3\n4\n"
    inner = Control(k, ns)
    assert inner.execute("clone 1") == "4\n"  # 2 and 3 inside; 5 at the root
    assert c.execute("show 5").splitlines()[9] == "NSpid:\t5 4"
    assert inner.execute("show 4").splitlines()[9] == "NSpid:\t4"
    assert err(inner, "show 5").errno == errno.ESRCH  # root's 5 is the inside's 4
    assert c.execute("clone 1 newpid set_tid=1,500") == "500\n"


def test_clone_pidfd_installs_a_descriptor_and_close_releases_it(c: Control, k: Kernel) -> None:
    assert c.execute("clone 1 pidfd wait_pid") == "2\n"
    assert sorted(k.init.group.files) == [3]
    assert c.execute("close 1 3") == ""
    assert not k.init.group.files
    assert err(c, "close 1 3").errno == errno.EBADF


def test_clone_autoreap_needs_exit_signal_0_as_in_linux(c: Control, k: Kernel) -> None:
    assert err(c, "clone 1 autoreap").errno == errno.EINVAL
    assert c.execute("clone 1 autoreap exit_signal=0") == "2\n"
    c.execute("exit_group 2 4")
    assert k.find_task(k.root_ns, 2) is None  # released at exit, nobody waits


def test_clone_autokill_kills_the_child_when_the_descriptor_closes(c: Control, k: Kernel) -> None:
    c.execute("clone 1 pidfd autoreap autokill exit_signal=0")
    c.execute("close 1 3")
    assert k.find_task(k.root_ns, 2) is None


@pytest.mark.parametrize(("line", "code"), [
    ("clone 9", errno.ESRCH),
    ("clone 1 wait_pid", errno.EINVAL),
    ("clone 1 thread newpid", errno.EINVAL),
    ("clone 1 set_tid=1", errno.EEXIST),
    ("clone 1 set_tid=40000", errno.EINVAL),
    ("clone 1 set_tid=5 count=2", errno.EINVAL),
    ("clone 1 exit_signal=99", errno.EINVAL),
    ("clone 1 count=0", errno.EINVAL),
    ("clone 1 count=4194304", errno.EAGAIN),
    ("clone 1 uid=4294967295", errno.EINVAL),
], ids=lambda v: v if isinstance(v, str) else None)
def test_clone_errors_change_nothing(c: Control, line: str, code: int) -> None:
    assert err(c, line).errno == code


def test_clone_as_an_unprivileged_parent(c: Control) -> None:
    c.execute("clone 1 uid=1000")
    for line in ("clone 2 uid=0", "clone 2 newpid", "clone 2 set_tid=50"):
        assert err(c, line).errno == errno.EPERM, line
    assert c.execute("clone 2 uid=1000") == "3\n"


def test_clone_count_stops_at_the_first_failure_and_says_what_it_made() -> None:
    k = new_kernel(pid_max=400)
    c = Control(k)
    c.execute("ns_last_pid 1 299")
    assert c.execute("clone 1 count=99").split() == [str(n) for n in range(300, 399)]
    with pytest.raises(KernelError) as info:  # 2..299 count as room, but wrapping skips them
        c.execute("clone 1 count=3")
    e = info.value
    assert e.errno == errno.EAGAIN
    assert "clone 2 of 3 failed after creating 1 task(s) (399)" in e.strerror
    assert k.find_task(k.root_ns, 399) is not None


# -- exit, exit_group, kill, exec ----------------------------------------------------------


def test_exit_one_thread_then_the_group(c: Control, k: Kernel) -> None:
    run(c, "clone 1", "clone 2 thread")
    assert c.execute("exit 3 5") == ""
    assert k.find_task(k.root_ns, 3) is None  # a thread is released at once
    assert c.execute("exit_group 2 7") == ""
    assert c.execute("wait 1") == "2 exited 7\n"


def test_exit_code_defaults_to_0(c: Control) -> None:
    run(c, "clone 1", "exit 2")
    assert c.execute("wait 1") == "2 exited 0\n"


@pytest.mark.parametrize(("line", "code"), [
    ("exit 1", errno.EPERM),  # the root init cannot exit
    ("exit_group 1", errno.EPERM),
    ("exit 9", errno.ESRCH),
    ("exit 1 256", errno.EINVAL),
    ("exit 1 -1", errno.EINVAL),
    ("exit_group 1 x", errno.EINVAL),
], ids=lambda v: v if isinstance(v, str) else None)
def test_exit_errors(c: Control, line: str, code: int) -> None:
    assert err(c, line).errno == code


@pytest.mark.parametrize(("sig", "reply"), [
    ("TERM", "2 killed 15\n"), ("SIGKILL", "2 killed 9\n"), ("9", "2 killed 9\n"),
    ("segv", "2 dumped 11\n"), ("HUP", "2 killed 1\n"),
], ids=lambda v: v.strip())
def test_kill_by_name_or_number(c: Control, sig: str, reply: str) -> None:
    c.execute("clone 1")
    assert c.execute(f"kill 2 {sig}") == ""
    assert c.execute("wait 1") == reply


def test_kill_comes_from_outside_every_namespace(c: Control, k: Kernel) -> None:
    run(c, "clone 1 newpid")
    c.execute("kill 2 TERM")  # a namespace init ignores TERM even from the root ...
    assert k.get_task(k.root_ns, 2).alive
    c.execute("kill 2 KILL")  # ... but SIGKILL from an ancestor reaches it
    assert c.execute("wait 1") == "2 killed 9\n"


def test_kill_from_a_sender_uses_its_uid(c: Control) -> None:
    run(c, "clone 1 uid=1000", "clone 1 uid=1001")
    assert err(c, "kill 3 TERM from=2").errno == errno.EPERM
    assert c.execute("kill 3 TERM from=1") == ""


@pytest.mark.parametrize(("line", "code"), [
    ("kill 2 FOO", errno.EINVAL), ("kill 2 65", errno.EINVAL), ("kill 2 ²", errno.EINVAL),
    ("kill 9 TERM", errno.ESRCH), ("kill 2", errno.EINVAL), ("kill 2 TERM from=9", errno.ESRCH),
], ids=lambda v: v if isinstance(v, str) else None)
def test_kill_errors(c: Control, line: str, code: int) -> None:
    c.execute("clone 1")
    assert err(c, line).errno == code


def test_exec_sets_comm_argv_exe(c: Control, k: Kernel) -> None:
    c.execute("clone 1")
    assert c.execute("exec 2 comm=bash 'argv=bash -l' exe=/usr/bin/bash") == ""
    g = k.get_task(k.root_ns, 2).group
    assert (g.leader.comm, g.argv, g.exe) == ("bash", ("bash", "-l"), "/usr/bin/bash")


def test_exec_by_a_thread_takes_the_leaders_pid(c: Control, k: Kernel) -> None:
    run(c, "clone 1", "clone 2 thread comm=t")
    c.execute("exec 3 comm=new")
    assert k.get_task(k.root_ns, 2).comm == "new"
    assert k.find_task(k.root_ns, 3) is None


@pytest.mark.parametrize(("line", "code"), [
    ("exec 2", errno.EINVAL), ("exec 2 argv=x", errno.EINVAL), ("exec 2 comm=", errno.EINVAL),
    ("exec 2 comm=x exe=relative", errno.EINVAL), ("exec 9 comm=x", errno.ESRCH),
], ids=lambda v: v if isinstance(v, str) else None)
def test_exec_errors(c: Control, line: str, code: int) -> None:
    c.execute("clone 1")
    assert err(c, line).errno == code


# -- wait ------------------------------------------------------------------------------------


def test_wait_nohang_prints_0_and_blocking_wait_raises_wouldblock(c: Control) -> None:
    c.execute("clone 1")
    assert c.execute("wait 1 nohang") == "0\n"
    call = c.parse("wait 1")
    with pytest.raises(WouldBlock) as info:
        call.run()
    assert info.value.waiter.pid.nr == 1
    c.execute("exit 2 3")
    assert call.run() == "2 exited 3\n"  # the same Call, run again after the event


def test_wait_without_children_is_echild(c: Control) -> None:
    assert err(c, "wait 1").errno == errno.ECHILD
    assert err(c, "wait 1 nohang").errno == errno.ECHILD


def test_wait_for_one_pid_or_one_group(c: Control) -> None:
    run(c, "clone 1", "clone 1", "exit 2 1", "exit 3 2")
    assert c.execute("wait 1 pid=3") == "3 exited 2\n"
    run(c, "clone 1", "setpgid 4 0", "exit 4 9")
    assert c.execute("wait 1 pgid=4") == "4 exited 9\n"
    assert c.execute("wait 1 pgid=0") == "2 exited 1\n"  # the waiter's own group
    assert err(c, "wait 1 pid=99").errno == errno.ECHILD
    assert err(c, "wait 1 pid=2 pgid=2").errno == errno.EINVAL


def test_wait_stays_bound_to_the_struct_pid_it_named(c: Control, k: Kernel) -> None:
    c.execute("clone 1")
    call = c.parse("wait 1 pid=2")
    run(c, "exit 2", "wait 1")  # someone else reaps 2
    with pytest.raises(KernelError) as info:
        call.run()
    assert info.value.errno == errno.ECHILD


def test_wait_nowait_leaves_the_zombie(c: Control) -> None:
    run(c, "clone 1", "exit 2 4")
    assert c.execute("wait 1 nowait") == "2 exited 4\n"
    assert c.execute("wait 1") == "2 exited 4\n"


def test_wait_stopped_and_continued(c: Control) -> None:
    run(c, "clone 1", "kill 2 STOP")
    assert c.execute("wait 1 nohang") == "0\n"  # WEXITED alone does not see a stop
    assert c.execute("wait 1 stopped") == "2 stopped 19\n"
    c.execute("kill 2 CONT")
    assert c.execute("wait 1 continued") == "2 continued\n"
    c.execute("exit 2 6")
    assert c.execute("wait 1 stopped continued") == "2 exited 6\n"  # WEXITED is always on


def test_wait_all_sees_clone_children(c: Control) -> None:
    run(c, "clone 1 exit_signal=USR1", "exit 2")
    assert err(c, "wait 1 nohang").errno == errno.ECHILD
    assert c.execute("wait 1 all") == "2 exited 0\n"


def test_wait_pid_child_is_reaped_only_by_a_wait_aimed_at_it(c: Control) -> None:
    run(c, "clone 1 pidfd wait_pid", "exit 2")
    assert err(c, "wait 1 nohang").errno == errno.ECHILD
    assert c.execute("wait 1 pid=2") == "2 exited 0\n"


# -- sessions, groups, subreapers, namespaces, sysctls ---------------------------------------


def test_setsid_prints_the_session_and_setpgid_moves_groups(c: Control, k: Kernel) -> None:
    c.execute("clone 1")
    assert c.execute("setsid 2") == "2\n"
    assert err(c, "setsid 2").errno == errno.EPERM
    run(c, "clone 2", "clone 2")
    assert c.execute("setpgid 3 0") == ""
    assert c.execute("setpgid 4 3") == ""
    assert k.get_task(k.root_ns, 4).group.pgrp is k.get_task(k.root_ns, 3).pid
    assert err(c, "setpgid 4 1").errno == errno.EPERM  # group 1 is in another session
    assert err(c, "setpgid 4 99").errno == errno.EPERM
    assert err(c, "setpgid 2 0").errno == errno.EPERM  # a session leader
    assert err(c, "setpgid 2 -1").errno == errno.EINVAL


def test_subreaper_adopts_orphans(c: Control, k: Kernel) -> None:
    run(c, "clone 1", "subreaper 2 on", "clone 2", "clone 3", "exit 3")
    assert k.get_task(k.root_ns, 4).real_parent is k.get_task(k.root_ns, 2)
    assert c.execute("subreaper 2 off") == ""
    assert err(c, "subreaper 2 maybe").errno == errno.EINVAL


def test_unshare_and_setns_steer_the_next_child(c: Control, k: Kernel) -> None:
    c.execute("clone 1")
    inum = int(c.execute("unshare 2 newpid"))
    assert err(c, "unshare 2 newpid").errno == errno.EINVAL
    assert err(c, "unshare 2 newuser").errno == errno.EINVAL
    c.execute("clone 2")
    child = k.get_task(k.root_ns, 3)
    assert child.active_ns.inum == inum and child.pid.nr == 1
    c.execute("clone 1")
    assert c.execute("setns 4 3") == ""
    c.execute("clone 4")
    assert k.get_task(k.root_ns, 5).active_ns.inum == inum
    assert err(c, "setns 3 1").errno == errno.EINVAL  # the root namespace is above 3's own


def test_pid_max_and_ns_last_pid_act_on_the_namespace_pid_lives_in(c: Control, k: Kernel) -> None:
    run(c, "clone 1 newpid", "clone 2")
    assert c.execute("pid_max 3 1000") == "" and k.get_task(k.root_ns, 2).active_ns.pid_max == 1000
    assert k.root_ns.pid_max == 32768
    assert c.execute("ns_last_pid 1 99") == "" and c.execute("clone 1") == "100\n"
    assert err(c, "pid_max 1 5").errno == errno.EINVAL
    assert err(c, "ns_last_pid 1 40000").errno == errno.EINVAL
    c.execute("clone 1 uid=1000")
    assert err(c, "pid_max 101 4000").errno == errno.EPERM
    assert err(c, "ns_last_pid 101 5").errno == errno.EPERM


def test_snapshot_needs_an_absolute_path_in_an_existing_directory(c: Control) -> None:
    # the round trip itself is tested in test_snapshot.py
    assert err(c, "snapshot").errno == errno.EINVAL
    assert err(c, "snapshot table.json").errno == errno.EINVAL
    assert err(c, "snapshot /nonexistent-dir/table.json").errno == errno.ENOENT


def test_ps_and_show(c: Control) -> None:
    run(c, "clone 1 comm=bash uid=1000", "clone 2 thread", "clone 2 'comm=a b'", "exit 4")
    assert c.execute("ps") == ("PID PPID PGID SID UID S NLWP COMM\n"
                               "1 0 1 1 0 S 1 init\n"
                               "2 1 1 1 1000 S 2 bash\n"
                               "4 2 1 1 1000 Z 1 a b\n")
    show = dict(line.split(":\t") for line in c.execute("show 3").splitlines())
    assert (show["Name"], show["Tgid"], show["Pid"], show["PPid"], show["Uid"]) == ("bash", "2", "3", "1", "1000")


# -- set and the fields table ---------------------------------------------------------------


@pytest.mark.parametrize(("assign", "attr", "expected"), [
    ("state=D", "state", "D"), ("comm=0123456789abcdefgh", "comm", "0123456789abcde"),
    ("nice=-20", "nice", -20), ("utime=123", "utime", 123), ("stime=0", "stime", 0),
    ("uid=1000", "g.uid", 1000), ("gid=5", "g.gid", 5), ("rss=77", "g.rss", 77),
    ("vsize=18446744073709551615", "g.vsize", 2**64 - 1), ("'argv=a \"b c\"'", "g.argv", ("a", "b c")),
    ("argv=", "g.argv", ()), ("'environ=A=1 B=x=y'", "g.environ", ("A=1", "B=x=y")),
    ("cwd=/tmp", "g.cwd", "/tmp"), ("root=/srv", "g.root", "/srv"), ("exe=", "g.exe", ""),
    ("sigign=CHLD,SIGPIPE,1", "g.sigign", (1 << 17) | (1 << 13) | (1 << 1)), ("sigign=", "g.sigign", 0),
    ("cutime=9", "g.cutime", 9), ("cstime=8", "g.cstime", 8), ("tty_nr=34816", "g.tty_nr", 34816),
    ("start_time=1000000", "start_time", 1_000_000),
    ("wchan=do_nanosleep", "g.extra", {"wchan": "do_nanosleep"}),
    ("oom_score_adj=-500", "g.extra", {"oom_score_adj": "-500"}),
], ids=lambda v: v if isinstance(v, str) else None)
def test_set_each_field(c: Control, k: Kernel, assign: str, attr: str, expected: Any) -> None:
    c.execute("clone 1")
    assert c.execute(f"set 2 {assign}") == ""
    t = k.get_task(k.root_ns, 2)
    obj, name = (t.group, attr[2:]) if attr.startswith("g.") else (t, attr)
    assert getattr(obj, name) == expected


def test_every_field_row_is_tested() -> None:
    names = {"state", "comm", "nice", "utime", "stime", "uid", "gid", "rss", "vsize", "argv", "environ",
             "cwd", "root", "exe", "sigign", "cutime", "cstime", "tty_nr", "start_time", "wchan",
             "oom_score_adj", "cpu", "user"}  # cpu, user: test_sched.py
    assert set(FIELDS) == names


@pytest.mark.parametrize(("assign", "fragment"), [
    ("state=Z", "state 'Z'"), ("state=X", "state 'X'"), ("state=RS", "state 'RS'"),
    ("comm=", "comm ''"), ("nice=20", "nice '20'"), ("nice=-21", "nice '-21'"),
    ("nice=1_0", "nice '1_0'"), ("utime=-1", "utime '-1'"), ("uid=4294967295", "uid"),
    ("rss=x", "rss 'x'"), ("vsize=18446744073709551616", "vsize"), ("'argv=\"a'", "argv"),
    ("environ=A", "environ word 'A'"), ("environ==x", "environ word '=x'"), ("cwd=tmp", "cwd 'tmp'"),
    ("root=", "root ''"), ("sigign=KILL", "SIGKILL cannot be ignored"), ("sigign=STOP", "SIGSTOP"),
    ("sigign=0", "sigign signal '0' is outside 1..64"), ("sigign=CHLD,,", "sigign"), ("sigign=FOO", "FOO"),
    ("tty_nr=4294967296", "tty_nr"), ("colour=red", "unknown field 'colour'"),
    ("start_time=99999999999999", "in the future"), ("nice=٣", "nice"),
    ("wchan=do-wait", "wchan 'do-wait' is not a kernel function name"), ("wchan=", "wchan ''"),
    ("oom_score_adj=1001", "oom_score_adj"), ("oom_score_adj=-1001", "oom_score_adj"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_set_rejects_bad_values_naming_the_key(c: Control, assign: str, fragment: str) -> None:
    c.execute("clone 1")
    e = err(c, f"set 2 {assign}")
    assert e.errno == errno.EINVAL and fragment in e.strerror, e.strerror
    assert "usage: set TID KEY=VALUE" in e.strerror or "start_time" in assign


def test_set_unknown_key_lists_the_valid_ones(c: Control) -> None:
    e = err(c, "set 1 colour=red")
    assert all(key in e.strerror for key in FIELDS)


def test_set_is_all_or_nothing(c: Control, k: Kernel) -> None:
    c.execute("clone 1")
    e = err(c, "set 2 nice=5 rss=10 state=Z")
    assert "state" in e.strerror
    assert err(c, "set 2 nice=5 nice=6").errno == errno.EINVAL
    t = k.get_task(k.root_ns, 2)
    assert (t.nice, t.group.rss) == (0, 0)
    assert c.execute("set 2 nice=5 rss=10 state=R") == ""
    assert (t.nice, t.group.rss, t.state) == (5, 10, "R")


def test_set_process_fields_through_a_thread_id(c: Control, k: Kernel) -> None:
    run(c, "clone 1", "clone 2 thread")
    c.execute("set 3 uid=1000 nice=3")
    leader, thread = k.get_task(k.root_ns, 2), k.get_task(k.root_ns, 3)
    assert leader.group.uid == 1000 and (leader.nice, thread.nice) == (0, 3)


def test_set_start_time_keeps_parents_before_children(c: Control, k: Kernel) -> None:
    run(c, "clone 1", "clone 2")  # the clock ticks 1 ms per reading
    parent, child = k.get_task(k.root_ns, 2), k.get_task(k.root_ns, 3)
    assert "before its parent's" in err(c, f"set 3 start_time={parent.start_time - 1}").strerror
    assert "after that of a thread or child" in err(c, f"set 2 start_time={child.start_time + 1}").strerror
    c.execute(f"set 3 start_time={parent.start_time}")
    assert child.start_time == parent.start_time


def test_set_state_of_a_zombie_is_refused_other_fields_are_not(c: Control, k: Kernel) -> None:
    run(c, "clone 1", "exit 2")
    assert "stays Z" in err(c, "set 2 state=R").strerror
    c.execute("set 2 rss=1 utime=4")
    assert k.get_task(k.root_ns, 2).utime == 4


def test_set_emits_one_changed_event_per_affected_pid() -> None:
    events: list[Any] = []
    k = Kernel(listener=events.append)
    c = Control(k)
    run(c, "clone 1", "clone 2 thread")
    events.clear()
    c.execute("set 3 nice=1 rss=2")
    assert [(e.kind, e.pid.nr) for e in events] == [(EventKind.CHANGED, 3), (EventKind.CHANGED, 2)]
    events.clear()
    c.execute("set 3 nice=2")
    assert [(e.kind, e.pid.nr) for e in events] == [(EventKind.CHANGED, 3)]
    events.clear()
    err(c, "set 3 nice=2 state=Z")
    assert events == []


def test_fields_api_takes_typed_values(k: Kernel) -> None:
    t = k.clone(k.init).task
    set_fields(k, t, [("argv", ["a b", "c"]), ("nice", 4), ("sigign", ["CHLD", 13])])
    assert (t.group.argv, t.nice, t.group.sigign) == (("a b", "c"), 4, (1 << 17) | (1 << 13))
    set_field(k, t, "state", "I")
    assert t.state == "I"
    with pytest.raises(KernelError) as info:
        set_field(k, t, "nice", True)
    assert info.value.errno == errno.EINVAL
    with pytest.raises(KernelError):
        set_fields(k, t, [])


def test_set_sigign_chld_makes_children_autoreap(c: Control, k: Kernel) -> None:
    run(c, "clone 1", "clone 2", "set 2 sigign=CHLD", "exit 3")
    assert k.find_task(k.root_ns, 3) is None


# -- syntax errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "fragments"), [
    ("", ["empty command line"]),
    ("   \t ", ["empty command line"]),
    ("frobnicate 1", ["unknown command 'frobnicate'", "clone, exit"]),
    ("clone", ["clone: missing PARENT", "usage: clone PARENT [thread]"]),
    ("clone x", ["PARENT 'x' is not a decimal number", "usage: clone"]),
    ("clone 0", ["PARENT '0' is outside 1..2147483647"]),
    ("clone 99999999999999999999999", ["PARENT", "usage: clone"]),
    ("clone 1 threads", ["unknown option 'threads'", "usage: clone"]),
    ("clone 1 thread thread", ["option 'thread' is given twice"]),
    ("clone 1 colour=red", ["unknown option 'colour=red'"]),
    ("clone 1 count=2 count=3", ["option count= is given twice"]),
    ("clone 1 set_tid=1,,2", ["set_tid entry ''"]),
    ("clone 1 exit_signal=LOUD", ["unknown exit_signal 'LOUD'"]),
    ('clone 1 "comm=a\nb"', ["comm 'a\\nb'"]),
    ("clone 1 'unbalanced", ["cannot split", "No closing quotation"]),
    ("clone 1 \\", ["cannot split", "No escaped character"]),
    ("exit", ["exit: missing TID", "usage: exit TID [CODE]"]),
    ("exit 1 2 3", ["unexpected argument '3'", "usage: exit TID [CODE]"]),
    ("exit +1", ["TID '+1' is not a decimal number"]),
    ("kill 1", ["kill: missing SIG"]),
    ("wait 1 hang", ["unknown option 'hang'", "usage: wait PARENT"]),
    ("wait 1 pid=x", ["pid= 'x' is not a decimal number"]),
    ("subreaper 1", ["missing on|off"]),
    ("set 1", ["set: nothing to set"]),
    ("set 1 nice", ["unknown option 'nice'"]),
    ("set 1 =3", ["has no name"]),
    ("help frobnicate", ["unknown command 'frobnicate'"]),
    ("ps 1", ["unexpected argument '1'"]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_syntax_errors_name_the_token_and_show_the_usage(c: Control, line: str, fragments: list[str]) -> None:
    e = err(c, line)
    assert e.errno == errno.EINVAL
    for fragment in fragments:
        assert fragment in e.strerror, e.strerror


def test_non_utf8_and_non_text_lines_are_einval(c: Control) -> None:
    assert "not UTF-8" in err(c, b"clone \xff").strerror
    assert err(c, 42).errno == errno.EINVAL


# -- fuzz ------------------------------------------------------------------------------------

_WORDS = sorted({w for cmd in COMMANDS.values() for w in cmd.words} | {"on", "off", "newpid", "newuser"})
_KEYS = sorted({key for cmd in COMMANDS.values() for key in (cmd.keys or ())} | set(FIELDS))
_JUNK = ["", " ", "=", "==", "'", '"', "\\", "\0", "\n", "é", "😀", "٣", "²", "0x10", "1e3", "-0", "+5",
         "1_0", "9" * 30, "-" + "9" * 25, "nan", "None", "$(reboot)", "; rm -rf /", "a) (b", "\t", "#"]


def _number(rng: random.Random, k: Kernel) -> str:
    live = [nr for nr, _ in k.root_ns.idr.items()]
    return rng.choice([
        str(rng.choice(live)) if live else "1", str(rng.choice(live)) if live else "1",
        str(rng.randint(0, 40)), str(rng.randint(-5, 5)), str(rng.choice([255, 256, 300, 301, 32767, 32768,
                                                                      4194304, 2**31, 2**32, 2**64])),
        rng.choice(_JUNK),
    ])


def _value(rng: random.Random, k: Kernel, key: str) -> str:
    pools = {
        "comm": ["bash", "a) (b", "", "x" * 40, "a\nb"], "argv": ["sleep 10", "'a b' c", "\"x", ""],
        "environ": ["A=1 B=2", "A", "=x", ""], "state": list("RSDTtIZXP") + ["", "RR"],
        "sigign": ["CHLD", "CHLD,PIPE", "", "KILL", "STOP", "0", "64", "65", "RTMIN+3", "x,y"],
        "exit_signal": ["0", "CHLD", "USR1", "99", "KILL", "-1"], "cwd": ["/", "/tmp", "tmp", ""],
        "exe": ["/bin/sh", "", "sh"], "root": ["/", "x"],
        "set_tid": ["1", "2,3", "500", "1,1,1", "", ",", "0", "40000"],
    }
    if key in pools and rng.random() < 0.8:
        return rng.choice(pools[key])
    return _number(rng, k)


def _param(rng: random.Random, k: Kernel, param: str) -> str:
    """A plausible value for a positional parameter named as in the usage line."""
    live = [nr for nr, pid in k.root_ns.idr.items() if pid.task is not None and pid.task.alive]
    if not live or rng.random() < 0.2:
        live = [nr for nr, _ in k.root_ns.idr.items()] or [1]
    return {
        "CODE": lambda: str(rng.randint(0, 255)), "SIG": lambda: rng.choice(
            ["TERM", "KILL", "STOP", "CONT", "SEGV", "CHLD", "HUP", "0", "9", "19", "USR1"]),
        "PGID": lambda: rng.choice(["0", str(rng.choice(live))]), "FD": lambda: rng.choice(["3", "4"]),
        "N": lambda: str(rng.choice([0, 1, 100, 301, 500, 1999, 5000])), "on|off": lambda: rng.choice(["on", "off"]),
        "newpid": lambda: "newpid", "FILE": lambda: "/nonexistent-dir/x", "COMMAND": lambda: rng.choice(list(COMMANDS)),
    }.get(param, lambda: str(rng.choice(live)))()


def _wellformed_line(rng: random.Random, k: Kernel) -> str:
    """A command with plausible arguments: these reach the model, where its errnos live."""
    name = rng.choice(list(COMMANDS) + ["clone"] * 6 + ["set", "wait", "kill"])
    cmd = COMMANDS[name]
    if name == "clone" and rng.random() < 0.4:
        return f"clone {_param(rng, k, 'PARENT')}" + rng.choice(["", " thread", " count=2"])
    tokens = [name] + [_param(rng, k, p) for p in cmd.params[: rng.randint(cmd.required, len(cmd.params))]]
    if cmd.words:
        tokens += rng.sample(sorted(cmd.words), rng.choice([0, 0, 1, 1, 2]))
    keys = sorted(cmd.keys) if cmd.keys is not None else sorted(FIELDS)
    if keys:
        for key in rng.sample(keys, min(len(keys), rng.choice([0, 1, 1, 2]))):
            if key == "count":
                tokens.append(f"count={rng.randint(1, 4)}")
            elif key in ("pid", "pgid", "from"):
                tokens.append(f"{key}={_param(rng, k, 'PID')}")
            else:
                tokens.append(f"{key}={_value(rng, k, key)}")
    return shlex.join(tokens)


def _random_line(rng: random.Random, k: Kernel) -> str | bytes:
    roll = rng.random()
    if roll < 0.45:
        return _wellformed_line(rng, k)
    if roll < 0.50:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
    if roll < 0.55:
        return "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0x80, 0x3000)]))
                       for _ in range(rng.randrange(30)))
    if roll < 0.58:
        return rng.choice(["", " ", "\t\t", "\n", "'", '"', "clone 1 '", 'set 1 "comm=x', "\\", "x" * 5000])
    name = rng.choice(list(COMMANDS)) if rng.random() < 0.95 else rng.choice(_JUNK + ["CLONE", "wait2"])
    tokens = [name]
    cmd = COMMANDS.get(name)
    nparams = len(cmd.params) if cmd else 2
    for _ in range(nparams + rng.choice([-1, 0, 0, 0, 1])):
        tokens.append(_number(rng, k) if rng.random() < 0.85 else rng.choice(_WORDS + _JUNK))
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3, 5])):
        r = rng.random()
        if r < 0.4 and cmd and cmd.words:
            tokens.append(rng.choice(sorted(cmd.words)))
        elif r < 0.85:
            keys = sorted(cmd.keys) if cmd and cmd.keys else _KEYS
            key = rng.choice(keys) if rng.random() < 0.9 else rng.choice(_KEYS + _JUNK)
            tokens.append(f"{key}={_value(rng, k, key)}")
        else:
            tokens.append(rng.choice(_WORDS + _JUNK))
    if rng.random() < 0.7:
        return " ".join(shlex.quote(t) for t in tokens)
    return " ".join(tokens)  # raw: quotes and backslashes in tokens reach shlex unbalanced


@pytest.mark.fuzz
@pytest.mark.parametrize("seed", range(fuzz_budget(3, 30)))
def test_fuzz_lines_succeed_or_fail_cleanly_and_failures_change_nothing(seed: int) -> None:
    """Half the kernels run a frozen clock, where a failed line must change nothing at all; on
    a running clock time passes while a line reads the table (the CPU times of running tasks
    grow, as on Linux), so there everything but those times must stay the same."""
    rng = random.Random(seed)

    def fresh() -> Kernel:
        k = new_kernel(pid_max=2000)
        if rng.random() < 0.5:
            k.sched.freeze()
        return k

    def state(k: Kernel) -> list[Any]:
        return dump(k) if k.sched.mode == "frozen" else _timeless(dump(k))

    k = fresh()
    views = [Control(k)]
    outcomes = {"ok": 0, "failed": 0, "blocked": 0}
    for i in range(700):
        if k.nr_threads > 250 or rng.random() < 0.01:  # small enough to dump on every line
            k = fresh()
            views = [Control(k)]
        for ns in k.namespaces():
            if ns.level and ns.child_reaper is not None and len(views) < 4 and rng.random() < 0.05:
                views.append(Control(k, ns))
        c = rng.choice(views)
        line = _random_line(rng, k)
        before = state(k)
        try:
            reply = c.execute(line)
        except KernelError as e:
            outcomes["failed"] += 1
            assert isinstance(e.errno, int) and e.strerror, line
            if "failed after creating" in e.strerror:  # clone count=N's documented exception
                continue
            assert state(k) == before, f"failed line {line!r} ({e}) changed the model"
        except WouldBlock:
            outcomes["blocked"] += 1
            assert state(k) == before, f"blocked line {line!r} changed the model"
        except Exception as e:  # anything else is a bug: show the line that caused it
            raise AssertionError(f"line {i} {line!r} raised {type(e).__name__}: {e}") from e
        else:
            outcomes["ok"] += 1
            assert isinstance(reply, str) and (reply == "" or reply.endswith("\n")), (line, reply)
    # the generator must reach past the parser, or the "changes nothing" check proves little
    assert outcomes["ok"] > 100 and outcomes["failed"] > 300, outcomes


def test_fuzz_clean_failures_include_kernel_errors_not_only_syntax() -> None:
    """The fuzz generator reaches every errno family the model raises (not just EINVAL)."""
    rng = random.Random(99)
    k = new_kernel(pid_max=2000)
    c = Control(k)
    seen: set[int] = set()
    for _ in range(1500):
        if k.nr_threads > 250:
            k = new_kernel(pid_max=2000)
            c = Control(k)
        try:
            c.execute(_random_line(rng, k))
        except KernelError as e:
            seen.add(e.errno)
        except WouldBlock:
            pass
    assert {errno.EINVAL, errno.ESRCH, errno.EPERM, errno.ECHILD} <= seen, sorted(errno.errorcode[e] for e in seen)


def test_control_on_a_view_inside_a_namespace_cannot_reach_outside(k: Kernel) -> None:
    init2 = k.clone(k.init, CLONE_NEWPID).task
    inner = Control(k, init2.active_ns)
    assert err(inner, "kill 2 KILL").errno == errno.ESRCH  # root's 2 is inner's 1
    assert inner.execute("clone 1") == "2\n"
    assert k.get_task(k.root_ns, 3).pid.numbers == (3, 2)
    # their group and session are the root init's pid, which the inner view cannot see: 0
    assert inner.execute("ps").splitlines()[1:] == ["1 0 0 0 0 S 1 init", "2 1 0 0 0 S 1 init"]
    inner.execute("exit 2 5")
    assert inner.execute("wait 1") == "2 exited 5\n"
    assert k.find_task(k.root_ns, 3) is None
    assert init2.exit_state is ExitState.RUNNING


def test_clone_count_room_ignores_pids_above_a_lowered_pid_max() -> None:
    k = new_kernel()
    c = Control(k)
    c.execute("ns_last_pid 1 999")
    c.execute("clone 1 count=5")  # 1000..1004
    c.execute("pid_max 1 400")
    assert c.execute("clone 1 count=3") == "300\n301\n302\n"  # wrapped to RESERVED_PIDS
    # below 400: 395 free numbers (2..299 and 303..399); 1000..1004 do not count
    assert "at most 395 free" in err(c, "clone 1 count=396").strerror
    assert c.execute("clone 1 count=97").split() == [str(n) for n in range(303, 400)]


def test_clone_count_runs_in_slices_when_the_control_slices(k: Kernel) -> None:
    from pidfs_fuse.control import Unfinished

    c = Control(k)
    c.slice = 10
    call = c.parse("clone 1 comm=bulk count=25")
    for done in (10, 20):
        with pytest.raises(Unfinished) as info:
            call.run()
        assert (info.value.done, info.value.total) == (done, 25)
    pids = [int(x) for x in call.run().split()]
    assert len(pids) == 25 == len(set(pids))
    for p in pids:
        t = k.find_task(k.root_ns, p)
        assert t is not None and t.comm == "bulk"


def test_clone_count_runs_whole_without_a_slice(c: Control) -> None:
    assert c.slice is None
    assert len(c.parse("clone 1 count=25").run().split()) == 25


def test_after_slice_runs_once_per_slice_of_a_bulk_clone(k: Kernel) -> None:
    from pidfs_fuse.control import Unfinished

    c = Control(k)
    c.slice = 10
    c.freeze_min = 25
    calls: list[int] = []
    c.after_slice = lambda: calls.append(len(k.root_ns.idr))
    call = c.parse("clone 1 count=25")
    with pytest.raises(Unfinished):
        call.run()
    with pytest.raises(Unfinished):
        call.run()
    call.run()
    assert len(calls) == 3
    assert calls[1] - calls[0] == 10 and calls[2] - calls[1] == 5
    c.parse("clone 1").run()  # a single clone is not bulk work
    assert len(calls) == 3


def test_a_bulk_clone_under_freeze_min_leaves_its_tasks_to_the_collector(k: Kernel) -> None:
    c = Control(k)
    calls: list[int] = []
    c.after_slice = lambda: calls.append(1)
    c.freeze_min = 13
    assert len(c.execute("clone 1 count=12").split()) == 12
    assert calls == []


# -- the table's cap (kernel.threads-max; issue 9 point 4) -------------------------------------


def test_a_clone_at_the_cap_fails_with_eagain_naming_it_and_changes_nothing() -> None:
    c = Control(new_kernel(max_threads=3))
    assert c.execute("clone 1 count=2") == "2\n3\n"
    e = err(c, "clone 1")
    assert e.errno == errno.EAGAIN
    assert e.strerror == "the table holds 3 tasks, which is its cap (kernel.threads-max 3)"
    assert err(c, "clone 2 thread").errno == errno.EAGAIN  # threads count too, as in nr_threads
    c.execute("exit_group 3")  # a zombie still counts (nr_threads drops at release)
    assert err(c, "clone 1").errno == errno.EAGAIN
    c.execute("wait 1 pid=3")
    assert c.execute("clone 1") == "4\n"


def test_a_bulk_clone_past_the_cap_fails_before_creating_anything() -> None:
    c = Control(new_kernel(max_threads=10))
    c.execute("clone 1 count=4")
    e = err(c, "clone 1 count=6")
    assert e.errno == errno.EAGAIN
    assert e.strerror == ("count=6: the table holds 5 tasks and its cap (kernel.threads-max 10) "
                          "leaves room for 5")
    assert len(c.execute("clone 1 count=5").split()) == 5


def test_a_snapshot_written_in_a_child_is_the_same_file_and_its_errors_come_back(
        c: Control, tmp_path: Path) -> None:
    run(c, "clone 1 comm=bash", "clone 2 thread", "clone 2 count=3")
    inline, child = tmp_path / "inline.snap", tmp_path / "child.snap"
    assert c.execute(f"snapshot {inline}") == f"snapshot {inline}: 6 tasks\n"
    c.snapshot_in_child = True
    assert c.execute(f"snapshot {child}") == f"snapshot {child}: 6 tasks\n"
    (h1, rest1), (h2, rest2) = (f.read_text().split("\n", 1) for f in (inline, child))
    assert rest2 == rest1
    assert json.loads(h2) == {**json.loads(h1), "clock": json.loads(h2)["clock"]}  # it ticked
    e = err(c, f"snapshot {tmp_path}/no/dir.snap")
    assert e.errno == errno.ENOENT
    assert e.strerror == f"cannot write {tmp_path}/no/dir.snap: No such file or directory"
    os.mkdir(tmp_path / "d")
    e = err(c, f"snapshot {tmp_path}/d")
    assert (e.errno, e.strerror) == (errno.EISDIR, f"{tmp_path}/d: is a directory; a snapshot is "
                                     "written only to a regular file")
    assert sorted(os.listdir(tmp_path)) == ["child.snap", "d", "inline.snap"]


def test_snapshot_in_a_child_that_cannot_fork_fails_with_a_sentence_and_leaks_nothing(
        k: Kernel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = Control(k)
    c.snapshot_in_child = True
    fds = set(os.listdir("/proc/self/fd"))

    def no_fork() -> int:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(os, "fork", no_fork)
    e = err(c, f"snapshot {tmp_path}/x.snap")
    assert (e.errno, e.strerror) == (errno.ENOMEM, f"cannot start the process that writes "
                                     f"{tmp_path}/x.snap: Cannot allocate memory")
    assert set(os.listdir("/proc/self/fd")) == fds and os.listdir(tmp_path) == []
