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
import contextlib
import gc
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from .. import rundir

log = logging.getLogger(__name__)

LOG_LEVELS = ("debug", "info", "warning", "error")
#: PID_MAX_LIMIT (kernel/idr.py): every task holds a number in the root namespace
PID_MAX_LIMIT = 4 * 1024 * 1024
#: the memory budget of one task for the default cap: a bulk-cloned task costs the server
#: about 1,100 bytes of RSS (bench/bulk_bench.py; a listing costs it nothing per entry since
#: listed directories have derived inode numbers), with room for what lookups and open files
#: keep; rounded up
BYTES_PER_TASK = 2048

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
    m.add_argument("--clock", choices=("frozen", "real"), default=None,
                   help="frozen: time moves only with 'ctl DIR tick 1.5s'; real: with wall time "
                        "(default: the scenario's 'clock' key, else frozen)")
    m.add_argument("--max-tasks", type=_positive, metavar="N",
                   help="the most tasks the table may hold (kernel.threads-max): a clone, load or "
                        "restore past it fails with EAGAIN; a scenario's max_tasks below it wins "
                        f"(default: {BYTES_PER_TASK:,} bytes each in a quarter of this machine's "
                        "memory)")
    m.add_argument("-f", "--foreground", action="store_true", help="serve in the foreground")
    m.add_argument("--log", metavar="FILE",
                   help="where the server logs (default: a file in the run directory, removed with "
                        "the mount; a FILE you name is kept; with -f: stderr)")
    m.add_argument("--log-level", choices=LOG_LEVELS, default="warning",
                   help="what the server logs: debug (every request), info, warning (default), error")
    m.add_argument("--keep-log", action="store_true",
                   help="keep the default log file after the mount is gone")
    m.add_argument("--debug", action="store_true", help="the same as --log-level debug")
    m.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n < PID_MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a task count (1 to {PID_MAX_LIMIT - 1:,})")
    return n


def default_max_tasks(meminfo: str = "/proc/meminfo") -> int:
    """The cap of a mount without ``--max-tasks``: as many tasks as fit a quarter of this
    machine's memory at ``BYTES_PER_TASK`` each (so a full table cannot push the machine into
    swap or the OOM killer), at most PID_MAX_LIMIT - 1 (every task has a root number)."""
    try:
        with open(meminfo) as f:
            total_kb = next(int(ln.split()[1]) for ln in f if ln.startswith("MemTotal:"))
    except (OSError, StopIteration, ValueError, IndexError):
        total_kb = 4 * 1024 * 1024  # unknown: assume a 4 GiB machine
    return max(1000, min(PID_MAX_LIMIT - 1, total_kb * 1024 // 4 // BYTES_PER_TASK))


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
    from .. import scenario, snapshot

    cap = args.max_tasks if args.max_tasks is not None else default_max_tasks()
    try:
        if args.restore:
            return snapshot.restore_file(args.restore, progress=_reporter(args, "restoring", progress),
                                         max_tasks=cap)
        if args.scenario:
            return scenario.load(args.scenario, progress=_reporter(args, "loading", progress),
                                 max_tasks=cap).kernel
        return scenario.load_default(max_tasks=cap).kernel
    except (OSError, ValueError) as e:
        raise ServerError(str(e)) from None


def _build_fs(args: argparse.Namespace, progress: ProgressFactory | None):
    opts = parse_options(args.options)
    allow_other = "allow_other" in [o.strip() for o in args.options.split(",")]
    # no cyclic collection while loading: each full one walks every task made so far (seconds
    # at a million, during which no progress is reported); server.run freezes the loaded
    # table and turns the collector back on
    gc.disable()
    try:
        kernel = _load_kernel(args, progress)
    except BaseException:
        gc.enable()
        raise
    mode = args.clock or kernel.sched.default_mode or "frozen"
    if mode == "real" and kernel.sched.source is None:
        kernel.sched.go_real(time.monotonic_ns)  # the mount feeds the model its time
    elif mode == "frozen":
        kernel.sched.freeze()
    if args.self_pid is not None and kernel.find_task(kernel.root_ns, args.self_pid) is None:
        raise ServerError(f"--self {args.self_pid}: the table has no process {args.self_pid}")
    from .fs import PidFs

    fs = PidFs(kernel, options=opts, linear_scan=args.tgid_scan == "linear",
               self_template=args.self_pid)
    return fs, allow_other


def _fail(msg: str) -> int:
    print(f"pidfs-fuse: {msg}", file=sys.stderr)
    return 1


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.debug else getattr(logging, args.log_level.upper())
    fmt = "%(asctime)s %(name)s %(levelname)s %(message)s"
    if args.log and args.ready_fd is None:  # -f --log FILE; a background server's stderr is its log
        logging.basicConfig(level=level, format=fmt, filename=args.log)
    else:
        logging.basicConfig(level=level, format=fmt)


def _record(args: argparse.Namespace, mountpoint: str) -> rundir.Record:
    src = (f"restore {args.restore}" if args.restore else
           f"scenario {args.scenario}" if args.scenario else "default table")
    extra = {"tgid_scan": args.tgid_scan}
    if args.max_tasks is not None:
        extra["max_tasks"] = str(args.max_tasks)
    if args.self_pid is not None:
        extra["self"] = str(args.self_pid)
    return rundir.Record(mountpoint=os.path.realpath(mountpoint), pid=os.getpid(),
                         starttime=rundir.process_starttime(os.getpid()) or 0, since=time.time(),
                         options=args.options, source=src,
                         log=os.path.abspath(args.log) if args.log else None,
                         keep_log=args.keep_log, extra=extra)


def serve(args: argparse.Namespace, *, progress: ProgressFactory | None = None) -> int:
    """Load the table ``args`` describes (``add_arguments``) and serve it here until unmounted,
    detached or signalled; writes ``ready`` to ``args.ready_fd`` once mounted. While it serves,
    the mount's record lies in the run directory (``pidfs_fuse.rundir``); on the way out it is
    removed, with the log unless ``--keep-log``. Exit status: 0, or 1 after printing why."""
    _setup_logging(args)
    mountpoint = os.path.abspath(args.mountpoint)
    rec = _record(args, mountpoint)
    written = [False]

    def on_ready() -> None:
        try:
            rundir.write_record(rec)
            written[0] = True
        except (OSError, rundir.RunDirError) as e:
            log.warning("no record of this mount in the run directory: %s", e)
        log.info("serving %s (pid %d)", mountpoint, os.getpid())

    try:
        fs, allow_other = _build_fs(args, progress)
        rec.extra["clock"] = fs.kernel.sched.mode  # written at on_ready, for pidfs-fuse status
        from .server import run

        run(mountpoint, fs, allow_other=allow_other, ready_fd=args.ready_fd, on_ready=on_ready)
        log.info("%s is unmounted; exiting", mountpoint)
    except ServerError as e:
        return _fail(str(e))
    except RuntimeError as e:  # pyfuse3.init failures
        return _fail(f"could not mount {mountpoint}: {e}")
    finally:
        if written[0]:
            rundir.remove_record(rec, only_pid=os.getpid())
        elif rec.log and not rec.keep_log:
            with contextlib.suppress(OSError):
                os.unlink(rec.log)
    return 0


def server_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pidfs_fuse.mount",
                                description="The pidfs-fuse server (started by 'pidfs-fuse mount').")
    add_arguments(p)
    return serve(p.parse_args(argv))
