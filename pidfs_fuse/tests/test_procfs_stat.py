"""/<pid>/stat and task/<tid>/stat: 52 fields as fs/proc/array.c do_task_stat prints them,
comm that defeats naive parsers, numbers translated into the view's namespace; statm, cmdline,
environ, comm and children; and psutil reading a tree of rendered files.

The Linux lines quoted here are real files of this machine's Linux 6.18 (stat_6959.txt,
stat_6951_weird.txt, stat_thread_7000.txt in ../shared/reference/linux-6.18-proc/).
"""

from __future__ import annotations

import errno
from pathlib import Path
from types import SimpleNamespace

import pytest

from pidfs_fuse.kernel import CLONE_NEWPID, CLONE_THREAD, Kernel, KernelError
from pidfs_fuse.kernel.signals import SIGSTOP, SIGTERM
from pidfs_fuse.procfs import (
    MountOptions,
    View,
    show_children,
    show_cmdline,
    show_comm,
    show_environ,
    show_stat,
    show_statm,
    show_status,
)
from pidfs_fuse.procfs import files as F

SEC = 1_000_000_000
LINUX_ZOMBIE = (b"6959 (sleep) Z 6954 6948 2879 0 -1 4227084 97 0 0 0 0 0 0 0 20 0 1 0 52948 0 0 "
                b"18446744073709551615 0 0 0 0 0 0 0 7 0 1 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n")
LINUX_WEIRD = (b"6951 (a) b (c d)) S 1 6948 2879 0 -1 4194304 3036 6532 7 0 2 1 3 0 20 0 4 0 52946 "
               b"243843072 3472 18446744073709551615 93906356936704 93906356937045 140725412052272 "
               b"0 0 0 0 16781319 0 0 0 0 17 0 0 0 0 0 0 93906356948400 93906356949016 "
               b"93906618871808 140725412055251 140725412055301 140725412055301 140725412057039 0\n")


def world() -> SimpleNamespace:
    now = [0]
    k = Kernel(clock=lambda: now[0])
    now[0] = 1 * SEC
    sh = k.clone(k.init, comm="bash", argv=["-bash"]).task
    k.setsid(sh)
    now[0] = 2 * SEC + SEC // 2
    app = k.clone(sh, comm="a) b (c d)", argv=["python3", "app.py"], uid=1000, gid=1000).task
    g = app.group
    g.vsize, g.rss, g.tty_nr = 243843072, 3472, 34816
    g.sigign = (1 << 1) | (1 << 2) | (1 << 3)
    g.environ = ("HOME=/srv", "LANG=C")
    g.cutime, g.cstime = 40, 9
    app.utime, app.stime, app.nice = 7, 3, 5
    now[0] = 2 * SEC + 6 * SEC // 10
    th = k.clone(app, CLONE_THREAD, comm="wk 1)(x").task
    th.utime, th.stime, th.state = 5, 1, "R"
    k.sched.set_share(th, cpu=0)  # runs without accruing: these tests pin its ticks at 5 and 1
    now[0] = 3 * SEC
    z = k.clone(sh, comm="sleep", argv=["sleep", "1"]).task
    now[0] = 4 * SEC
    cinit = k.clone(sh, CLONE_NEWPID, comm="cinit").task
    worker = k.clone(cinit, comm="worker").task
    root = View(k, k.root_ns, MountOptions(), boot_epoch=1795442708.75)
    return SimpleNamespace(k=k, now=now, sh=sh, app=app, th=th, z=z, cinit=cinit, worker=worker,
                           root=root, ns1=root.with_ns(cinit.pid.ns))


def parse_like_psutil(data: bytes) -> tuple[bytes, list[bytes]]:
    """psutil._pslinux.Process._parse_stat_file: name between the first '(' and the last ')'."""
    rpar = data.rfind(b")")
    return data[data.find(b"(") + 1: rpar], data[rpar + 2:].split()


def stat_fields(data: bytes) -> list[bytes]:
    """All 52 fields, comm as field 2, split the robust way."""
    name, rest = parse_like_psutil(data)
    return [data[: data.find(b" (")], name] + rest


def test_linux_references_have_52_fields_under_this_parser() -> None:
    for line in (LINUX_ZOMBIE, LINUX_WEIRD):
        assert len(stat_fields(line)) == 52
    assert parse_like_psutil(LINUX_WEIRD)[0] == b"a) b (c d)"


@pytest.mark.parametrize("who", ["app", "th", "z", "sh", "init"])
@pytest.mark.parametrize("whole", [True, False], ids=["tgid", "tid"])
def test_stat_always_has_52_fields_and_one_line(who: str, whole: bool) -> None:
    w = world()
    w.k.exit_group(w.z, 0)
    task = w.k.init if who == "init" else getattr(w, who)
    data = show_stat(w.root, task, whole_group=whole)
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert len(stat_fields(data)) == 52


def test_weird_comm_survives_psutils_split_at_the_last_paren() -> None:
    w = world()
    for comm in ("a) (b", "a) b (c d)", ")", "((", "x) R 1 2 3"):
        w.app.comm = comm
        name, rest = parse_like_psutil(show_stat(w.root, w.app, whole_group=True))
        assert name.decode() == comm
        assert rest[0] == b"S" and rest[1] == b"2" and len(rest) == 50


def test_stat_of_a_process_sums_its_threads_times() -> None:
    w = world()
    f = stat_fields(show_stat(w.root, w.app, whole_group=True))
    expect = {
        1: b"3", 2: b"a) b (c d)", 3: b"S", 4: b"2", 5: b"2", 6: b"2", 7: b"34816",
        8: b"2",  # tpgid: the group on the terminal
        9: b"4194368",  # PF_RANDOMIZE | PF_FORKNOEXEC: forked, never exec'd
        10: b"0", 14: b"12", 15: b"4", 16: b"40", 17: b"9", 18: b"25", 19: b"5", 20: b"2",
        21: b"0", 22: b"250", 23: b"243843072", 24: b"3472", 25: b"18446744073709551615",
        31: b"0", 32: b"0", 33: b"7", 34: b"0",
        35: b"0",  # wchan flag: 0 for a whole multi-threaded group
        38: b"17", 39: b"1", 52: b"0",
    }
    assert {i: f[i - 1] for i in expect} == expect
    start_code, end_code = int(f[25]), int(f[26])
    assert 0 < start_code < end_code
    arg_start, arg_end, env_start, env_end = (int(x) for x in f[47:51])
    assert arg_end - arg_start == len(b"python3\0app.py\0")
    assert env_start == arg_end and env_end - env_start == len(b"HOME=/srv\0LANG=C\0")


def test_stat_of_a_thread_is_its_own() -> None:
    w = world()
    f = stat_fields(show_stat(w.root, w.th, whole_group=False))
    assert f[0] == b"4" and f[1] == b"wk 1)(x" and f[2] == b"R"
    assert (f[3], f[4], f[5]) == (b"2", b"2", b"2")
    assert (f[13], f[14]) == (b"5", b"1")  # this thread's ticks only
    assert f[19] == b"2" and f[21] == b"260"
    assert f[8] == b"4194368"  # threads keep PF_FORKNOEXEC, as stat_thread_7000.txt shows
    assert f[34] == b"0"  # running: no wchan
    assert f[37] == b"-1"  # exit_signal of a thread
    w.th.state = "S"
    assert stat_fields(show_stat(w.root, w.th, whole_group=False))[34] == b"1"


def test_stat_of_an_execd_zombie_matches_linux_field_for_field() -> None:
    w = world()
    w.k.execve(w.z, "sleep", ["sleep", "1"])
    w.k.exit_group(w.z, 0)
    ours = stat_fields(show_stat(w.root, w.z, whole_group=True))
    linux = stat_fields(LINUX_ZOMBIE)
    # pids, fault counts, start time, the processor and the ignored signals differ by nature;
    # everything else a zombie shows is the same as the real one
    same = [i for i in range(52) if i + 1 not in (1, 4, 5, 6, 10, 22, 33, 39)]
    assert [ours[i] for i in same] == [linux[i] for i in same]
    assert ours[2] == b"Z" and ours[8] == b"4227084"


def test_stat_of_a_zombie_is_exact() -> None:
    w = world()
    w.k.exit_group(w.z, 3)
    assert show_stat(w.root, w.z, whole_group=True) == (
        b"5 (sleep) Z 2 2 2 0 -1 4227148 0 0 0 0 0 0 0 0 20 0 1 0 300 0 0 18446744073709551615 "
        b"0 0 0 0 0 0 0 0 0 1 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 768\n")


def test_stat_exit_code_of_a_group_is_the_groups() -> None:
    w = world()
    w.k.exit(w.th, 4)  # the thread's own code
    w.k.kill(w.app, SIGTERM)
    assert stat_fields(show_stat(w.root, w.app, whole_group=True))[51] == b"15"
    assert stat_fields(show_stat(w.root, w.app, whole_group=False))[51] == b"15"


def test_stat_exit_code_of_a_stopped_group_is_the_stop_signal() -> None:
    w = world()
    w.k.kill(w.app, SIGSTOP)
    f = stat_fields(show_stat(w.root, w.app, whole_group=True))
    assert f[2] == b"T" and f[51] == b"19"
    assert stat_fields(show_stat(w.root, w.app, whole_group=False))[51] == b"0"


def test_stat_starttime_is_clock_ticks_since_boot() -> None:
    w = world()
    assert stat_fields(show_stat(w.root, w.app, whole_group=True))[21] == b"250"
    w.root.hz = 1000
    assert stat_fields(show_stat(w.root, w.app, whole_group=True))[21] == b"2500"


def test_stat_numbers_in_a_child_namespace_view() -> None:
    w = world()
    f = stat_fields(show_stat(w.ns1, w.cinit, whole_group=True))
    assert (f[0], f[3], f[4], f[5]) == (b"1", b"0", b"0", b"0")
    f = stat_fields(show_stat(w.ns1, w.worker, whole_group=True))
    assert (f[0], f[3], f[4], f[5]) == (b"2", b"1", b"0", b"0")
    f = stat_fields(show_stat(w.root, w.worker, whole_group=True))
    assert (f[0], f[3], f[4], f[5]) == (b"7", b"6", b"2", b"2")


def test_stat_of_a_released_task_falls_back_like_lock_task_sighand_failing() -> None:
    w = world()
    w.k.exit(w.th, 0)  # a thread is released at once
    f = stat_fields(show_stat(w.root, w.th, whole_group=False))
    assert (f[2], f[3], f[4], f[5], f[19]) == (b"X", b"0", b"-1", b"-1", b"0")


def test_statm_agrees_with_status_and_stat() -> None:
    w = world()
    statm = show_statm(w.root, w.app).split()
    assert statm == [b"59532", b"3472", b"1736", b"5", b"0", b"26062", b"0"]
    status = show_status(w.root, w.app).decode()
    assert f"VmSize:\t{59532 * 4:8d} kB" in status and f"VmRSS:\t{3472 * 4:8d} kB" in status
    w.k.exit_group(w.z, 0)
    assert show_statm(w.root, w.z) == b"0 0 0 0 0 0 0\n"


def test_cmdline_environ_comm() -> None:
    w = world()
    assert show_cmdline(w.root, w.app) == b"python3\0app.py\0"
    assert show_environ(w.root, w.app) == b"HOME=/srv\0LANG=C\0"
    assert show_comm(w.root, w.app) == b"a) b (c d)\n"
    assert show_comm(w.root, w.th) == b"wk 1)(x\n"
    w.k.exit_group(w.z, 0)
    assert show_cmdline(w.root, w.z) == b"" and show_environ(w.root, w.z) == b""
    w.app.group.argv = ()
    assert show_cmdline(w.root, w.app) == b""


def test_comm_write_from_outside_the_process_is_einval() -> None:
    w = world()
    with pytest.raises(KernelError) as e:
        F.write_comm(w.root, w.app, b"new\n", 0)
    assert e.value.errno == errno.EINVAL


def test_children_lists_this_threads_children_with_trailing_spaces() -> None:
    w = world()
    assert show_children(w.root, w.sh) == b"3 5 6 "
    assert show_children(w.root, w.app) == b""
    w.k.exit_group(w.z, 0)  # a zombie child is still a child
    assert show_children(w.root, w.sh) == b"3 5 6 "
    w.k.waitid(w.sh)  # reaped: gone
    assert show_children(w.root, w.sh) == b"3 6 "
    assert show_children(w.ns1, w.cinit) == b"2 "
    kid = w.k.clone(w.th, comm="kid").task  # a child of the thread, not of the leader
    assert show_children(w.root, w.th) == f"{kid.pid.nr} ".encode()
    assert show_children(w.root, w.app) == b""


# -- psutil on a tree of rendered files ---------------------------------------------------------

def materialize(view: View, root: Path) -> None:
    """Write what psutil reads: /stat, /meminfo, and per process stat, status, cmdline, environ,
    statm, comm, task/<tid>/{stat,status}."""
    from pidfs_fuse.procfs import show_meminfo, show_proc_stat
    (root / "stat").write_bytes(show_proc_stat(view))
    (root / "meminfo").write_bytes(show_meminfo(view))
    for nr, leader in view.kernel.iter_tgids(view.ns):
        d = root / str(nr)
        (d / "task").mkdir(parents=True)
        for name, fn in [("stat", lambda v, t: show_stat(v, t, whole_group=True)),
                         ("status", show_status), ("cmdline", show_cmdline),
                         ("environ", show_environ), ("statm", show_statm), ("comm", show_comm)]:
            (d / name).write_bytes(fn(view, leader))
        for t in leader.group.threads:
            td = d / "task" / str(t.pid.nr_in(view.ns))
            td.mkdir()
            (td / "stat").write_bytes(show_stat(view, t, whole_group=False))
            (td / "status").write_bytes(show_status(view, t))


@pytest.fixture
def psutil_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    psutil = pytest.importorskip("psutil")
    if not hasattr(psutil, "PROCFS_PATH"):
        pytest.skip("psutil without PROCFS_PATH")
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(tmp_path))
    return psutil


def test_psutil_reads_the_rendered_files(psutil_on, tmp_path: Path) -> None:
    psutil = psutil_on
    w = world()
    w.k.exit_group(w.z, 0)
    materialize(w.root, tmp_path)
    p = psutil.Process(3)
    assert p.name() == "a) b (c d)"
    assert p.ppid() == 2
    assert p.status() == psutil.STATUS_SLEEPING
    assert p.cmdline() == ["python3", "app.py"]
    assert p.environ() == {"HOME": "/srv", "LANG": "C"}
    assert p.uids() == (1000, 1000, 1000) and p.gids() == (1000, 1000, 1000)
    assert p.num_threads() == 2
    assert p.create_time() == pytest.approx(int(w.root.boot_epoch) + 2.5)
    ct = p.cpu_times()
    assert (ct.user, ct.system, ct.children_user, ct.children_system) == (0.12, 0.04, 0.4, 0.09)
    assert p.memory_info().rss == 3472 * 4096 and p.memory_info().vms == 243843072
    assert sorted(t.id for t in p.threads()) == [3, 4]
    assert p.num_ctx_switches() == (0, 0)
    zombie = psutil.Process(5)
    assert zombie.status() == psutil.STATUS_ZOMBIE and zombie.name() == "sleep"
    assert sorted(psutil.pids()) == [1, 2, 3, 5, 6, 7]
    assert {c.pid for c in psutil.Process(2).children()} == {3, 5, 6}


def test_psutil_in_a_child_namespace_view(psutil_on, tmp_path: Path) -> None:
    psutil = psutil_on
    w = world()
    materialize(w.ns1, tmp_path)
    assert sorted(psutil.pids()) == [1, 2]
    assert psutil.Process(1).ppid() == 0 and psutil.Process(2).ppid() == 1
    assert psutil.Process(2).name() == "worker"
