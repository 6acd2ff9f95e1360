"""The global files of the mount: what procps, psutil and agents read before any pid.

Models fs/proc/stat.c (``/stat``), fs/proc/uptime.c, fs/proc/loadavg.c, fs/proc/meminfo.c,
arch/x86/kernel/cpu/proc.c (``/cpuinfo``), fs/proc/version.c, and the sysctls
``kernel.pid_max`` (kernel/pid.c, per pid namespace since 6.14), ``kernel.ns_last_pid``
(kernel/pid_namespace.c ``pid_ns_ctl_handler``), ``kernel.threads-max`` and
``kernel.osrelease``.

From the model: boot time (``View.boot_epoch``), uptime (the model's clock), ``processes``
(``Kernel.total_forks``), running and blocked tasks (a scan of every task: the model keeps no
nr_running counter; the scan walks thread groups by the tagged listing, then their threads),
the thread count (``Kernel.nr_threads``), and the view namespace's ``pid_max`` and last pid.
cpu time and load averages come from kernel/sched.py (the running tasks' cpu shares, calc_load).
Not modelled, so synthetic: interrupts, memory, cpu identity.

Global renderers share the per-pid signature ``(view, task) -> bytes`` with ``task`` None, and
writers ``(view, task, data, uid) -> None``, so tables treat them alike. The sysctls act on the
view's namespace (``/.pidns/<inum>/sys/kernel/pid_max`` is that namespace's), where Linux uses
the writer's active namespace; the spec chooses the view.
"""

from __future__ import annotations

import errno
import re

from ..kernel import ExitState, KernelError, Task
from ..kernel.core import MAX_THREADS
from ..kernel.sched import NR_CPUS as NR_CPUS
from .view import View

OSRELEASE = "6.18.0-pidfs"
#: threads-max of a machine of this size; SigQ and "Max processes" show half of it
THREADS_MAX = 192730

_VERSION = (f"Linux version {OSRELEASE} (pidfs_fuse@model) (gcc (Debian 12.2.0-14) 12.2.0, "
            "GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC "
            "Thu Jan  1 00:00:00 UTC 2026\n").encode()

_INTR_ZEROS = " 0" * 63
_SOFTIRQ_ZEROS_FMT = "softirq {total} 0 {timer} 0 {net} {block} 0 {tasklet} {sched} 0 {rcu}\n"


# -- run-state census ---------------------------------------------------------------------------

def count_run_states(view: View) -> tuple[int, int]:
    """(running, blocked): tasks in state R and D across the whole model (nr_running(),
    nr_iowait()). Zombies, stopped and released tasks are neither. O(tasks)."""
    kernel = view.kernel
    running = blocked = 0
    for _nr, leader in kernel.iter_tgids(kernel.root_ns):
        g = leader.group
        if g.stopped:
            continue
        for t in g.threads:
            s = t.state
            if s == "R":
                if t.exit_state is ExitState.RUNNING:
                    running += 1
            elif s == "D" and t.exit_state is ExitState.RUNNING:
                blocked += 1
    return running, blocked


def _cpu_ticks(view: View) -> list[tuple[int, int, int, int, int]]:
    """Per cpu (user, system, idle, iowait, softirq) ticks since boot: kernel/sched.py's
    accounting (the running tasks' shares; the rest idle or iowait)."""
    return view.kernel.sched.cpu_ticks()


def _cpu_line(name: str, user: int, system: int, idle: int, iowait: int, softirq: int) -> str:
    # user nice system idle iowait irq softirq steal guest guest_nice
    return f"{name} {user} 0 {system} {idle} {iowait} 0 {softirq} 0 0 0\n"


# -- /stat, /uptime, /loadavg ---------------------------------------------------------------------

def show_proc_stat(view: View, task: Task | None = None) -> bytes:
    """/stat (fs/proc/stat.c show_stat): cpu lines, intr, ctxt, btime, processes,
    procs_running (at least 1: the reader runs), procs_blocked, softirq."""
    kernel = view.kernel
    cpus = _cpu_ticks(view)
    tot = [sum(c[i] for c in cpus) for i in range(5)]
    running, blocked = count_run_states(view)
    ticks = view.ticks(kernel.clock())
    intr = ticks * 12 + kernel.total_forks
    sirq = tot[4]
    lines = [_cpu_line("cpu ", *tot)]
    lines += [_cpu_line(f"cpu{i}", *c) for i, c in enumerate(cpus)]
    lines.append(f"intr {intr}{_INTR_ZEROS}\n")
    lines.append(f"ctxt {ticks * 30 + kernel.total_forks * 4}\n")
    lines.append(f"btime {int(view.boot_epoch)}\n")
    lines.append(f"processes {kernel.total_forks}\n")
    lines.append(f"procs_running {max(1, running)}\n")
    lines.append(f"procs_blocked {blocked}\n")
    timer = sirq // 2
    lines.append(_SOFTIRQ_ZEROS_FMT.format(total=sirq, timer=timer, net=0, block=sirq // 10,
                                           tasklet=0, sched=sirq // 5,
                                           rcu=sirq - timer - sirq // 10 - sirq // 5))
    return "".join(lines).encode()


def _centis(ns: int) -> str:
    cs = ns // 10_000_000
    return f"{cs // 100}.{cs % 100:02d}"


def show_uptime(view: View, task: Task | None = None) -> bytes:
    """/uptime (fs/proc/uptime.c): seconds since boot and idle seconds summed over cpus,
    "%lu.%02lu", truncated like the kernel."""
    up = view.kernel.clock()
    idle_ticks = sum(c[2] for c in _cpu_ticks(view))
    idle_ns = idle_ticks * 1_000_000_000 // view.hz
    return f"{_centis(up)} {_centis(idle_ns)}\n".encode()


def show_loadavg(view: View, task: Task | None = None) -> bytes:
    """/loadavg (fs/proc/loadavg.c): three load averages (kernel/sched.py's calc_load), running/total
    tasks, and the view namespace's last allocated pid (idr cursor - 1)."""
    running, _blocked = count_run_states(view)
    one, five, fifteen = view.kernel.sched.loadavg()
    return (f"{one} {five} {fifteen} {max(1, running)}/{view.kernel.nr_threads} "
            f"{view.ns.last_pid}\n").encode()


# -- /meminfo, /cpuinfo, /version -----------------------------------------------------------------

_MEMINFO = b"""\
MemTotal:        8131552 kB
MemFree:         5630828 kB
MemAvailable:    7298960 kB
Buffers:           96964 kB
Cached:          1671140 kB
SwapCached:            0 kB
Active:          1185744 kB
Inactive:         939764 kB
Active(anon):     402412 kB
Inactive(anon):        0 kB
Active(file):     783332 kB
Inactive(file):   939764 kB
Unevictable:       15212 kB
Mlocked:           14208 kB
SwapTotal:       2097148 kB
SwapFree:        2097148 kB
Zswap:                 0 kB
Zswapped:              0 kB
Dirty:                60 kB
Writeback:             0 kB
AnonPages:        372816 kB
Mapped:           266048 kB
Shmem:             29596 kB
KReclaimable:     133740 kB
Slab:             215716 kB
SReclaimable:     133740 kB
SUnreclaim:        81976 kB
KernelStack:        6816 kB
PageTables:         9532 kB
SecPageTables:         0 kB
NFS_Unstable:          0 kB
Bounce:                0 kB
WritebackTmp:          0 kB
CommitLimit:     6162924 kB
Committed_AS:    2236704 kB
VmallocTotal:   34359738367 kB
VmallocUsed:       28172 kB
VmallocChunk:          0 kB
Percpu:             1376 kB
AnonHugePages:         0 kB
ShmemHugePages:        0 kB
ShmemPmdMapped:        0 kB
FileHugePages:         0 kB
FilePmdMapped:         0 kB
Balloon:               0 kB
HugePages_Total:       0
HugePages_Free:        0
HugePages_Rsvd:        0
HugePages_Surp:        0
Hugepagesize:       2048 kB
Hugetlb:               0 kB
DirectMap4k:      198464 kB
DirectMap2M:     8189952 kB
DirectMap1G:           0 kB
"""

_CPU_FLAGS = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx "
              "fxsr sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl "
              "xtopology nonstop_tsc cpuid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 "
              "sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand hypervisor "
              "lahf_lm abm 3dnowprefetch fsgsbase bmi1 avx2 smep bmi2 erms invpcid rdseed adx smap "
              "clflushopt clwb sha_ni xsaveopt xsavec xgetbv1 xsaves arat umip rdpid")

_CPUINFO = "\n".join(
    f"processor\t: {i}\n"
    "vendor_id\t: GenuineIntel\n"
    "cpu family\t: 6\n"
    "model\t\t: 106\n"
    "model name\t: pidfs_fuse virtual CPU @ 2.60GHz\n"
    "stepping\t: 6\n"
    "microcode\t: 0x1\n"
    "cpu MHz\t\t: 2600.000\n"
    "cache size\t: 32768 KB\n"
    "physical id\t: 0\n"
    f"siblings\t: {NR_CPUS}\n"
    f"core id\t\t: {i}\n"
    f"cpu cores\t: {NR_CPUS}\n"
    f"apicid\t\t: {i}\n"
    f"initial apicid\t: {i}\n"
    "fpu\t\t: yes\n"
    "fpu_exception\t: yes\n"
    "cpuid level\t: 27\n"
    "wp\t\t: yes\n"
    f"flags\t\t: {_CPU_FLAGS}\n"
    "bugs\t\t: spectre_v1 spectre_v2 spec_store_bypass swapgs\n"
    "bogomips\t: 5200.00\n"
    "clflush size\t: 64\n"
    "cache_alignment\t: 64\n"
    "address sizes\t: 46 bits physical, 48 bits virtual\n"
    "power management:\n"
    for i in range(NR_CPUS)
).encode() + b"\n"


def show_meminfo(view: View, task: Task | None = None) -> bytes:
    """/meminfo (fs/proc/meminfo.c format): a constant 8 GiB machine."""
    return _MEMINFO


def show_cpuinfo(view: View, task: Task | None = None) -> bytes:
    """/cpuinfo: NR_CPUS identical x86-64 processors."""
    return _CPUINFO


def show_version(view: View, task: Task | None = None) -> bytes:
    """/version (fs/proc/version.c linux_proc_banner)."""
    return _VERSION


# -- /sys/kernel ----------------------------------------------------------------------------------

_INT_RE = re.compile(rb"\s*([-+]?\d+)\s*")


def _parse_sysctl_int(name: str, data: bytes) -> int | None:
    """proc_dointvec's parse: one decimal integer, optional sign, surrounding blanks and a
    trailing newline allowed. None for an empty write (the kernel consumes nothing and changes
    nothing); EINVAL for anything else that is not such a number."""
    if not data:
        return None
    m = _INT_RE.fullmatch(data)
    if m is None:
        shown = data[:40].decode("utf-8", "replace")
        raise KernelError(errno.EINVAL, f"{name}: {shown!r} is not a decimal integer")
    return int(m.group(1))


def show_pid_max(view: View, task: Task | None = None) -> bytes:
    """kernel.pid_max of the view's namespace."""
    return f"{view.ns.pid_max}\n".encode()


def write_pid_max(view: View, task: Task | None, data: bytes, uid: int) -> None:
    """Write kernel.pid_max of the view's namespace: EPERM for a non-root writer (checked first,
    as the kernel refuses at open), EINVAL for text that is not a number or a number outside
    301..4194304 (Kernel.set_pid_max)."""
    if uid != 0:
        raise KernelError(errno.EPERM, f"uid {uid} may not change pid_max (only uid 0)")
    value = _parse_sysctl_int("pid_max", data)
    if value is not None:
        view.kernel.set_pid_max(view.ns, value, uid=uid)


def show_ns_last_pid(view: View, task: Task | None = None) -> bytes:
    """kernel.ns_last_pid of the view's namespace (idr cursor - 1)."""
    return f"{view.ns.last_pid}\n".encode()


def write_ns_last_pid(view: View, task: Task | None, data: bytes, uid: int) -> None:
    """Write kernel.ns_last_pid (pid_ns_ctl_handler): EPERM for a non-root writer before the
    text is parsed, then EINVAL for non-numbers and values outside 0..pid_max."""
    if uid != 0:
        raise KernelError(errno.EPERM, f"uid {uid} may not write ns_last_pid (needs "
                          "CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE: uid 0 in the model)")
    value = _parse_sysctl_int("ns_last_pid", data)
    if value is not None:
        view.kernel.set_last_pid(view.ns, value, uid=uid)


def show_threads_max(view: View, task: Task | None = None) -> bytes:
    """kernel.threads-max: the table's cap (``Kernel.max_threads``), else this machine size's."""
    cap = view.kernel.max_threads
    return f"{THREADS_MAX if cap is None else cap}\n".encode()


def write_threads_max(view: View, task: Task | None, data: bytes, uid: int) -> None:
    """Write kernel.threads-max (sysctl_max_threads): the table's cap, 1..0x3fffffff, else
    EINVAL; EPERM for a non-root writer. Lowering it below the tasks there are is allowed:
    clones then fail with EAGAIN until enough have gone. The new cap holds for this mount
    until it is written again (``--max-tasks`` gives the one it starts with)."""
    if uid != 0:
        raise KernelError(errno.EPERM, f"uid {uid} may not change threads-max (only uid 0)")
    value = _parse_sysctl_int("threads-max", data)
    if value is None:
        return
    if not 1 <= value <= MAX_THREADS:
        raise KernelError(errno.EINVAL, f"threads-max: {value} is outside 1..{MAX_THREADS}")
    view.kernel.max_threads = value


def show_osrelease(view: View, task: Task | None = None) -> bytes:
    """kernel.osrelease, also the release /version names."""
    return f"{OSRELEASE}\n".encode()
