"""/<pid>/status: exact bytes, Linux 6.18's line order, namespaces, escaping.

The key orders below are copied from real files of this machine's Linux 6.18 /proc
(../shared/reference/linux-6.18-proc/: self_status.txt, status_thread_7000.txt,
status_6959.txt, status_2.txt) so that the test does not depend on that directory existing.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pidfs_fuse.kernel import CLONE_NEWPID, CLONE_NNP, CLONE_THREAD, Kernel
from pidfs_fuse.procfs import MountOptions, View, show_status

SEC = 1_000_000_000

_COMMON_HEAD = ["Name", "Umask", "State", "Tgid", "Ngid", "Pid", "PPid", "TracerPid", "Uid", "Gid",
                "FDSize", "Groups", "NStgid", "NSpid", "NSpgid", "NSsid", "Kthread"]
_MEM = ["VmPeak", "VmSize", "VmLck", "VmPin", "VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem",
        "VmData", "VmStk", "VmExe", "VmLib", "VmPTE", "VmSwap", "HugetlbPages", "CoreDumping",
        "THP_enabled", "untag_mask"]
_SIG_TAIL = ["Threads", "SigQ", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt", "CapInh", "CapPrm",
             "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters",
             "Speculation_Store_Bypass", "SpeculationIndirectBranch", "Cpus_allowed",
             "Cpus_allowed_list", "Mems_allowed", "Mems_allowed_list", "voluntary_ctxt_switches",
             "nonvoluntary_ctxt_switches"]
#: self_status.txt (cat, running) and status_thread_7000.txt (a thread): same keys
LINUX_RUNNING_KEYS = _COMMON_HEAD + _MEM + _SIG_TAIL
#: status_6959.txt (a zombie): no Umask, no memory lines
LINUX_ZOMBIE_KEYS = [k for k in _COMMON_HEAD if k != "Umask"] + _SIG_TAIL
#: status_2.txt (kthreadd): Umask but no memory lines
LINUX_KTHREAD_KEYS = _COMMON_HEAD + _SIG_TAIL

MEMS = ",".join(["00000000"] * 31 + ["00000001"])


def tail(cap: str) -> str:
    return (
        "CapInh:\t0000000000000000\n"
        f"CapPrm:\t{cap}\n"
        f"CapEff:\t{cap}\n"
        "CapBnd:\t000001ffffffffff\n"
        "CapAmb:\t0000000000000000\n"
        "NoNewPrivs:\t0\n"
        "Seccomp:\t0\n"
        "Seccomp_filters:\t0\n"
        "Speculation_Store_Bypass:\tvulnerable\n"
        "SpeculationIndirectBranch:\talways enabled\n"
        "Cpus_allowed:\t3\n"
        "Cpus_allowed_list:\t0-1\n"
        f"Mems_allowed:\t{MEMS}\n"
        "Mems_allowed_list:\t0\n"
        "voluntary_ctxt_switches:\t0\n"
        "nonvoluntary_ctxt_switches:\t0\n"
    )


def world() -> SimpleNamespace:
    """init(1) -> bash(2, session leader) -> app(3, uid 1000, thread 4) and a zombie sleep(5);
    bash -> cinit (6; pid 1 of a new namespace) -> worker (7; 2 there) -> inner (8; 3 there,
    pid 1 of a third level)."""
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
    app.utime, app.stime = 7, 3
    now[0] = 2 * SEC + 6 * SEC // 10
    th = k.clone(app, CLONE_THREAD, comm="wk 1)(x").task
    th.utime, th.stime, th.state = 5, 1, "R"
    now[0] = 3 * SEC
    z = k.clone(sh, comm="sleep", argv=["sleep", "1"]).task
    k.exit_group(z, 3)
    now[0] = 4 * SEC
    cinit = k.clone(sh, CLONE_NEWPID, comm="cinit").task
    worker = k.clone(cinit, comm="worker").task
    inner = k.clone(worker, CLONE_NEWPID, comm="inner").task
    root = View(k, k.root_ns, MountOptions(), boot_epoch=1795442708.75)
    return SimpleNamespace(k=k, now=now, sh=sh, app=app, th=th, z=z, cinit=cinit, worker=worker,
                           inner=inner, root=root, ns1=root.with_ns(cinit.pid.ns),
                           ns2=root.with_ns(inner.pid.ns))


def keys(text: bytes) -> list[str]:
    return [line.split(":", 1)[0] for line in text.decode().splitlines()]


def fields(text: bytes) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in text.decode().splitlines())


MEM_APP = (
    "VmPeak:\t  238128 kB\n"
    "VmSize:\t  238128 kB\n"
    "VmLck:\t       0 kB\n"
    "VmPin:\t       0 kB\n"
    "VmHWM:\t   13888 kB\n"
    "VmRSS:\t   13888 kB\n"
    "RssAnon:\t    6944 kB\n"
    "RssFile:\t    6944 kB\n"
    "RssShmem:\t       0 kB\n"
    "VmData:\t  104116 kB\n"
    "VmStk:\t     132 kB\n"
    "VmExe:\t      20 kB\n"
    "VmLib:\t   29744 kB\n"
    "VmPTE:\t    1864 kB\n"
    "VmSwap:\t       0 kB\n"
    "HugetlbPages:\t       0 kB\n"
    "CoreDumping:\t0\n"
    "THP_enabled:\t1\n"
    "untag_mask:\t0xffffffffffffffff\n"
)

SIGS_APP = (
    "Threads:\t2\n"
    "SigQ:\t0/96365\n"
    "SigPnd:\t0000000000000000\n"
    "ShdPnd:\t0000000000000000\n"
    "SigBlk:\t0000000000000000\n"
    "SigIgn:\t0000000000000007\n"
    "SigCgt:\t0000000000000000\n"
)


def test_status_of_a_running_process_is_exact() -> None:
    w = world()
    expected = (
        "Name:\ta) b (c d)\n"
        "Umask:\t0022\n"
        "State:\tS (sleeping)\n"
        "Tgid:\t3\n"
        "Ngid:\t0\n"
        "Pid:\t3\n"
        "PPid:\t2\n"
        "TracerPid:\t0\n"
        "Uid:\t1000\t1000\t1000\t1000\n"
        "Gid:\t1000\t1000\t1000\t1000\n"
        "FDSize:\t64\n"
        "Groups:\t \n"
        "NStgid:\t3\n"
        "NSpid:\t3\n"
        "NSpgid:\t2\n"
        "NSsid:\t2\n"
        "Kthread:\t0\n"
        + MEM_APP + SIGS_APP + tail("0000000000000000")
    )
    assert show_status(w.root, w.app).decode() == expected


def test_status_of_a_thread_is_exact() -> None:
    w = world()
    expected = (
        "Name:\twk 1)(x\n"
        "Umask:\t0022\n"
        "State:\tR (running)\n"
        "Tgid:\t3\n"
        "Ngid:\t0\n"
        "Pid:\t4\n"
        "PPid:\t2\n"
        "TracerPid:\t0\n"
        "Uid:\t1000\t1000\t1000\t1000\n"
        "Gid:\t1000\t1000\t1000\t1000\n"
        "FDSize:\t64\n"
        "Groups:\t \n"
        "NStgid:\t3\n"
        "NSpid:\t4\n"
        "NSpgid:\t2\n"
        "NSsid:\t2\n"
        "Kthread:\t0\n"
        + MEM_APP + SIGS_APP + tail("0000000000000000")
    )
    assert show_status(w.root, w.th).decode() == expected


def test_status_of_a_zombie_is_exact() -> None:
    w = world()
    expected = (
        "Name:\tsleep\n"
        "State:\tZ (zombie)\n"
        "Tgid:\t5\n"
        "Ngid:\t0\n"
        "Pid:\t5\n"
        "PPid:\t2\n"
        "TracerPid:\t0\n"
        "Uid:\t0\t0\t0\t0\n"
        "Gid:\t0\t0\t0\t0\n"
        "FDSize:\t0\n"
        "Groups:\t \n"
        "NStgid:\t5\n"
        "NSpid:\t5\n"
        "NSpgid:\t2\n"
        "NSsid:\t2\n"
        "Kthread:\t0\n"
        "Threads:\t1\n"
        "SigQ:\t0/96365\n"
        "SigPnd:\t0000000000000000\n"
        "ShdPnd:\t0000000000000000\n"
        "SigBlk:\t0000000000000000\n"
        "SigIgn:\t0000000000000000\n"
        "SigCgt:\t0000000000000000\n"
        + tail("000001ffffffffff")
    )
    assert show_status(w.root, w.z).decode() == expected


@pytest.mark.parametrize(
    ("who", "linux_keys"),
    [("app", LINUX_RUNNING_KEYS), ("th", LINUX_RUNNING_KEYS), ("z", LINUX_ZOMBIE_KEYS),
     ("kthread", LINUX_KTHREAD_KEYS)],
    ids=["process-like-self_status", "thread-like-status_thread_7000", "zombie-like-status_6959",
         "kthread-like-status_2"],
)
def test_status_keys_follow_linux_6_18_order(who: str, linux_keys: list[str]) -> None:
    w = world()
    if who == "kthread":
        task = w.k.clone(w.k.init, comm="kthreadd").task
        task.group.extra = {"kthread": "1"}
    else:
        task = getattr(w, who)
    assert keys(show_status(w.root, task)) == linux_keys


def test_zombie_leader_with_a_live_thread_loses_umask_and_memory_lines() -> None:
    w = world()
    w.k.exit(w.app, 0)  # the leader exits, its thread runs on
    f = fields(show_status(w.root, w.app))
    assert f["State"] == "Z (zombie)" and "Umask" not in f and "VmSize" not in f
    assert f["Threads"] == "2" and f["FDSize"] == "0"
    assert fields(show_status(w.root, w.th))["VmSize"] == "  238128 kB"


@pytest.mark.parametrize(
    ("comm", "shown"),
    [("a\\b", "a\\\\b"), ("x\ny", "x\\ny"), ("tab\there", "tab\there"), ("a) (b", "a) (b")],
    ids=["backslash-doubled", "newline-escaped", "tab-raw", "parens-raw"],
)
def test_status_name_escapes_newline_and_backslash_only(comm: str, shown: str) -> None:
    w = world()
    w.app.comm = comm
    assert show_status(w.root, w.app).decode().split("\n", 1)[0] == f"Name:\t{shown}"


def test_status_state_letters_come_from_display_state() -> None:
    w = world()
    for letter, text in [("R", "R (running)"), ("D", "D (disk sleep)"), ("I", "I (idle)"),
                         ("t", "t (tracing stop)")]:
        w.app.state = letter
        assert fields(show_status(w.root, w.app))["State"] == text
    w.app.group.stopped = True
    assert fields(show_status(w.root, w.app))["State"] == "T (stopped)"


def test_status_numbers_in_a_child_namespace_view() -> None:
    w = world()
    f = fields(show_status(w.ns1, w.cinit))
    # init of the view's namespace: its parent, group and session live outside it
    assert (f["Tgid"], f["Pid"], f["PPid"]) == ("1", "1", "0")
    assert (f["NStgid"], f["NSpid"], f["NSpgid"], f["NSsid"]) == ("1", "1", "0", "0")
    f = fields(show_status(w.root, w.cinit))
    assert (f["Pid"], f["PPid"], f["NSpid"], f["NSpgid"]) == ("6", "2", "6\t1", "2\t0")


def test_status_ns_lines_list_levels_from_the_view_down() -> None:
    w = world()
    assert fields(show_status(w.root, w.inner))["NSpid"] == "8\t3\t1"
    assert fields(show_status(w.ns1, w.inner))["NSpid"] == "3\t1"
    assert fields(show_status(w.ns2, w.inner))["NSpid"] == "1"
    f = fields(show_status(w.ns1, w.inner))
    assert (f["Pid"], f["PPid"], f["NStgid"]) == ("3", "2", "3\t1")
    assert fields(show_status(w.ns2, w.inner))["PPid"] == "0"


def test_status_extra_fields_groups_umask_switches() -> None:
    w = world()
    w.app.group.extra = {"groups": "4,24,27", "umask": "077", "voluntary_ctxt_switches": "12"}
    f = fields(show_status(w.root, w.app))
    assert f["Groups"] == "4 24 27 " and f["Umask"] == "0077"
    assert f["voluntary_ctxt_switches"] == "12"


def test_status_shows_pending_and_ignored_signals_as_linux_sigsets() -> None:
    w = world()
    w.app.group.sigign = 1 << 17  # SIGCHLD -> bit 16
    w.app.group.pending = 1 << 15  # SIGTERM waiting for SIGCONT -> bit 14
    f = fields(show_status(w.root, w.app))
    assert f["SigIgn"] == "0000000000010000" and f["ShdPnd"] == "0000000000004000"


def test_status_threads_count_follows_the_group() -> None:
    w = world()
    for _ in range(3):
        w.k.clone(w.app, CLONE_THREAD)
    assert fields(show_status(w.root, w.app))["Threads"] == "5"


def test_status_no_new_privs_follows_clone_nnp() -> None:
    w = world()
    assert fields(show_status(w.root, w.app))["NoNewPrivs"] == "0"
    nnp = w.k.clone(w.sh, CLONE_NNP, comm="sandboxed").task
    assert fields(show_status(w.root, nnp))["NoNewPrivs"] == "1"
    kid = w.k.clone(nnp, comm="kid").task  # inherited, never cleared
    assert fields(show_status(w.root, kid))["NoNewPrivs"] == "1"


def test_status_ignores_malformed_extra_fields() -> None:
    w = world()
    w.app.group.extra = {"umask": "9x", "voluntary_ctxt_switches": "12\nEvil:\t1",
                         "groups": "5"}
    text = show_status(w.root, w.app)
    f = fields(text)
    assert f["Umask"] == "0022" and f["voluntary_ctxt_switches"] == "0" and "Evil" not in f
    assert keys(text) == LINUX_RUNNING_KEYS
