"""Running the FUSE server: mount, serve until unmounted or signalled, always clean up.

``serve`` is a trio service in the usual shape: it calls ``task_status.started()`` once the
mount exists and stops when cancelled, when the mount goes away, or on SIGTERM/SIGINT; in every
case ``pyfuse3.close(unmount=True)`` runs in ``finally``.
"""

from __future__ import annotations

import logging
import os
import signal

import pyfuse3
import trio

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


async def serve(mountpoint: str, fs: PidFs, *, allow_other: bool = False,
                task_status=trio.TASK_STATUS_IGNORED) -> None:
    pyfuse3.init(fs, mountpoint, fuse_options(allow_other=allow_other))
    try:
        async with trio.open_nursery() as nursery:
            fs.nursery = nursery
            nursery.start_soon(_stop_on_signals, nursery.cancel_scope)
            task_status.started()
            await pyfuse3.main(min_tasks=MIN_TASKS, max_tasks=MAX_TASKS)
            nursery.cancel_scope.cancel()  # unmounted from outside: main returned
    finally:
        pyfuse3.close(unmount=True)


async def _stop_on_signals(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for sig in signals:
            log.info("got %s, unmounting", signal.Signals(sig).name)
            scope.cancel()
            return


def run(mountpoint: str, fs: PidFs, *, allow_other: bool = False, ready_fd: int | None = None) -> None:
    """Serve in this process until unmounted; write "ready" to ``ready_fd`` once mounted."""

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: serve(mountpoint, fs, allow_other=allow_other,
                                                           task_status=task_status))
            if ready_fd is not None:
                os.write(ready_fd, b"ready\n")
                os.close(ready_fd)

    trio.run(main)
