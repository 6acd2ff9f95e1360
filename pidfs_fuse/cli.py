"""The ``pidfs-fuse`` command: mount, unmount, ctl, tree, bench.

``mount`` checks the mount point, clears a stale mount left by a killed server (and says so),
starts the server in the background (``python -m pidfs_fuse.mount``) and returns once the mount
answers; ``-f`` serves in the foreground. Errors are one sentence on stderr and exit status 1;
nothing is left mounted after a failure.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import time
from typing import IO, Sequence

RUN_DIR = "/run/pidfs-fuse"
EPILOG = """\
examples:
  pidfs-fuse mount /tmp/proc                 boot the default table and mount it
  ls /tmp/proc; cat /tmp/proc/1/status
  unshare -m sh -c 'mount --bind /tmp/proc /proc && ps -ef'
  pidfs-fuse ctl /tmp/proc clone 1 comm=worker      -> prints the new pid
  pidfs-fuse ctl /tmp/proc kill 42 TERM
  read -r how code < /tmp/proc/42/pidfd      blocks until 42 has exited
  pidfs-fuse tree /tmp/proc                  draw its namespaces, processes and threads
  pidfs-fuse unmount /tmp/proc
"""


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def _fail(msg: str) -> int:
    print(f"pidfs-fuse: {msg}", file=sys.stderr)
    return 1


def _pidfile(mountpoint: str) -> str:
    h = hashlib.sha1(os.path.realpath(mountpoint).encode()).hexdigest()[:16]
    return os.path.join(RUN_DIR, f"{h}.pid")


def _umount_cmd(mountpoint: str, lazy: bool = False) -> list[str]:
    if shutil.which("fusermount3"):
        return ["fusermount3", "-u"] + (["-z"] if lazy else []) + [mountpoint]
    return ["umount"] + (["-l"] if lazy else []) + [mountpoint]


def _is_mounted(path: str) -> bool:
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 4 and parts[4].replace("\\040", " ") == real:
                    return True
    except OSError:
        pass
    return False


def _answers(path: str) -> int:
    """0 when the file system at ``path`` answers, else the errno (ENOTCONN: its server died).
    statfs always reaches the server, unlike stat, which the kernel may answer from cache."""
    try:
        os.statvfs(path)
        return 0
    except OSError as e:
        return e.errno or errno.EIO


def check_mountpoint(mountpoint: str) -> list[str]:
    """Refuse a missing or busy mount point; clear a stale FUSE mount. Returns notes to print."""
    notes: list[str] = []
    if _is_mounted(mountpoint) or _answers(mountpoint) == errno.ENOTCONN:
        if _answers(mountpoint) != errno.ENOTCONN:
            raise CliError(f"{mountpoint} is already a mount point (unmount it first: "
                           f"pidfs-fuse unmount {mountpoint})")
        r = subprocess.run(_umount_cmd(mountpoint, lazy=True), capture_output=True, text=True)
        if r.returncode != 0:
            raise CliError(f"{mountpoint} holds a stale mount (transport endpoint is not "
                           f"connected) that could not be cleared: {r.stderr.strip()}")
        notes.append(f"cleared a stale mount at {mountpoint} left by a server that was killed")
    try:
        st = os.stat(mountpoint)
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise CliError(f"mount point {mountpoint} does not exist (create it with mkdir first)") from None
        raise CliError(f"cannot use mount point {mountpoint}: {e.strerror}") from None
    import stat as S

    if not S.S_ISDIR(st.st_mode):
        raise CliError(f"mount point {mountpoint} is not a directory")
    return notes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pidfs-fuse",
        description="A Linux process table you can mount: a model of the kernel's pid machinery "
                    "served as a /proc-like FUSE filesystem.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    m = sub.add_parser("mount", help="mount a process table (returns once it answers)",
                       description="Boot a table (the embedded default, a --scenario, or a --restore "
                                   "snapshot) and serve it at MOUNTPOINT.")
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

    u = sub.add_parser("unmount", help="unmount and stop the server")
    u.add_argument("mountpoint", metavar="MOUNTPOINT")

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
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"] and argv[1:2] not in (["-h"], ["--help"]):
        # everything after "bench" belongs to the bench runner, options included
        try:
            return cmd_bench(argparse.Namespace(args=argv[1:]))
        except CliError as e:
            return _fail(str(e))
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.cmd](args)
    except CliError as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return 130


# -- mount --------------------------------------------------------------------------------------

def _load_kernel(args: argparse.Namespace):
    from . import scenario
    from .kernel import snapshot

    try:
        if args.restore:
            return snapshot.restore_file(args.restore, progress=_reporter(args, "restoring"))
        if args.scenario:
            return scenario.load(args.scenario, progress=_reporter(args, "loading")).kernel
        return scenario.load_default().kernel
    except (OSError, ValueError) as e:
        raise CliError(str(e)) from None


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


def _reporter(args: argparse.Namespace, label: str):
    """Progress for a load: drawn here on a terminal, or, in a background server, sent up the
    ready pipe for the ``mount`` command to draw (the server's own stderr is a log file)."""
    fd = getattr(args, "ready_fd", None)
    if fd is None:
        return _progress(label)
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if total <= 10_000 or (done < total and now - last[0] < 0.1):
            return
        last[0] = now
        os.write(fd, f"progress {label} {done} {total}\n".encode())
    return report


def _parse_options(args: argparse.Namespace):
    from .kernel import KernelError
    from .procfs.view import parse_mount_options

    try:
        return parse_mount_options(args.options)
    except KernelError as e:
        raise CliError(f"bad mount option: {e.reason}") from None


def _build_fs(args: argparse.Namespace):
    from .kernel import KernelError
    from .procfs.view import parse_mount_options

    try:
        opts = parse_mount_options(args.options)
    except KernelError as e:
        raise CliError(f"bad mount option: {e.reason}") from None
    allow_other = "allow_other" in [o.strip() for o in args.options.split(",")]
    kernel = _load_kernel(args)
    if args.self_pid is not None and kernel.find_task(kernel.root_ns, args.self_pid) is None:
        raise CliError(f"--self {args.self_pid}: the table has no process {args.self_pid}")
    from .mount.fs import PidFs

    fs = PidFs(kernel, options=opts, linear_scan=args.tgid_scan == "linear",
               self_template=args.self_pid)
    return fs, allow_other


def cmd_mount(args: argparse.Namespace) -> int:
    mp = args.mountpoint
    if args.foreground or args.ready_fd is not None:
        return _serve_here(args)
    for note in check_mountpoint(mp):
        print(f"pidfs-fuse: {note}", file=sys.stderr)
    # options are checked here; the table is loaded once, by the server, which reports
    # progress and errors up the pipe (nothing is mounted when loading fails)
    _parse_options(args)
    for f in (args.scenario, args.restore):
        if f is not None and not os.path.isfile(f):
            raise CliError(f"{f}: {os.strerror(errno.ENOENT)}")
    server_args = ["--tgid-scan", args.tgid_scan]
    if args.options:
        server_args += ["-o", args.options]
    if args.scenario:
        server_args += ["--scenario", os.path.abspath(args.scenario)]
    if args.restore:
        server_args += ["--restore", os.path.abspath(args.restore)]
    if args.self_pid is not None:
        server_args += ["--self", str(args.self_pid)]
    log = open(os.path.join(_run_dir(), os.path.basename(_pidfile(mp)) + ".log"), "w+b")
    with log:
        proc, ready = spawn_server(mp, server_args, log)
        await_server(mp, proc, ready, log)
    with open(_pidfile(mp), "w") as f:
        f.write(f"{proc.pid}\n")
    print(f"pidfs-fuse: mounted at {mp} (server pid {proc.pid})", file=sys.stderr)
    return 0


def spawn_server(mountpoint: str, server_args: list[str], log: IO[bytes], *,
                 python: Sequence[str] = (sys.executable,)) -> tuple[subprocess.Popen, int]:
    """Start ``python -m pidfs_fuse.mount mount MOUNTPOINT SERVER_ARGS`` in a session of its own,
    its output going to ``log``. Returns the process and the read end of its ready pipe, for
    ``await_server``. ``python`` is the interpreter's argv prefix (the pytest plugin wraps it)."""
    r, w = os.pipe()
    cmd = [*python, "-m", "pidfs_fuse.mount", "mount", mountpoint, *server_args, "--ready-fd", str(w)]
    try:
        proc = subprocess.Popen(cmd, pass_fds=(w,), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, start_new_session=True, cwd="/")
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    return proc, r


def await_server(mountpoint: str, proc: subprocess.Popen, ready_fd: int, log: IO[bytes], *,
                 timeout: float = 20.0) -> None:
    """Follow a starting server (drawing its progress on a terminal) until it is mounted and
    answers. On failure, raise CliError with the server's own last line, leaving nothing
    mounted."""
    if _follow_server(ready_fd) != "ready":
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        log.seek(0)
        lines = [ln for ln in log.read().decode(errors="replace").splitlines() if ln.strip()]
        why = lines[-1] if lines else f"the server exited with status {proc.returncode}"
        if _is_mounted(mountpoint):
            subprocess.run(_umount_cmd(mountpoint, lazy=True), capture_output=True)
        raise CliError(f"could not mount {mountpoint}: {why.removeprefix('pidfs-fuse: ')}")
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.stat(os.path.join(mountpoint, ".control"))
            return
        except OSError as e:
            if time.monotonic() > deadline or proc.poll() is not None:
                subprocess.run(_umount_cmd(mountpoint, lazy=True), capture_output=True)
                raise CliError(f"the mount at {mountpoint} does not answer: {e.strerror}") from None
            time.sleep(0.01)


def _follow_server(r: int) -> str:
    """Read the starting server's pipe: draw its progress lines, return "ready" or "" (it died)."""
    shown: dict[str, object] = {}
    buf = b""
    with os.fdopen(r, "rb", buffering=0) as rf:
        while True:
            chunk = rf.read(4096)
            if not chunk:
                return ""
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                words = line.decode(errors="replace").split()
                if words[:1] == ["ready"]:
                    return "ready"
                if len(words) == 4 and words[0] == "progress":
                    report = shown.get(words[1])
                    if report is None:
                        report = shown[words[1]] = _progress(words[1]) or (lambda d, t: None)
                    report(int(words[2]), int(words[3]))  # type: ignore[operator]


def _run_dir() -> str:
    os.makedirs(RUN_DIR, exist_ok=True)
    return RUN_DIR


def _serve_here(args: argparse.Namespace) -> int:
    import logging

    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if args.ready_fd is None:
            for note in check_mountpoint(args.mountpoint):
                print(f"pidfs-fuse: {note}", file=sys.stderr)
        fs, allow_other = _build_fs(args)
        from .mount.server import run

        run(args.mountpoint, fs, allow_other=allow_other, ready_fd=args.ready_fd)
    except CliError as e:
        return _fail(str(e))
    except RuntimeError as e:  # pyfuse3.init failures
        return _fail(f"could not mount {args.mountpoint}: {e}")
    return 0


def server_main(argv: list[str] | None = None) -> int:
    return main(argv)


# -- unmount ------------------------------------------------------------------------------------

def cmd_unmount(args: argparse.Namespace) -> int:
    mp = args.mountpoint
    pidfile = _pidfile(mp)
    if not os.path.lexists(mp):
        raise CliError(f"{mp} does not exist")
    stale = _answers(mp) == errno.ENOTCONN
    if not stale and not _is_mounted(mp):
        raise CliError(f"{mp} is not mounted")
    r = subprocess.run(_umount_cmd(mp, lazy=stale), capture_output=True, text=True)
    if r.returncode != 0:
        msg = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit status {r.returncode}"
        raise CliError(f"could not unmount {mp}: {msg}")
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        pid = None
    if pid is not None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _running(pid):
            time.sleep(0.01)
        try:
            os.unlink(pidfile)
        except OSError:
            pass
    return 0


def _read_reply(fd: int) -> str:
    """The reply of the last command, read from offset 0 until end of file (this read waits
    for a command that blocks, such as ``wait``)."""
    chunks = []
    off = 0
    while True:
        b = os.pread(fd, 65536, off)
        if not b:
            return b"".join(chunks).decode(errors="replace")
        chunks.append(b)
        off += len(b)


def _running(pid: int) -> bool:
    """True while ``pid`` runs. A server that has exited counts as gone even before its new
    parent (it was orphaned when ``mount`` returned) gets round to reaping the zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")


# -- ctl ----------------------------------------------------------------------------------------

def cmd_ctl(args: argparse.Namespace) -> int:
    if not args.command:
        raise CliError("ctl needs a command (try: pidfs-fuse ctl MOUNT help)")
    line = shlex.join(args.command)
    path = os.path.join(args.mountpoint, ".control")
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as e:
        raise CliError(f"cannot open {path}: {e.strerror} (is a pidfs-fuse table mounted there?)") from None
    try:
        err: OSError | None = None
        try:
            os.write(fd, (line + "\n").encode())
        except OSError as e:
            err = e
        try:
            reply = _read_reply(fd)
        except OSError as e:  # a command that waited, then failed: the reply says why
            err = e
            reply = _read_reply(fd)
    finally:
        os.close(fd)
    if err is not None:
        msg = reply.strip() or f"{errno.errorcode.get(err.errno, err.errno)}: {err.strerror}"
        return _fail(f"{args.command[0]}: {msg.removeprefix('error: ')}")
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
    from .kernel.snapshot import restore_file

    control = os.path.join(mountpoint, ".control")
    if not os.path.exists(control):
        raise CliError(f"{mountpoint} is not a pidfs-fuse mount (no .control file)")
    with tempfile.TemporaryDirectory(prefix="pidfs-tree-") as tmp:
        snap = os.path.join(tmp, "table.snapshot")
        try:
            fd = os.open(control, os.O_RDWR)
        except OSError as e:
            raise CliError(f"cannot open {control}: {e.strerror}") from None
        try:
            try:
                os.write(fd, f"snapshot {shlex.quote(snap)}\n".encode())
            except OSError as e:
                reply = os.pread(fd, 65536, 0).decode(errors="replace").strip()
                raise CliError(f"snapshot of {mountpoint} failed: "
                               f"{reply.removeprefix('error: ') or e.strerror}") from None
        finally:
            os.close(fd)
        try:
            return restore_file(snap, progress=_progress("reading"))
        except KernelError as e:
            raise CliError(str(e)) from None


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
            "tree": cmd_tree}
