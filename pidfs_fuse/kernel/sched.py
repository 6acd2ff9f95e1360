"""The model's time: a clock the table owns, CPU accounting, and the load average.

Models three pieces of Linux: the tick that moves ``jiffies`` and charges the running tasks
(kernel/time/timer.c update_process_times -> kernel/sched/cputime.c account_process_tick), the
per-cpu ``kcpustat`` counters /proc/stat shows (user, system, idle, iowait, softirq), and
kernel/sched/loadavg.c's fixed-point ``calc_load`` (FSHIFT 11, EXP_1 1884, EXP_5 2014, EXP_15
2037, folded from the count of running and uninterruptible tasks once every LOAD_FREQ).

The clock is ``frozen`` (moves only through ``advance``: the control plane's ``tick``) or
``real`` (reads an injected ``source`` of nanoseconds; the mount passes monotonic time). The
model reads no wall clock itself. Times are nanoseconds since the model's boot.

CPU accounting, per advance of ``dt``: each thread in state R of a live, not stopped group asks
for ``share`` of one cpu (default 100%; ``set TID cpu=75%``), of which ``user`` (default 1.0,
``set TID user=0.8``) is user time and the rest system time. When the running threads ask for
more than ``NR_CPUS`` cpus, every share is scaled down in proportion (what CFS gives equal-weight
tasks). A thread's time is kept in nanoseconds and shown in clock ticks (``Task.utime``/``stime``
gain the whole ticks; the remainder waits here), so many small ticks add up exactly as one big
one. The busy time is spread evenly over the cpus; the rest of each cpu's time is idle, or
iowait for as many cpus as there are tasks in D. Sleeping, stopped and zombie tasks accrue
nothing. So /proc/stat's cpu lines always add up to uptime x NR_CPUS (within a tick of
truncation per field). A reaped child's times go to its parent's ``cutime``/``cstime``
(``account_reaped``, Linux's wait_task_zombie), threads that exit leave theirs to the group
(signal_struct utime/stime: ``dead_times``).

Departures: Linux's LOAD_FREQ is 5 s + 1 jiffy and samples 10 ticks late; here the load is
folded at every multiple of exactly 5 s of clock time, with the task counts of that moment (a
frozen clock's ``tick`` that crosses several windows folds them at once with
``calc_load_n``, as Linux's NO_HZ catch-up does). In ``real`` mode accounting catches up lazily,
at most once per jiffy, whenever the model reads its clock: a state change inside that jiffy
is charged as if it had happened at its start.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import KernelError

if TYPE_CHECKING:
    from .core import Kernel
    from .task import Task, ThreadGroup

NR_CPUS = 2
NSEC_PER_SEC = 1_000_000_000
USER_HZ = 100
TICK_NS = NSEC_PER_SEC // USER_HZ  # one clock tick (jiffy of USER_HZ)
PPM = 1_000_000  # shares are parts per million

# include/linux/sched/loadavg.h
FSHIFT = 11
FIXED_1 = 1 << FSHIFT
EXP_1 = 1884
EXP_5 = 2014
EXP_15 = 2037
LOAD_FREQ_NS = 5 * NSEC_PER_SEC

CLOCK_MODES = ("frozen", "real")
DEFAULT_CPU_PPM = PPM  # an R task spins on one whole cpu
DEFAULT_USER_PPM = PPM  # ... in user space


def calc_load(load: int, exp: int, active: int) -> int:
    """kernel/sched/loadavg.c calc_load(): a1 = a0 * e + a * (1 - e), rounded, fixed point."""
    load *= exp
    load += active * (FIXED_1 - exp)
    load += 1 << (FSHIFT - 1)
    return load >> FSHIFT


def fixed_power_int(x: int, frac_bits: int, n: int) -> int:
    """kernel/sched/loadavg.c fixed_power_int(): x**n in fixed point, O(log n)."""
    result = 1 << frac_bits
    if n:
        while True:
            if n & 1:
                result *= x
                result += 1 << (frac_bits - 1)
                result >>= frac_bits
            n >>= 1
            if not n:
                break
            x *= x
            x += 1 << (frac_bits - 1)
            x >>= frac_bits
    return result


def calc_load_n(load: int, exp: int, active: int, n: int) -> int:
    """calc_load_n(): ``n`` folds at once with the same ``active``."""
    return calc_load(load, fixed_power_int(exp, FSHIFT, n), active)


def format_load(x: int) -> str:
    """fs/proc/loadavg.c: LOAD_INT(x).LOAD_FRAC(x) of avenrun + FIXED_1/200."""
    x += FIXED_1 // 200
    return f"{x >> FSHIFT}.{((x & (FIXED_1 - 1)) * 100) >> FSHIFT:02d}"


def parse_duration(text: str) -> int:
    """``1.5s``, ``250ms``, ``100j`` (jiffies of USER_HZ), ``2m``, ``1h``, ``10us``, ``5ns`` or a
    bare number of seconds, to nanoseconds. EINVAL with a sentence for anything else."""
    units = (("ms", 1_000_000), ("us", 1_000), ("ns", 1), ("s", NSEC_PER_SEC),
             ("m", 60 * NSEC_PER_SEC), ("h", 3600 * NSEC_PER_SEC), ("j", TICK_NS))
    t = text.strip() if isinstance(text, str) else ""
    mult = NSEC_PER_SEC
    for suffix, m in units:
        if t.endswith(suffix):
            t, mult = t[: -len(suffix)], m
            break
    whole, dot, frac = t.partition(".")
    if (not whole and not frac) or not (whole or "0").isdigit() or (dot and not frac.isdigit()) \
            or not t.isascii() or len(t) > 30:
        raise KernelError(errno.EINVAL, f"duration {text!r}: expected a number with a unit "
                          "s, ms, us, ns, m, h or j (jiffies), e.g. 1.5s, 250ms, 100j")
    ns = int(whole or "0") * mult + (int(frac) * mult // 10 ** len(frac) if frac else 0)
    return ns


def parse_share(text: str, what: str) -> int:
    """``75%``, ``0.75`` or ``1`` to parts per million (0..PPM). EINVAL otherwise."""
    t = text.strip()
    try:
        v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        v = -1.0
    if not t.replace(".", "", 1).rstrip("%").isdigit() or not 0 <= v <= 1:
        raise KernelError(errno.EINVAL, f"{what}={text!r}: expected a share of one cpu between "
                          "0% and 100% (75%, 0.75)")
    return round(v * PPM)


def format_share(ppm: int) -> str:
    pct = ppm / 10_000
    return f"{pct:g}%"


class Sched:
    """The clock, the per-thread cpu shares and the system-wide counters of one ``Kernel``."""

    __slots__ = (
        "_in_sync",
        "avenrun",
        "cpu_ns",
        "dead_times",
        "default_mode",
        "kernel",
        "mode",
        "next_load",
        "now_ns",
        "rem",
        "shares",
        "source",
        "source_offset",
    )

    def __init__(self, kernel: Kernel, start: int = 0,
                 source: Callable[[], int] | None = None) -> None:
        self.kernel = kernel
        self.mode = "frozen"
        self.source: Callable[[], int] | None = None
        self.source_offset = 0
        self.now_ns = start
        #: per cpu [user, system, idle, iowait, softirq] in ns; the time before the model's clock
        #: started (a table booted with uptime) gets a fixed split, so tools see a used machine
        self.cpu_ns = [_history(start, i) for i in range(NR_CPUS)]
        #: Task -> (cpu ppm, user ppm), only for threads given a share
        self.shares: dict[Task, tuple[int, int]] = {}
        #: Task -> [user ns, system ns] not yet a whole tick
        self.rem: dict[Task, list[int]] = {}
        #: ThreadGroup -> [utime, stime] ticks of its released threads (signal_struct)
        self.dead_times: dict[ThreadGroup, list[int]] = {}
        self.avenrun = [0, 0, 0]
        self.next_load = (start // LOAD_FREQ_NS + 1) * LOAD_FREQ_NS
        self._in_sync = False
        #: what the table asks for (a scenario's ``clock`` key), for a mount given no --clock
        self.default_mode: str | None = None
        if source is not None:
            self.go_real(source)

    # -- the clock ----------------------------------------------------------------------------

    def now(self) -> int:
        """Nanoseconds since boot (the model's ``clock()``). In real mode, the source's time; the
        accounting catches up with it once at least a jiffy has passed."""
        if self.source is None:
            return self.now_ns
        t = self.source() + self.source_offset
        if t - self.now_ns >= TICK_NS and not self._in_sync:
            self._in_sync = True
            try:
                self._advance(t - self.now_ns)
            finally:
                self._in_sync = False
        return max(t, self.now_ns)

    def go_real(self, source: Callable[[], int]) -> None:
        """Let the clock move with ``source`` (nanoseconds, any origin) from now on."""
        self.source = source
        self.source_offset = self.now_ns - source()
        self.mode = "real"

    def freeze(self) -> None:
        self.now()
        self.source = None
        self.mode = "frozen"

    def advance(self, dt: int) -> None:
        """Move a frozen clock ``dt`` ns forward, charging the running tasks. EINVAL when the clock
        is real (it moves by itself) or ``dt`` is negative."""
        if self.source is not None:
            raise KernelError(errno.EINVAL, "the clock is real: it moves with wall time; "
                              "mount with --clock frozen to move it by hand")
        if not isinstance(dt, int) or dt < 0:
            raise KernelError(errno.EINVAL, f"cannot move the clock by {dt!r} ns: time only goes forward")
        self._advance(dt)

    def advance_to(self, t: int) -> None:
        self.advance(max(0, t - self.now_ns))

    # -- shares -------------------------------------------------------------------------------

    def share(self, task: Task) -> tuple[int, int]:
        return self.shares.get(task, (DEFAULT_CPU_PPM, DEFAULT_USER_PPM))

    def set_share(self, task: Task, cpu: int | None = None, user: int | None = None) -> None:
        c, u = self.share(task)
        c = c if cpu is None else cpu
        u = u if user is None else user
        if (c, u) == (DEFAULT_CPU_PPM, DEFAULT_USER_PPM):
            self.shares.pop(task, None)
        else:
            self.shares[task] = (c, u)

    # -- accounting ---------------------------------------------------------------------------

    def running(self) -> tuple[list[Task], int]:
        """(threads in R, count in D) over the whole model: nr_running(), nr_iowait()."""
        from .task import ExitState
        k = self.kernel
        run: list[Task] = []
        blocked = 0
        for _nr, leader in k.iter_tgids(k.root_ns):
            g = leader.group
            if g.stopped:
                continue
            for t in g.threads:
                if t.exit_state is not ExitState.RUNNING:
                    continue
                s = t.state
                if s == "R":
                    run.append(t)
                elif s == "D":
                    blocked += 1
        return run, blocked

    def _advance(self, dt: int) -> None:
        if dt <= 0:
            return
        run, blocked = self.running()
        shares = self.shares
        demand = [(t, shares.get(t, (DEFAULT_CPU_PPM, DEFAULT_USER_PPM))) for t in run]
        total = sum(c for _t, (c, _u) in demand)
        cap = NR_CPUS * PPM
        busy_u = busy_s = 0
        changed: list[Task] = []
        for t, (c, u) in demand:
            if not c:
                continue
            ns = dt * c * cap // (total * PPM) if total > cap else dt * c // PPM
            un = ns * u // PPM
            sn = ns - un
            busy_u += un
            busy_s += sn
            r = self.rem.get(t)
            if r is None:
                r = self.rem[t] = [0, 0]
            r[0] += un
            r[1] += sn
            if r[0] >= TICK_NS or r[1] >= TICK_NS:
                t.utime += r[0] // TICK_NS
                t.stime += r[1] // TICK_NS
                changed.append(t)
            r[0] %= TICK_NS
            r[1] %= TICK_NS
        for i, cpu in enumerate(self.cpu_ns):
            u = busy_u // NR_CPUS + (busy_u % NR_CPUS if i == 0 else 0)
            s = busy_s // NR_CPUS + (busy_s % NR_CPUS if i == 0 else 0)
            free = max(0, dt - u - s)
            io = free if i < blocked else 0
            cpu[0] += u
            cpu[1] += s
            cpu[2] += free - io
            cpu[3] += io
        self._fold_load(self.now_ns + dt, len(run) + blocked)
        self.now_ns += dt
        if self.kernel.listener is not None:
            for t in changed:  # procfs shows new times: cached stat files are stale
                self.kernel.notify_changed(t)

    def _fold_load(self, until: int, active: int) -> None:
        if until < self.next_load:
            return
        n = (until - self.next_load) // LOAD_FREQ_NS + 1
        a = active * FIXED_1
        self.avenrun = [calc_load_n(self.avenrun[0], EXP_1, a, n),
                        calc_load_n(self.avenrun[1], EXP_5, a, n),
                        calc_load_n(self.avenrun[2], EXP_15, a, n)]
        self.next_load += n * LOAD_FREQ_NS

    def loadavg(self) -> tuple[str, str, str]:
        self.now()
        return (format_load(self.avenrun[0]), format_load(self.avenrun[1]),
                format_load(self.avenrun[2]))

    def cpu_ticks(self) -> list[tuple[int, int, int, int, int]]:
        """Per cpu (user, system, idle, iowait, softirq) in clock ticks."""
        self.now()
        return [(c[0] // TICK_NS, c[1] // TICK_NS, c[2] // TICK_NS, c[3] // TICK_NS,
                 c[4] // TICK_NS) for c in self.cpu_ns]

    # -- exit and reap ------------------------------------------------------------------------

    def on_release(self, task: Task) -> None:
        """A released thread: its remainder goes, its times stay with a living group."""
        self.rem.pop(task, None)
        self.shares.pop(task, None)
        g = task.group
        if g.leader is task:
            self.dead_times.pop(g, None)
        elif task.utime or task.stime:
            d = self.dead_times.setdefault(g, [0, 0])
            d[0] += task.utime
            d[1] += task.stime

    def group_times(self, g: ThreadGroup) -> tuple[int, int]:
        """The group's utime, stime: its threads' plus those of threads already released."""
        d = self.dead_times.get(g)
        u, s = (d[0], d[1]) if d else (0, 0)
        for t in g.threads:
            u += t.utime
            s += t.stime
        return u, s

    def account_reaped(self, parent: Task, child: Task) -> None:
        """wait_task_zombie(): the parent's process gains the child's times and its children's."""
        g = child.group
        u, s = self.group_times(g)
        pg = parent.group
        pg.cutime += u + g.cutime
        pg.cstime += s + g.cstime
        self.dead_times.pop(g, None)


def _history(start: int, i: int) -> list[int]:
    """The fixed split of the time before the model's clock started, for cpu ``i``."""
    user = start * (3 + i) // 100
    system = start * (1 + i) // 100
    iowait = start // 1000
    softirq = start // 2000
    return [user, system, start - user - system - iowait - softirq, iowait, softirq]
