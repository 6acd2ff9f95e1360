"""The ``pidfs-fuse`` command: mount, unmount, status, exec, ctl, tree, capture, bench.

``mount`` checks the mount point, clears a stale mount left by a killed server (and says so),
starts the server in the background (``python -m pidfs_fuse.mount``) and returns once the mount
answers; ``-f`` serves in the foreground. Errors are one sentence on stderr and exit status 1;
nothing is left mounted after a failure. Everything that speaks to a server or a ``.control``
file goes through ``pidfs_fuse.client``; serving is ``pidfs_fuse.mount.main``.
"""

from __future__ import annotations

import argparse
import errno
import os
import shlex
import subprocess
import sys
import time
from importlib import metadata
from typing import TYPE_CHECKING

from . import capture, client
from .client import MountError
from .mount.main import ServerError, add_arguments

if TYPE_CHECKING:
    from .kernel import Kernel

EPILOG = """\
examples:
  pidfs-fuse mount /tmp/proc                 boot the default table and mount it
  ls /tmp/proc; cat /tmp/proc/1/status
  pidfs-fuse exec /tmp/proc -- ps -ef        ps with the table as /proc, in its own pid namespace
  pidfs-fuse ctl /tmp/proc clone 1 comm=worker      -> prints the new pid
  pidfs-fuse ctl /tmp/proc kill 42 TERM
  read -r how code < /tmp/proc/42/pidfd      blocks until 42 has exited
  pidfs-fuse tree /tmp/proc                  draw its namespaces, processes and threads
  pidfs-fuse capture -o machine.toml         this machine's /proc as a scenario (mount --scenario)
  pidfs-fuse status                          your mounts
  pidfs-fuse unmount /tmp/proc
"""


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def _fail(msg: str) -> int:
    print(f"pidfs-fuse: {msg}", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pidfs-fuse",
        description="A Linux process table you can mount: a model of the kernel's pid machinery "
                    "served as a /proc-like FUSE filesystem.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    m = sub.add_parser("mount", help="mount a process table (returns once it answers)",
                       description="Boot a table (the embedded default, a --scenario, or a --restore "
                                   "snapshot) and serve it at MOUNTPOINT.")
    add_arguments(m)

    u = sub.add_parser("unmount", help="unmount and stop the server")
    u.add_argument("mountpoint", metavar="MOUNTPOINT")
    u.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="how long to wait for the server to exit (default 10); past it, fail and "
                        "name the server's pid")

    x = sub.add_parser("exec", help="run a command with a table as its /proc, safely",
                       description="Run CMD in new mount and pid namespaces with the table mounted at "
                                   "DIR bound on /proc: tools see the table, and a pid read from it never "
                                   "names a real process (kill, pidfd_open, getpriority get ESRCH). "
                                   "Exits with CMD's status. As a normal user this needs unprivileged "
                                   "user namespaces.",
                       epilog="example: pidfs-fuse exec /tmp/proc --as 42 -- ps -o pid,comm")
    x.add_argument("dir", metavar="DIR", help="a mounted table")
    x.add_argument("--as", dest="as_pid", type=int, metavar="PID",
                   help="CMD is the table's process PID: its pid and /proc/self name that process")
    x.add_argument("--stats", action="store_true",
                   help="when CMD ends, print to stderr the FUSE requests the mount answered "
                        "while it ran, by type (from every client of the mount)")
    x.add_argument("command", nargs="*", metavar="-- CMD [ARGS...]",
                   help="the command, after -- (everything after it is CMD's)")

    s = sub.add_parser("status", help="list your live mounts",
                       description="List this user's pidfs-fuse mounts: directory, server pid, table "
                                   "size (threads), clock, options, since when and the table; a stale "
                                   "mount is flagged with the command that clears it.")
    s.add_argument("--timeout", type=float, default=2.0, metavar="SECONDS",
                   help="how long to wait for a mount's answer (default 2)")

    b = sub.add_parser("bench", help="run the benchmarks (from a source checkout)",
                       description="Run bench/ side by side with this machine's /proc and print a "
                                   "table; arguments go to the bench runner (try --help, --quick, --json).")
    b.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS")

    c = sub.add_parser("ctl", help="run one control command (see 'ctl MOUNT help')",
                       description="Write COMMAND to MOUNT/.control and print the reply. Each argument "
                                   "is one token, so comm='a) (b' stays one word.")
    c.add_argument("mountpoint", metavar="MOUNT")
    c.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")

    t = sub.add_parser("tree", help="draw namespaces, processes and threads of a table",
                       description="Draw pid namespaces -> processes -> threads with their numbers at "
                                   "each level (root first: 7001/60/1), states and the pidfds their "
                                   "descriptors hold: of the table mounted at DIR (read through a "
                                   "snapshot), of a --scenario FILE, or of the default table.")
    src = t.add_mutually_exclusive_group()
    src.add_argument("dir", nargs="?", metavar="DIR", help="a mounted table")
    src.add_argument("--scenario", metavar="FILE", help="a TOML scenario (not mounted)")
    t.add_argument("--format", choices=("text", "dot"), default="text",
                   help="text (default) or a graphviz digraph: pidfs-fuse tree --format dot | dot -Tsvg")
    t.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="ANSI colour: when stdout is a terminal (auto, default), always, or never")
    t.add_argument("--threads", type=int, default=None, metavar="N",
                   help="draw at most N threads per process, then a count (default 4; -1: all)")
    t.add_argument("--at", metavar="TIME",
                   help="the table at TIME since boot (10s, 2500ms): the clock moved there, the "
                        "scenario's [[at]] events on the way applied")
    capture.add_parser(sub)
    return p


def _version() -> str:
    try:
        return metadata.version("pidfs_fuse")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"] and argv[1:2] not in (["-h"], ["--help"]):
        # everything after "bench" belongs to the bench runner, options included
        try:
            return cmd_bench(argparse.Namespace(args=argv[1:]))
        except (CliError, MountError, ServerError) as e:
            return _fail(str(e))
    command: list[str] | None = None
    if argv[:1] == ["exec"] and "--" in argv:
        # everything after the first -- is CMD's, options such as --as included
        i = argv.index("--")
        argv, command = argv[:i], argv[i + 1:]
    args = build_parser().parse_args(argv)
    if command is not None:
        args.command = command
    elif args.cmd == "exec" and args.command:
        return _fail("exec: put -- before the command (pidfs-fuse exec DIR [--as PID] -- CMD ...)")
    try:
        return COMMANDS[args.cmd](args)
    except (CliError, MountError, ServerError) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return 130


# -- mount --------------------------------------------------------------------------------------

def _progress(label: str, *, over: int = 10_000):
    """A progress(done, total) callback drawing one updating line on stderr, such as
    ``restoring: 412,000/1,000,000 tasks``, for tables of more than ``over`` tasks; None when
    stderr is not a terminal (nothing is printed then)."""
    if not sys.stderr.isatty():
        return None
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if total <= over or (done < total and now - last[0] < 0.1):
            return
        last[0] = now
        sys.stderr.write(f"\r{label}: {done:,}/{total:,} tasks\x1b[K" + ("\n" if done >= total else ""))
        sys.stderr.flush()
    return report


def cmd_mount(args: argparse.Namespace) -> int:
    mp = os.path.abspath(args.mountpoint)
    if args.foreground or args.ready_fd is not None:
        from .mount.main import serve

        if args.ready_fd is None:  # else started by a client that checked
            for note in client.check_mountpoint(mp):
                print(f"pidfs-fuse: {note}", file=sys.stderr)
            client.check_fuse_access(allow_other="allow_other" in args.options.split(","))
            args.keep_log = args.keep_log or args.log is not None
        args.mountpoint = mp
        return serve(args, progress=_progress)
    # options are checked here; the table is loaded once, by the server, which reports
    # progress and errors up the pipe (nothing is mounted when loading fails)
    from .mount.main import parse_options

    parse_options(args.options)
    for f in (args.scenario, args.restore):
        if f is not None and not os.path.isfile(f):
            raise CliError(f"{f}: {os.strerror(errno.ENOENT)}")
    notes: list[str] = []
    try:
        pid = client.mount(mp, progress=_progress, scenario=args.scenario, restore=args.restore,
                           options=args.options, self_pid=args.self_pid, tgid_scan=args.tgid_scan,
                           clock=args.clock, max_tasks=args.max_tasks, log=args.log, keep_log=args.keep_log,
                           log_level="debug" if args.debug else args.log_level, notes=notes)
    finally:
        for note in notes:
            print(f"pidfs-fuse: {note}", file=sys.stderr)
    print(f"pidfs-fuse: mounted at {mp} (server pid {pid})", file=sys.stderr)
    return 0


# -- unmount ------------------------------------------------------------------------------------

def cmd_unmount(args: argparse.Namespace) -> int:
    client.unmount(args.mountpoint, timeout=args.timeout)
    return 0


# -- exec ---------------------------------------------------------------------------------------

def cmd_exec(args: argparse.Namespace) -> int:
    from . import exec as pexec

    before = None
    if args.stats:
        try:
            before = client.request_counts(args.dir)
        except OSError as e:
            raise CliError(f"--stats: cannot read the request counts of {args.dir}: {e.strerror} "
                           "(is a pidfs-fuse table mounted there?)") from None
    try:
        status = pexec.run(args.dir, args.command, as_pid=args.as_pid)
    except pexec.ExecError as e:
        _fail(str(e))
        return e.status
    if before is not None:
        d = client.request_delta(before, client.request_counts(args.dir))
        print(f"pidfs-fuse: {sum(d.values()):,} requests while the command ran: "
              + (" ".join(f"{k} {v:,}" for k, v in d.items()) or "none"), file=sys.stderr)
    return status


# -- status -------------------------------------------------------------------------------------

def cmd_status(args: argparse.Namespace) -> int:
    rows = client.mount_status(timeout=args.timeout)
    if not rows:
        print(f"pidfs-fuse: no mounts of yours (uid {os.geteuid()})", file=sys.stderr)
        return 0
    table = [("MOUNT", "SERVER", "TASKS", "CLOCK", "OPTIONS", "SINCE", "TABLE")]
    for r in rows:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.since)) if r.since else "-"
        table.append((r.mountpoint, str(r.pid) if r.pid else "-",
                      str(r.tasks) if r.tasks is not None else "-", r.clock, r.options or "-",
                      since, r.source))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for i, row in enumerate(table):
        line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1]
        print(line)
        if i and rows[i - 1].problem:
            print(f"  ^ {rows[i - 1].problem}")
    return 0


# -- ctl ----------------------------------------------------------------------------------------

def cmd_ctl(args: argparse.Namespace) -> int:
    if not args.command:
        raise CliError("ctl needs a command (try: pidfs-fuse ctl MOUNT help)")
    try:
        cf = client.ControlFile(args.mountpoint)
    except OSError as e:
        path = os.path.join(args.mountpoint, client.CONTROL)
        raise CliError(f"cannot open {path}: {e.strerror} (is a pidfs-fuse table mounted there?)") from None
    with cf:
        err, reply = cf.exchange(shlex.join(args.command) + "\n")
    if err:
        return _fail(f"{args.command[0]}: {client.reason(err, reply)}")
    sys.stdout.write(reply)
    return 0


# -- bench --------------------------------------------------------------------------------------

def cmd_bench(args: argparse.Namespace) -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.exists(os.path.join(root, "bench", "__main__.py")):
        raise CliError("the benchmarks live in the source tree (bench/); run this from a checkout "
                       "installed with 'make setup'")
    return subprocess.call([sys.executable, "-m", "bench", *args.args], cwd=root)


# -- tree ---------------------------------------------------------------------------------------

def _mounted_kernel(mountpoint: str):
    """The table served at ``mountpoint``, read through ``snapshot`` into a temporary file."""
    import tempfile

    from .kernel import KernelError
    from .snapshot import restore_file

    control = os.path.join(mountpoint, client.CONTROL)
    if not os.path.exists(control):
        raise CliError(f"{mountpoint} is not a pidfs-fuse mount (no .control file)")
    with tempfile.TemporaryDirectory(prefix="pidfs-tree-") as tmp:
        snap = os.path.join(tmp, "table.snapshot")
        try:
            err, reply = client.exchange(mountpoint, client.command_line("snapshot", snap) + "\n")
        except OSError as e:
            raise CliError(f"cannot open {control}: {e.strerror}") from None
        if err:
            raise CliError(f"snapshot of {mountpoint} failed: {client.reason(err, reply)}")
        try:
            return restore_file(snap, progress=_progress("reading"))
        except KernelError as e:
            raise CliError(str(e)) from None


def _move_to(kernel: Kernel, at: str) -> None:
    """``tree --at``: a frozen clock moved to ``at`` through the timeline (timed.py)."""
    from . import timed
    from .control import Control
    from .kernel import KernelError
    from .kernel.sched import parse_duration

    try:
        target = parse_duration(at)
        kernel.sched.freeze()
        if target < kernel.clock():
            raise CliError(f"--at {at}: the table is already at {kernel.clock() / 1e9:g}s")
        timed.tick(Control(kernel), target - kernel.clock())
    except KernelError as e:
        raise CliError(f"--at {at}: {e.strerror}") from None


def cmd_tree(args: argparse.Namespace) -> int:
    from . import scenario, tree

    if args.dir is not None:
        kernel = _mounted_kernel(args.dir)
    else:
        try:
            sc = (scenario.load(args.scenario, progress=_progress("loading")) if args.scenario
                  else scenario.load_default())
        except (OSError, ValueError) as e:
            raise CliError(str(e)) from None
        kernel = sc.kernel
    if args.at is not None:
        _move_to(kernel, args.at)
    if args.format == "dot":
        text = tree.render_dot(kernel)
    else:
        color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty()
                                           and os.environ.get("NO_COLOR", "") == "")
        limit = tree.MAX_THREADS if args.threads is None else (None if args.threads < 0 else args.threads)
        text = tree.render_text(kernel, color=color, max_threads=limit)
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # pidfs-fuse tree | head
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


COMMANDS = {"mount": cmd_mount, "unmount": cmd_unmount, "ctl": cmd_ctl, "bench": cmd_bench,
            "tree": cmd_tree, "status": cmd_status, "exec": cmd_exec, "capture": capture.run}
