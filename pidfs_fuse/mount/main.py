"""The server's entry point: load a table, build the file system, serve it until unmounted.

``python -m pidfs_fuse.mount MOUNTPOINT [options] --ready-fd N`` is the background server that
``pidfs-fuse mount`` (``client.spawn_server``) starts: it loads the table, reports
``progress LABEL DONE TOTAL`` lines and then ``ready`` on the pipe ``N`` once the mount exists,
and on failure prints one ``pidfs-fuse: ...`` sentence on stderr (its log, whose last line the
client shows) and exits 1 with nothing mounted. ``pidfs-fuse mount -f`` serves through ``serve``
in the foreground. Importing this module is cheap (argparse only): the CLI builds its ``mount``
options from ``add_arguments`` without loading pyfuse3, and the server never imports the CLI.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any, Callable

#: progress(label) -> a report(done, total) callback, or None to show nothing
ProgressFactory = Callable[[str], "Callable[[int, int], None] | None"]


class ServerError(Exception):
    """The table cannot be served: printed as one sentence, exit status 1."""


def add_arguments(m: argparse.ArgumentParser) -> None:
    """The options of a mount: the server's, and the CLI's ``mount`` command's."""
    m.add_argument("mountpoint", metavar="MOUNTPOINT")
    src = m.add_mutually_exclusive_group()
    src.add_argument("--scenario", metavar="FILE", help="TOML scenario to boot instead of the default table")
    src.add_argument("--restore", metavar="FILE", help="snapshot written by 'ctl MOUNT snapshot FILE'")
    m.add_argument("-o", dest="options", default="", metavar="OPTS",
                   help="hidepid=0|1|2|noaccess|invisible, gid=N, subset=pid, allow_other (comma-separated)")
    m.add_argument("--self", dest="self_pid", type=int, metavar="PID",
                   help="the process whose files a caller sees as its own /proc/<pid> when the table "
                        "has no process with the caller's number (default: a child of init)")
    m.add_argument("--tgid-scan", choices=("tagged", "linear"), default="tagged",
                   help="how the root is listed: tagged ids only (default) or the kernel's linear walk")
    m.add_argument("-f", "--foreground", action="store_true", help="serve in the foreground")
    m.add_argument("--debug", action="store_true", help="log every request (foreground only)")
    m.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)


def parse_options(options: str) -> Any:
    """``-o`` parsed into the view's mount options; ``ServerError`` for a bad one."""
    from ..kernel import KernelError
    from ..procfs.view import parse_mount_options

    try:
        return parse_mount_options(options)
    except KernelError as e:
        raise ServerError(f"bad mount option: {e.reason}") from None


def _reporter(args: argparse.Namespace, label: str, progress: ProgressFactory | None):
    """Progress for a load: sent up the ready pipe for the client to draw (the background
    server's stderr is a log file), or drawn by ``progress`` in the foreground."""
    fd = getattr(args, "ready_fd", None)
    if fd is None:
        return progress(label) if progress is not None else None
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if total <= 10_000 or (done < total and now - last[0] < 0.1):
            return
        last[0] = now
        os.write(fd, f"progress {label} {done} {total}\n".encode())
    return report


def _load_kernel(args: argparse.Namespace, progress: ProgressFactory | None):
    from .. import scenario
    from .. import snapshot

    try:
        if args.restore:
            return snapshot.restore_file(args.restore, progress=_reporter(args, "restoring", progress))
        if args.scenario:
            return scenario.load(args.scenario, progress=_reporter(args, "loading", progress)).kernel
        return scenario.load_default().kernel
    except (OSError, ValueError) as e:
        raise ServerError(str(e)) from None


def _build_fs(args: argparse.Namespace, progress: ProgressFactory | None):
    opts = parse_options(args.options)
    allow_other = "allow_other" in [o.strip() for o in args.options.split(",")]
    kernel = _load_kernel(args, progress)
    if args.self_pid is not None and kernel.find_task(kernel.root_ns, args.self_pid) is None:
        raise ServerError(f"--self {args.self_pid}: the table has no process {args.self_pid}")
    from .fs import PidFs

    fs = PidFs(kernel, options=opts, linear_scan=args.tgid_scan == "linear",
               self_template=args.self_pid)
    return fs, allow_other


def _fail(msg: str) -> int:
    print(f"pidfs-fuse: {msg}", file=sys.stderr)
    return 1


def serve(args: argparse.Namespace, *, progress: ProgressFactory | None = None) -> int:
    """Load the table ``args`` describes (``add_arguments``) and serve it here until unmounted
    or signalled; writes ``ready`` to ``args.ready_fd`` once mounted. Exit status: 0, or 1
    after printing why."""
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        fs, allow_other = _build_fs(args, progress)
        from .server import run

        run(args.mountpoint, fs, allow_other=allow_other, ready_fd=args.ready_fd)
    except ServerError as e:
        return _fail(str(e))
    except RuntimeError as e:  # pyfuse3.init failures
        return _fail(f"could not mount {args.mountpoint}: {e}")
    return 0


def server_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pidfs_fuse.mount",
                                description="The pidfs-fuse server (started by 'pidfs-fuse mount').")
    add_arguments(p)
    return serve(p.parse_args(argv))
