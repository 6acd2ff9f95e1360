"""Running the FUSE server: mount, serve until unmounted or signalled, always clean up.

``serve`` is a trio service in the usual shape: it calls ``task_status.started()`` once the
mount exists and stops when cancelled, when the mount goes away, or on SIGTERM/SIGINT; in every
case ``pyfuse3.close(unmount=True)`` runs in ``finally``.

Detach. A lazy unmount (``umount -l``, ``fusermount3 -u -z``) takes the mount out of the tree
at once but leaves the FUSE connection up while anything still holds a file of it: a reader
blocked in a handle file or a ``wait`` would keep the server, and itself, waiting forever. So
the server watches its own mount table (/proc/self/mountinfo reports every change with POLLPRI,
proc(5)) and stops serving as soon as no mount of its connection (the ``major:minor`` the mount
got) is left in it; closing /dev/fuse then aborts the connection, which fails every request
still waiting (the blocked readers get ENOTCONN) and lets them go.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import select
import signal
from collections.abc import Callable

import pyfuse3
import trio

from .. import rundir
from .events import AGAIN_AFTER
from .fs import PidFs

log = logging.getLogger(__name__)

#: pyfuse3 spawns one trio task per request; blocked handle reads and waits each hold one,
#: so the cap is far above what a test opens at once (the default, 99, would stall the mount).
MAX_TASKS = 100_000
#: idle readers kept waiting on /dev/fuse: with one, every request spawns a fresh trio task
#: (pyfuse3 starts a worker whenever none is left waiting), which costs more than the request
MIN_TASKS = 8


def fuse_options(*, allow_other: bool) -> set[str]:
    opts = {"fsname=pidfs_fuse", "subtype=pidfs", "default_permissions"}
    if allow_other:
        opts.add("allow_other")
    return opts


async def _real_clock(fs: PidFs) -> None:
    """A real clock's jiffy: every 10 ms of wall time the model catches up (cpu accounting,
    load average) and the timeline's due events run, as the kernel's timer tick does."""
    from .. import timed

    while True:
        await trio.sleep(0.01)
        timed.run_due(fs.control)
        await fs.settle()


async def serve(mountpoint: str, fs: PidFs, *, allow_other: bool = False,
                task_status=trio.TASK_STATUS_IGNORED) -> None:
    real = os.path.realpath(mountpoint)  # now: once mounted, resolving it asks this server
    pyfuse3.init(fs, mountpoint, fuse_options(allow_other=allow_other))
    detached: list[bool] = []
    try:
        async with trio.open_nursery() as nursery:
            fs.nursery = fs.interrupts.nursery = nursery
            nursery.start_soon(_stop_on_signals, nursery.cancel_scope)
            dev = _our_device(real)
            if dev is not None:
                nursery.start_soon(_stop_on_detach, dev, nursery.cancel_scope, detached)
            if fs.kernel.sched.source is not None:
                nursery.start_soon(_real_clock, fs)
            nursery.start_soon(_housekeeping, fs)
            task_status.started()
            await pyfuse3.main(min_tasks=MIN_TASKS, max_tasks=MAX_TASKS)
            nursery.cancel_scope.cancel()  # unmounted from outside: main returned
    finally:
        # once detached, the path may hold someone else's mount by now: leave it alone
        pyfuse3.close(unmount=not detached)


async def _housekeeping(fs: PidFs) -> None:
    """Once a second: push the later invalidations of reaped pids' entries that fall due when
    no request settles (``events.Changes._due_again``); and after a second without requests,
    once, hand the heap's free pages back to the system (glibc keeps them after a burst of
    churn: the soak's server stayed at its peak RSS without this)."""
    last, trimmed = -1, True
    while True:
        await trio.sleep(AGAIN_AFTER)
        if fs.changes.again or fs.changes.reaped_nodes:
            await fs.changes.settle()
        total = sum(fs.requests.values())
        if total != last:
            last, trimmed = total, False
        elif not trimmed and _malloc_trim is not None:
            trimmed = True
            await trio.to_thread.run_sync(_malloc_trim, 0)


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_malloc_trim = _find_malloc_trim()


async def _stop_on_signals(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for sig in signals:
            log.info("got %s, unmounting", signal.Signals(sig).name)
            scope.cancel()
            return


def _our_device(real: str) -> str | None:
    """The ``major:minor`` of the mount just made at the real path ``real`` (read from
    mountinfo, never by a stat of the mount, which would wait for this very server)."""
    m = rundir.mount_at(real, resolved=True)
    if m is None or not rundir.is_ours(m):
        log.warning("cannot find this mount in /proc/self/mountinfo: a lazy unmount will go unnoticed")
        return None
    return m.dev


def _wait_detached(dev: str) -> None:
    """Block (in a worker thread) until no mount of device ``dev`` is left in this process's
    mount table."""
    with open("/proc/self/mountinfo", "rb") as f:
        p = select.poll()
        p.register(f, select.POLLPRI)
        while True:
            f.seek(0)
            text = f.read().decode("utf-8", "surrogateescape")
            if not any(m.dev == dev for m in rundir.parse_mountinfo(text)):
                return
            p.poll()


async def _stop_on_detach(dev: str, scope: trio.CancelScope, detached: list[bool]) -> None:
    await trio.to_thread.run_sync(_wait_detached, dev, abandon_on_cancel=True)
    detached.append(True)
    log.warning("the mount was detached (lazy unmount); exiting, which fails the requests still waiting")
    scope.cancel()


def run(mountpoint: str, fs: PidFs, *, allow_other: bool = False, ready_fd: int | None = None,
        on_ready: Callable[[], None] | None = None) -> None:
    """Serve in this process until unmounted or detached; once mounted, call ``on_ready`` and
    write "ready" to ``ready_fd``."""
    # the loaded table out of the collector's sight, so no full collection walks it while
    # serving; without collecting first (settle_heap): loading made a few dozen cyclic
    # garbage objects, and a collection over a million tasks kept the caller waiting, with no
    # progress shown, for seconds (11 s, bench/restore_bench.py)
    gc.freeze()
    gc.enable()  # off while loading (main._build_fs)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: serve(mountpoint, fs, allow_other=allow_other,
                                                           task_status=task_status))
            if on_ready is not None:
                on_ready()
            if ready_fd is not None:
                os.write(ready_fd, b"ready\n")
                os.close(ready_fd)

    trio.run(main)
