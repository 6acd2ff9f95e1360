"""A pytest plugin for people who test tools that parse /proc: fixtures that mount a live,
deterministic process table and a client that drives it.

Design note. Each mount is a real ``pidfs-fuse`` server in a child process of the test run
(``python -m pidfs_fuse.mount``, the same server ``pidfs-fuse mount`` starts), serving a fresh
temporary directory; the test changes the table through ``MOUNT/.control``, exactly as a shell
script would, so what the tool under test reads is what a FUSE client gets (no in-process
shortcuts that a real mount would not have). Nothing is shared between mounts: every fixture
call gets its own server and directory, so tests may run in parallel, and one test may hold
several mounts.

Cleanup never depends on the test passing: the fixture's finalizer runs ``pidfs-fuse unmount``
and, if that fails (a descriptor still open, a wedged server), a lazy ``fusermount3 -u -z`` and
SIGKILL of that one server pid. Interruptions are covered three more ways: pytest runs the
finalizers on KeyboardInterrupt; a process-wide registry of live mounts is emptied at
interpreter exit and on SIGTERM/SIGHUP (handlers installed only while a mount is live, and only
when nobody else set one); a server started from the main thread gets PR_SET_PDEATHSIG, so it
unmounts itself if the test process is killed outright.

Entry points (registered as the ``pidfs_fuse`` pytest11 plugin)::

    def test_listing(pidfs):                     # the embedded default table
        pid = pidfs.clone(1, comm="worker")
        assert (pidfs.path / str(pid) / "comm").read_text() == "worker\\n"

    @pytest.mark.pidfs_scenario("tables/zombies.toml", options="hidepid=2")
    def test_zombies(pidfs): ...                 # relative paths: from the test file's folder

    @pytest.mark.parametrize("pidfs", ["a.toml", None], indirect=True)
    def test_both(pidfs): ...                    # a path, None (default), or a dict of options

    def test_two(pidfs_factory):
        a, b = pidfs_factory(), pidfs_factory("b.toml", tgid_scan="linear")

Outside pytest, ``mount_table(...)`` is a context manager with the same result.

Client methods mirror the control commands (``help`` on a mount lists them): they return ints,
lists of ints or small typed records and raise ``OSError`` with the command's errno and the
reply's sentence (so ``except ProcessLookupError`` catches ESRCH). They block the calling thread
while the server works; ``wait`` without ``nohang`` returns once a child changes state (it
repeats a non-blocking wait: a blocking write to ``.control`` would hold up every other command,
see ``Client.wait``). In a trio test a blocking call blocks the event loop, so use the ``aio``
twins, which run in worker threads and sleep in trio: ``await pidfs.aio.wait(1, pid=pid)``.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import functools
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import pytest

from . import cli

MARKER = "pidfs_scenario"
MOUNT_TIMEOUT = 60.0  # a 1,000,000-task scenario takes a while to load
WAIT_POLL = (0.001, 0.02)  # Client.wait: first and longest pause between non-blocking tries

_Value = str | int | Sequence[str] | Sequence[int]


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WaitStatus:
    """What ``wait`` reported: ``pid`` (in the mount's view), ``kind`` (exited, killed, dumped,
    stopped, continued) and ``code`` (the exit code, or the signal number; SIGCONT for
    continued)."""

    pid: int
    kind: str
    code: int

    @property
    def status(self) -> int:
        """The wait4() status word (WIFEXITED & co. decode it)."""
        if self.kind == "exited":
            return self.code << 8
        if self.kind == "stopped":
            return self.code << 8 | 0x7F
        if self.kind == "continued":
            return 0xFFFF
        return self.code | (0x80 if self.kind == "dumped" else 0)


@dataclass(frozen=True, slots=True)
class PsRow:
    """One line of the ``ps`` control command (numbers in the mount's view)."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    uid: int
    state: str
    nlwp: int
    comm: str


class MountError(RuntimeError):
    """The table could not be mounted; the message is the server's own sentence."""


# -- the client ---------------------------------------------------------------------------------


def _word(key: str, value: Any) -> str:
    """``key=value`` for one control option: lists become shell-quoted words, except signal
    lists (``sigign``), which are comma-separated as the command reads them."""
    if isinstance(value, bool):
        raise TypeError(f"{key}= takes a value, not {value!r}")
    if isinstance(value, (list, tuple)):
        value = ",".join(map(str, value)) if key in ("sigign", "set_tid") else shlex.join(map(str, value))
    return f"{key}={value}"


class Client:
    """Control commands on the mount at ``path``, through ``path/.control`` (root only: the
    control file is mode 0600 and the server checks the caller's uid)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def client(self) -> "Client":
        return self

    @functools.cached_property
    def aio(self) -> "AsyncClient":
        """The same methods as coroutines, each run in a trio worker thread."""
        return AsyncClient(self)

    # -- the door ------------------------------------------------------------------------------

    def raw(self, line: str) -> str:
        """Write one command line to ``.control`` and return the reply. A failed command raises
        ``OSError(errno, "COMMAND: why")``."""
        if "\n" in line.rstrip("\n"):
            raise ValueError("raw() takes one command line")
        fd = os.open(self.path / ".control", os.O_RDWR)
        try:
            err: OSError | None = None
            try:
                os.write(fd, line.rstrip("\n").encode() + b"\n")
            except OSError as e:
                err = e
            chunks, off = [], 0
            while chunk := os.pread(fd, 65536, off):
                chunks.append(chunk)
                off += len(chunk)
        finally:
            os.close(fd)
        reply = b"".join(chunks).decode(errors="replace")
        if err is not None:
            why = reply.strip().removeprefix("error: ") or err.strerror
            name = errno.errorcode.get(err.errno or 0, "")
            why = why.removeprefix(f"{name}: ") if name else why
            cmd = line.split(None, 1)[0] if line.strip() else "(empty)"
            raise OSError(err.errno, f"{cmd}: {why}")
        return reply

    def command(self, *words: Any, **options: Any) -> str:
        """Run one command built from words and ``key=value`` options (None values left out)."""
        tokens = [str(w) for w in words]
        tokens += [_word(k, v) for k, v in options.items() if v is not None]
        return self.raw(shlex.join(tokens))

    # -- the commands -------------------------------------------------------------------------

    def clone(self, parent: int, *, thread: bool = False, clone_parent: bool = False,
              newpid: bool = False, pidfd: bool = False, wait_pid: bool = False,
              autoreap: bool = False, autokill: bool = False, nnp: bool = False,
              comm: str | None = None, argv: Sequence[str] | str | None = None,
              uid: int | None = None, gid: int | None = None,
              set_tid: Sequence[int] | int | None = None, exit_signal: str | int | None = None,
              count: int | None = None) -> int | list[int]:
        """clone3() as ``parent``: the new tid, or the list of tids when ``count`` is given.
        ``clone_parent`` is CLONE_PARENT; ``set_tid`` lists one number per level, innermost
        first."""
        flags = {"thread": thread, "parent": clone_parent, "newpid": newpid, "pidfd": pidfd,
                 "wait_pid": wait_pid, "autoreap": autoreap, "autokill": autokill, "nnp": nnp}
        if isinstance(set_tid, int):
            set_tid = [set_tid]
        reply = self.command("clone", parent, *(w for w, on in flags.items() if on), comm=comm,
                             argv=argv, uid=uid, gid=gid, set_tid=set_tid,
                             exit_signal=exit_signal, count=count)
        tids = [int(x) for x in reply.split()]
        return tids if count is not None else tids[0]

    def exit(self, tid: int, code: int = 0) -> None:
        """exit(): one thread ends with ``code``."""
        self.command("exit", tid, code)

    def exit_group(self, pid: int, code: int = 0) -> None:
        """exit_group(): the whole process ends with ``code``."""
        self.command("exit_group", pid, code)

    def kill(self, pid: int, sig: str | int, *, sender: int | None = None) -> None:
        """kill(): ``sig`` by name ("TERM", "SIGKILL") or number; from outside every namespace
        unless ``sender`` names the sending task."""
        self.command("kill", pid, sig, **{"from": sender})

    def exec(self, tid: int, comm: str, argv: Sequence[str] | str | None = None, *,
             exe: str | None = None) -> None:
        """execve() by ``tid`` (from a non-leader thread it takes over the leader's pid)."""
        self.command("exec", tid, comm=comm, argv=argv, exe=exe)

    def wait(self, parent: int, pid: int | None = None, pgid: int | None = None, *,
             nohang: bool = False, nowait: bool = False, all: bool = False,
             stopped: bool = False, continued: bool = False) -> WaitStatus | None:
        """waitid() as ``parent`` (P_ALL, or P_PID with ``pid``, or P_PGID with ``pgid``).
        None when ``nohang`` and nothing is ready; ECHILD (ChildProcessError) without
        children.

        Without ``nohang`` it returns once a child has changed state, by repeating ``wait ...
        nohang`` (pausing 1 ms, doubling up to 20 ms) rather than sending the blocking ``wait``:
        a write to ``.control`` holds the file's inode lock in the kernel until the server
        answers, so a blocking ``wait`` would hold up every other command, from any thread or
        process, until it returned (``raw("wait ...")`` still sends it)."""
        delay = WAIT_POLL[0]
        while True:
            st = self._wait_once(parent, pid, pgid, nowait=nowait, all=all, stopped=stopped,
                                 continued=continued)
            if st is not None or nohang:
                return st
            time.sleep(delay)
            delay = min(delay * 2, WAIT_POLL[1])

    def _wait_once(self, parent: int, pid: int | None, pgid: int | None,
                   **words: bool) -> WaitStatus | None:
        on = ["nohang"] + [w for w, v in words.items() if v]
        reply = self.command("wait", parent, *on, pid=pid, pgid=pgid).split()
        if reply == ["0"]:
            return None
        if reply[1] == "continued":
            return WaitStatus(int(reply[0]), "continued", signal.SIGCONT.value)
        return WaitStatus(int(reply[0]), reply[1], int(reply[2]))

    def setsid(self, pid: int) -> int:
        """setsid() by ``pid``; the new session id."""
        return int(self.command("setsid", pid))

    def setpgid(self, pid: int, pgid: int = 0) -> None:
        """setpgid(0, pgid) by ``pid`` (0: a group of its own)."""
        self.command("setpgid", pid, pgid)

    def subreaper(self, pid: int, on: bool = True) -> None:
        """prctl(PR_SET_CHILD_SUBREAPER)."""
        self.command("subreaper", pid, "on" if on else "off")

    def unshare(self, pid: int) -> int:
        """unshare(CLONE_NEWPID) by ``pid``; the new namespace's inode number."""
        return int(self.command("unshare", pid, "newpid"))

    def setns(self, pid: int, nspid: int) -> None:
        """setns(CLONE_NEWPID): ``pid``'s children go to ``nspid``'s pid namespace."""
        self.command("setns", pid, nspid)

    def pid_max(self, pid: int, value: int) -> None:
        """kernel.pid_max of the namespace ``pid`` lives in."""
        self.command("pid_max", pid, value)

    def ns_last_pid(self, pid: int, value: int) -> None:
        """kernel.ns_last_pid of the namespace ``pid`` lives in."""
        self.command("ns_last_pid", pid, value)

    def set(self, tid: int, **fields: _Value) -> None:
        """Set fields of ``tid`` (state, nice, utime, rss, argv, environ, sigign...), all or
        none; lists are passed as words (``sigign`` as a comma list)."""
        if not fields:
            raise TypeError("set() needs at least one field")
        self.command("set", tid, **fields)

    def close(self, pid: int, fd: int) -> None:
        """close() descriptor ``fd`` (a pidfd from clone) of ``pid``'s process."""
        self.command("close", pid, fd)

    def snapshot(self, path: str | os.PathLike[str]) -> None:
        """Write the whole table to ``path`` (made absolute: the server runs in /)."""
        self.command("snapshot", os.path.abspath(path))

    def ps(self) -> list[PsRow]:
        """The processes of the mount's view, in pid order."""
        rows = []
        for line in self.command("ps").splitlines()[1:]:
            f = line.split(None, 7)
            rows.append(PsRow(int(f[0]), int(f[1]), int(f[2]), int(f[3]), int(f[4]), f[5],
                              int(f[6]), f[7] if len(f) > 7 else ""))
        return rows

    def show(self, tid: int) -> dict[str, str]:
        """What the model holds for ``tid``: the ``show`` command's keys and values."""
        out = {}
        for line in self.command("show", tid).splitlines():
            key, _, value = line.partition(":\t")
            out[key] = value
        return out


class AsyncClient:
    """Coroutine twins of a ``Client``'s methods for trio tests: each runs the call in a worker
    thread (``trio.to_thread.run_sync``), and ``wait`` pauses with ``trio.sleep`` between its
    non-blocking tries, so the event loop stays free and cancelling a ``wait`` is clean."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Callable[..., Any]:
        fn = getattr(self._client, name)
        if name.startswith("_") or not callable(fn):
            raise AttributeError(name)

        async def call(*args: Any, **kw: Any) -> Any:
            import trio

            return await trio.to_thread.run_sync(functools.partial(fn, *args, **kw),
                                                 abandon_on_cancel=True)
        call.__name__ = name
        call.__doc__ = fn.__doc__
        return call

    async def wait(self, parent: int, pid: int | None = None, pgid: int | None = None, *,
                   nohang: bool = False, **words: bool) -> WaitStatus | None:
        """``Client.wait`` for trio: the same result, the pauses spent in ``trio.sleep``."""
        import trio

        delay = WAIT_POLL[0]
        while True:
            st = await trio.to_thread.run_sync(functools.partial(
                self._client.wait, parent, pid, pgid, nohang=True, **words))
            if st is not None or nohang:
                return st
            await trio.sleep(delay)
            delay = min(delay * 2, WAIT_POLL[1])


# -- mounts -------------------------------------------------------------------------------------


class PidfsMount(Client):
    """A mounted table served by a child process: ``path`` (a ``Path``), ``server_pid``, the
    client methods, and ``unmount()`` (idempotent; the fixtures call it for you)."""

    def __init__(self, path: Path, proc: subprocess.Popen[bytes], log: Any,
                 scenario: str | None) -> None:
        super().__init__(path)
        self._proc = proc
        self._log = log
        self.scenario = scenario
        self.server_pid = proc.pid
        self.mounted = True

    def __repr__(self) -> str:
        return f"<PidfsMount {self.path} server={self.server_pid} scenario={self.scenario!r}>"

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __truediv__(self, other: str) -> Path:
        return self.path / other

    def __enter__(self) -> "PidfsMount":
        return self

    def __exit__(self, *exc: object) -> None:
        self.unmount()

    def server_log(self) -> str:
        """What the server printed (warnings, a traceback if it died)."""
        if self._log.closed:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def unmount(self) -> None:
        """``pidfs-fuse unmount``; if that fails, a lazy ``fusermount3 -u -z`` and SIGKILL of
        this mount's server (that pid only). Removes the directory."""
        if not self.mounted:
            return
        self.mounted = False
        _LIVE.discard(self)
        path = str(self.path)
        proc = self._proc
        try:
            ok = _quiet_cli_unmount(path)
            if ok:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    ok = False
            if not ok or os.path.ismount(path):
                subprocess.run(["fusermount3", "-u", "-z", path], capture_output=True, timeout=30)
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
        finally:
            with contextlib.suppress(OSError):
                self._log.close()
            with contextlib.suppress(OSError):
                os.rmdir(path)
            _LIVE.changed()


def _quiet_cli_unmount(path: str) -> bool:
    """``pidfs-fuse unmount PATH`` in this process, its message kept out of the test output."""
    from . import cli

    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
        try:
            return cli.main(["unmount", path]) == 0
        except SystemExit as e:  # argparse
            return e.code == 0


#: Run before the server (``python -c`` then exec): PR_SET_PDEATHSIG, so the server gets SIGTERM
#: (and unmounts cleanly) when the thread that started it dies; a preexec_fn would do the same
#: but is not safe in a process with threads (trio's worker threads).
_PDEATHSIG_EXEC = """\
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
except Exception:
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit("pidfs-fuse: the test process is gone")
os.execv(sys.executable, [sys.executable] + sys.argv[2:])
"""


def mount_table(scenario: str | os.PathLike[str] | None = None, *,
                restore: str | os.PathLike[str] | None = None, options: str | None = None,
                self_pid: int | None = None, tgid_scan: str | None = None,
                dir: str | os.PathLike[str] | None = None,
                timeout: float = MOUNT_TIMEOUT) -> PidfsMount:
    """Mount a table in a child process and return once it answers: the embedded default, a
    ``scenario`` file, or a ``restore`` snapshot; ``options`` as ``mount -o``; ``self_pid`` and
    ``tgid_scan`` as the CLI's. The mount point is a new directory under ``dir`` (default: the
    temporary directory). Raises ``MountError`` with the server's sentence (a bad scenario
    names the file and the entry); nothing stays mounted then. Use as a context manager or
    call ``unmount()``."""
    if scenario is not None and restore is not None:
        raise ValueError("give scenario or restore, not both")
    d = tempfile.mkdtemp(prefix="pidfs-pytest-", dir=dir)
    server_args: list[str] = []
    if scenario is not None:
        server_args += ["--scenario", os.path.abspath(scenario)]
    if restore is not None:
        server_args += ["--restore", os.path.abspath(restore)]
    if options:
        server_args += ["-o", options]
    if self_pid is not None:
        server_args += ["--self", str(self_pid)]
    if tgid_scan is not None:
        server_args += ["--tgid-scan", tgid_scan]
    python: tuple[str, ...] = (sys.executable,)
    if threading.current_thread() is threading.main_thread():
        python = (sys.executable, "-c", _PDEATHSIG_EXEC, str(os.getpid()))
    log = tempfile.TemporaryFile(prefix="pidfs-server-")
    try:
        proc, ready = cli.spawn_server(d, server_args, log, python=python)
    except BaseException:
        log.close()
        os.rmdir(d)
        raise
    m = PidfsMount(Path(d), proc, log, None if scenario is None else os.fspath(scenario))
    _LIVE.add(m)
    try:
        try:
            cli.await_server(d, proc, ready, log, timeout=timeout)
        except cli.CliError as e:
            raise MountError(str(e)) from None
    except BaseException:
        m.unmount()
        raise
    return m


class _Registry:
    """Every live mount of this process, so none outlives it: emptied at exit and on
    SIGTERM/SIGHUP (handlers set only while a mount lives, from the main thread, and only over
    the default disposition)."""

    SIGNALS = (signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self._mounts: dict[int, PidfsMount] = {}
        self._lock = threading.Lock()
        self._atexit = False
        self._saved: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self._mounts)

    def add(self, m: PidfsMount) -> None:
        with self._lock:
            self._mounts[id(m)] = m
            if not self._atexit:
                atexit.register(self.unmount_all)
                self._atexit = True
        self.changed()

    def discard(self, m: PidfsMount) -> None:
        with self._lock:
            self._mounts.pop(id(m), None)

    def unmount_all(self) -> None:
        for m in list(self._mounts.values()):
            with contextlib.suppress(Exception):
                m.unmount()

    def changed(self) -> None:
        """Install the signal guard while mounts live; restore the old handlers after."""
        if threading.current_thread() is not threading.main_thread():
            return
        if self._mounts and not self._saved:
            for sig in self.SIGNALS:
                if signal.getsignal(sig) is signal.SIG_DFL:
                    self._saved[sig] = signal.signal(sig, self._on_signal)
        elif not self._mounts and self._saved:
            for sig, old in self._saved.items():
                if signal.getsignal(sig) == self._on_signal:
                    signal.signal(sig, old)
            self._saved.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.unmount_all()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


#: process-wide, like the servers it tracks: atexit and signal handlers are process-wide too
_LIVE = _Registry()


# -- pytest glue ----------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(path=None, **options): the table the `pidfs` fixture mounts: a "
        "scenario file (relative to the test file's folder) or None for the default; options "
        "as pidfs_fuse.pytest_plugin.mount_table's (options='hidepid=2', tgid_scan='linear')")


def _resolve(request: pytest.FixtureRequest, path: str | os.PathLike[str] | None) -> str | None:
    """A scenario path: absolute as given, else from the test file's folder, else from the
    working directory."""
    if path is None:
        return None
    p = Path(path)
    if p.is_absolute():
        return str(p)
    here = Path(request.node.path).parent / p
    return str(here if here.exists() else p.resolve())


@pytest.fixture
def pidfs_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., PidfsMount]]:
    """``pidfs_factory(scenario=None, **options) -> PidfsMount``: mount as many tables as the
    test needs (``options`` as ``mount_table``'s); each is unmounted at teardown, whatever the
    test's outcome."""
    made: list[PidfsMount] = []

    def factory(scenario: str | os.PathLike[str] | None = None, **options: Any) -> PidfsMount:
        if "restore" in options:
            options["restore"] = _resolve(request, options["restore"])
        m = mount_table(_resolve(request, scenario), **options)
        made.append(m)
        return m

    try:
        yield factory
    finally:
        for m in reversed(made):
            m.unmount()


@pytest.fixture
def pidfs(request: pytest.FixtureRequest, pidfs_factory: Callable[..., PidfsMount]) -> PidfsMount:
    """A table mounted for this test: the embedded default, the scenario of a
    ``@pytest.mark.pidfs_scenario(path, **options)`` marker, or the indirect parameter (a
    path, None, or a dict of ``mount_table`` arguments)."""
    scenario: Any = None
    options: dict[str, Any] = {}
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        if len(marker.args) > 1:
            raise pytest.UsageError(f"@pytest.mark.{MARKER} takes one path and keyword options")
        scenario = marker.args[0] if marker.args else marker.kwargs.get("scenario")
        options = {k: v for k, v in marker.kwargs.items() if k != "scenario"}
    param = getattr(request, "param", None)
    if isinstance(param, Mapping):
        options = dict(param)
        scenario = options.pop("scenario", None)
    elif param is not None:
        scenario = param
    return pidfs_factory(scenario, **options)
