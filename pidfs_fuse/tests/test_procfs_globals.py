"""The global files: /stat, /uptime, /loadavg, /meminfo, /cpuinfo, /version and the sysctls
under /sys/kernel (pid_max and ns_last_pid are per namespace and writable).

Formats are compared with this machine's Linux 6.18 (misc_facts.txt in
../shared/reference/linux-6.18-proc/: /proc/stat keys and 10 cpu columns, loadavg, uptime).
"""

from __future__ import annotations

import errno
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from pidfs_fuse.kernel import CLONE_NEWPID, CLONE_THREAD, Kernel, KernelError
from pidfs_fuse.kernel.signals import SIGKILL, SIGSTOP
from pidfs_fuse.procfs import (
    MountOptions,
    View,
    show_cpuinfo,
    show_loadavg,
    show_meminfo,
    show_ns_last_pid,
    show_osrelease,
    show_pid_max,
    show_proc_stat,
    show_threads_max,
    show_uptime,
    show_version,
    write_ns_last_pid,
    write_pid_max,
)

SEC = 1_000_000_000
LINUX_STAT_KEYS = "cpu cpu0 cpu1 intr ctxt btime processes procs_running procs_blocked softirq".split()
LINUX_LOADAVG = "0.26 0.48 0.36 4/93 15892\n"
LINUX_UPTIME = "1013.79 1518.58\n"
LINUX_MEMINFO_KEYS = (
    "MemTotal MemFree MemAvailable Buffers Cached SwapCached Active Inactive Active(anon) "
    "Inactive(anon) Active(file) Inactive(file) Unevictable Mlocked SwapTotal SwapFree Zswap "
    "Zswapped Dirty Writeback AnonPages Mapped Shmem KReclaimable Slab SReclaimable SUnreclaim "
    "KernelStack PageTables SecPageTables NFS_Unstable Bounce WritebackTmp CommitLimit "
    "Committed_AS VmallocTotal VmallocUsed VmallocChunk Percpu AnonHugePages ShmemHugePages "
    "ShmemPmdMapped FileHugePages FilePmdMapped Balloon HugePages_Total HugePages_Free "
    "HugePages_Rsvd HugePages_Surp Hugepagesize Hugetlb DirectMap4k DirectMap2M DirectMap1G"
).split()


def world() -> SimpleNamespace:
    now = [0]
    k = Kernel(clock=lambda: now[0])
    now[0] = 2 * SEC
    sh = k.clone(k.init, comm="bash").task  # 2
    app = k.clone(sh, comm="app").task  # 3
    th = k.clone(app, CLONE_THREAD).task  # 4
    c = k.clone(sh, CLONE_NEWPID, comm="cinit").task  # 5; 1 in its namespace
    now[0] = 1013 * SEC + 790_000_000
    root = View(k, k.root_ns, MountOptions(), boot_epoch=1795442708.9)
    return SimpleNamespace(k=k, now=now, sh=sh, app=app, th=th, c=c, root=root,
                           ns1=root.with_ns(c.pid.ns))


def stat_lines(view: View) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in show_proc_stat(view).decode().splitlines()}


def test_proc_stat_has_linux_keys_in_order() -> None:
    w = world()
    text = show_proc_stat(w.root).decode()
    assert text.startswith("cpu  ")
    assert [line.split()[0] for line in text.splitlines()] == LINUX_STAT_KEYS
    lines = stat_lines(w.root)
    for cpu in ("cpu", "cpu0", "cpu1"):
        assert len(lines[cpu]) == 10 and all(v.isdigit() for v in lines[cpu])
    assert [int(a) + int(b) for a, b in zip(lines["cpu0"], lines["cpu1"], strict=True)] == \
        [int(v) for v in lines["cpu"]]
    assert len(lines["softirq"]) == 11


def test_proc_stat_btime_and_processes_come_from_the_model() -> None:
    w = world()
    lines = stat_lines(w.root)
    assert lines["btime"] == ["1795442708"]
    # four clones after init, whose own fork (from the idle task) counts too: pids 1..5
    assert lines["processes"] == [str(w.k.total_forks)] == ["5"]
    w.k.clone(w.sh)
    assert stat_lines(w.root)["processes"] == ["6"]


def test_proc_stat_processes_is_never_below_the_pids_handed_out() -> None:
    """Linux hands out pids in order, one per fork: a table whose numbers jumped (a moved
    ns_last_pid, set_tid) has had at least that many forks, and each fork after adds one."""
    w = world()
    w.k.set_last_pid(w.k.root_ns, 800)
    assert stat_lines(w.root)["processes"] == ["800"]
    t = w.k.clone(w.sh).task
    assert t.pid.nr == 801 and stat_lines(w.root)["processes"] == ["801"]
    w.k.clone(w.sh)
    assert stat_lines(w.root)["processes"] == ["802"]
    w.k.clone(w.sh, set_tid=[5000])
    assert stat_lines(w.root)["processes"] == ["5000"]
    w.k.set_last_pid(w.k.root_ns, 10)  # moving the cursor back forgets no fork
    w.k.clone(w.sh)
    assert stat_lines(w.root)["processes"] == ["5001"]
    from pidfs_fuse import scenario
    k = scenario.load_default().kernel
    last = max(nr for nr, _ in k.iter_tgids(k.root_ns))
    assert k.total_forks >= last


def test_proc_stat_counts_running_and_blocked_tasks() -> None:
    w = world()
    assert stat_lines(w.root)["procs_running"] == ["1"]  # at least the reader
    w.app.state = w.th.state = w.c.state = "R"
    w.sh.state = "D"
    lines = stat_lines(w.root)
    assert (lines["procs_running"], lines["procs_blocked"]) == (["3"], ["1"])
    w.k.kill(w.app, SIGSTOP)  # a stopped group runs nothing
    assert stat_lines(w.root)["procs_running"] == ["1"]
    w.k.kill(w.app, SIGKILL)  # zombies neither
    assert stat_lines(w.root)["procs_running"] == ["1"]


def test_proc_stat_cpu_time_grows_with_the_clock() -> None:
    w = world()
    before = [int(v) for v in stat_lines(w.root)["cpu"]]
    w.now[0] += 10 * SEC
    after = [int(v) for v in stat_lines(w.root)["cpu"]]
    assert all(a >= b for a, b in zip(after, before, strict=True))
    assert sum(after) - sum(before) == 2 * 10 * 100  # two cpus, 100 ticks a second each


def test_uptime_format_and_value() -> None:
    w = world()
    text = show_uptime(w.root).decode()
    assert re.fullmatch(r"\d+\.\d\d \d+\.\d\d\n", text) and re.fullmatch(r"\d+\.\d\d \d+\.\d\d\n", LINUX_UPTIME)
    up, idle = text.split()
    assert up == "1013.79"
    idle_ticks = int(stat_lines(w.root)["cpu"][3])
    assert float(idle) == pytest.approx(idle_ticks / 100, abs=0.01)


def test_loadavg_shows_running_total_and_the_views_last_pid() -> None:
    w = world()
    pattern = r"\d+\.\d\d \d+\.\d\d \d+\.\d\d \d+/\d+ -?\d+\n"
    assert re.fullmatch(pattern, LINUX_LOADAVG)
    assert show_loadavg(w.root) == b"0.00 0.00 0.00 1/5 5\n"
    w.app.state = "R"
    assert show_loadavg(w.root) == b"0.00 0.00 0.00 1/5 5\n"
    w.th.state = "R"
    assert show_loadavg(w.root) == b"0.00 0.00 0.00 2/5 5\n"
    assert show_loadavg(w.ns1) == b"0.00 0.00 0.00 2/5 1\n"


def test_meminfo_has_linux_6_18_keys_and_parses() -> None:
    w = world()
    lines = show_meminfo(w.root).decode().splitlines()
    assert [line.split(":")[0] for line in lines] == LINUX_MEMINFO_KEYS
    for line in lines:
        assert re.fullmatch(r"[\w()]+:\s+\d+( kB)?", line), line


def test_cpuinfo_version_osrelease_threads_max() -> None:
    w = world()
    cpuinfo = show_cpuinfo(w.root).decode()
    assert re.findall(r"^processor\t: (\d+)$", cpuinfo, re.M) == ["0", "1"]
    assert cpuinfo.endswith("\n\n")
    release = show_osrelease(w.root).decode()
    assert re.fullmatch(r"6\.18\.\d+\S*\n", release)
    assert show_version(w.root).decode().startswith(f"Linux version {release.strip()} ")
    assert show_threads_max(w.root) == b"192730\n"  # no cap: a machine of this size's
    w.root.kernel.max_threads = 5000
    assert show_threads_max(w.root) == b"5000\n"  # the table's cap


def test_psutil_reads_boot_time_memory_and_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    psutil = pytest.importorskip("psutil")
    w = world()
    for name, fn in [("stat", show_proc_stat), ("meminfo", show_meminfo), ("cpuinfo", show_cpuinfo),
                     ("uptime", show_uptime)]:
        (tmp_path / name).write_bytes(fn(w.root))
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(tmp_path))
    assert psutil.boot_time() == 1795442708
    vm = psutil.virtual_memory()
    assert vm.total == 8131552 * 1024 and 0 < vm.available <= vm.total
    assert psutil.cpu_times().idle > 0
    assert psutil.cpu_stats().ctx_switches > 0


# -- sysctls ------------------------------------------------------------------------------------

def test_pid_max_reads_the_views_namespace() -> None:
    w = world()
    assert show_pid_max(w.root) == b"32768\n"
    assert show_pid_max(w.ns1) == b"4194304\n"


def test_pid_max_write_sets_the_views_namespace_only() -> None:
    w = world()
    write_pid_max(w.ns1, None, b"1000\n", 0)
    assert show_pid_max(w.ns1) == b"1000\n" and show_pid_max(w.root) == b"32768\n"
    write_pid_max(w.root, None, b"  40000", 0)
    assert w.k.root_ns.pid_max == 40000
    write_pid_max(w.root, None, b"", 0)  # an empty write changes nothing
    assert w.k.root_ns.pid_max == 40000


@pytest.mark.parametrize(
    ("data", "uid", "err"),
    [(b"abc", 0, errno.EINVAL), (b"300", 0, errno.EINVAL), (b"4194305", 0, errno.EINVAL),
     (b"-5", 0, errno.EINVAL), (b"1000 x", 0, errno.EINVAL), (b"\n", 0, errno.EINVAL),
     (b"1e4", 0, errno.EINVAL), (b"1000", 1000, errno.EPERM), (b"abc", 1000, errno.EPERM)],
    ids=["letters", "below-301", "above-limit", "negative", "trailing-garbage", "blank",
         "exponent", "unprivileged", "unprivileged-before-parse"],
)
def test_pid_max_write_errors_change_nothing(data: bytes, uid: int, err: int) -> None:
    w = world()
    with pytest.raises(KernelError) as e:
        write_pid_max(w.root, None, data, uid)
    assert e.value.errno == err and str(e.value)
    assert w.k.root_ns.pid_max == 32768


def test_ns_last_pid_read_and_write_steer_the_next_pid() -> None:
    w = world()
    assert show_ns_last_pid(w.root) == b"5\n"
    assert show_ns_last_pid(w.ns1) == b"1\n"
    write_ns_last_pid(w.root, None, b"499\n", 0)
    assert show_ns_last_pid(w.root) == b"499\n"
    assert w.k.clone(w.sh).task.pid.nr == 500
    write_ns_last_pid(w.ns1, None, b"41", 0)
    assert w.k.clone(w.c).task.pid.numbers == (501, 42)


@pytest.mark.parametrize(
    ("data", "uid", "err"),
    [(b"abc", 0, errno.EINVAL), (b"32769", 0, errno.EINVAL), (b"-1", 0, errno.EINVAL),
     (b"100", 1000, errno.EPERM), (b"abc", 1000, errno.EPERM)],
    ids=["letters", "above-pid_max", "negative", "unprivileged", "unprivileged-before-parse"],
)
def test_ns_last_pid_write_errors_change_nothing(data: bytes, uid: int, err: int) -> None:
    w = world()
    with pytest.raises(KernelError) as e:
        write_ns_last_pid(w.root, None, data, uid)
    assert e.value.errno == err
    assert show_ns_last_pid(w.root) == b"5\n"
