"""The one client of a mounted table: the ``.control`` protocol, typed commands (sync and async),
and starting, awaiting and stopping servers.

Design note. Every program that drives a mount goes through this module: the ``pidfs-fuse`` CLI
(``mount``, ``unmount``, ``ctl``, ``tree DIR``), the pytest plugin, the mountpoint tests and the
benchmarks. It imports only the standard library at import time (trio on first use of the
``aio`` twins), so ``pidfs-fuse ctl`` starts fast, and it never imports the server.

The protocol (SPEC §4): open ``MOUNT/.control``, write one command line, read the reply from
offset 0 until end of file. A failed command fails the write with its errno and the reply says
why (``error: ESRCH: no task with pid 99999``). A command that blocks (``wait`` without
``nohang``) is accepted by the write and finishes in the server's background; the read then
blocks until it answers, and when it fails that read fails with its errno and the next read
gives the reply. ``exchange`` is that transaction, ``ControlFile`` keeps one file open for
several, ``Client`` turns replies into ints and records and failures into ``OSError`` (so
``except ProcessLookupError`` catches ESRCH).

Waiting. A blocking ``Client.wait`` is a blocking ``wait`` on ``.control``: the line is written
and the read sleeps in the server until a child changes state. A signal to the reading process
ends that read with EINTR (the server answers FUSE_INTERRUPT: ``mount/interrupts.py``), and the
server cancels a wait whose file is closed or whose opener died, so a killed ``ctl`` reaps
nothing. A caller that gives up inside a live process (a trio cancel scope) cannot interrupt a
read running in another thread, though: the file stays open and the wait armed. The blocking step
is therefore ``wait ... nowait`` (WNOWAIT: it reports a child without consuming it), and the
status is then collected with ``wait ... nohang``: a wait given up on leaves its sleeping read
behind (in a daemon thread, until a child changes state or the mount goes away) but reaps
nothing, and the next wait still gets the child. From the main thread the blocking read runs in
a helper thread, so signals (Ctrl-C) still reach the caller.

Mounting. ``spawn_server`` starts ``python -m pidfs_fuse.mount`` (the server, which reports
``progress`` lines and ``ready`` on a pipe), ``await_server`` follows it until the mount answers.
``mount``/``unmount`` do what the CLI commands do (a detached server; every server records
itself in the user's run directory while it serves, see ``pidfs_fuse.rundir``; ``unmount``
refuses mounts that are not ours and returns once the server has exited); ``mount_table``
mounts a table owned by this process (the pytest plugin's mounts), unmounted at teardown, at
interpreter exit, on SIGTERM/SIGHUP, and (PR_SET_PDEATHSIG) when this process dies.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import functools
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, overload

from . import rundir

CONTROL = ".control"
MOUNT_TIMEOUT = 60.0  # mount_table: a 1,000,000-task scenario takes a while to load
START_TIMEOUT = 20.0  # await_server: from "ready" until the mount answers

_Value = str | int | Sequence[str] | Sequence[int]
#: progress(label) -> a report(done, total) callback, or None to show nothing
ProgressFactory = Callable[[str], "Callable[[int, int], None] | None"]


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
    """A table could not be mounted or unmounted; the message is one sentence (the server's own,
    when it refused to start)."""


# -- the protocol (no I/O) ----------------------------------------------------------------------


def _word(key: str, value: Any) -> str:
    """``key=value`` for one control option: lists become shell-quoted words, except signal
    lists (``sigign``) and ``set_tid``, which are comma-separated as the command reads them."""
    if isinstance(value, bool):
        raise TypeError(f"{key}= takes a value, not {value!r}")
    if isinstance(value, (list, tuple)):
        value = ",".join(map(str, value)) if key in ("sigign", "set_tid") else shlex.join(map(str, value))
    return f"{key}={value}"


def command_line(*words: Any, **options: Any) -> str:
    """One command line from words and ``key=value`` options (None values left out), quoted as
    the server's ``shlex.split`` reads it."""
    tokens = [str(w) for w in words]
    tokens += [_word(k, v) for k, v in options.items() if v is not None]
    return shlex.join(tokens)


def reason(err: int, reply: str) -> str:
    """Why a command failed, as the CLI prints it: the reply's ``ENAME: sentence`` (the
    ``error:`` prefix dropped), or the errno's name and text when the reply is empty."""
    return (reply.strip().removeprefix("error: ")
            or f"{errno.errorcode.get(err, err)}: {os.strerror(err)}")


def command_error(line: str, err: int, reply: str) -> OSError:
    """The ``OSError`` for a failed command: its errno (so ``ProcessLookupError`` & co. match)
    and ``"COMMAND: sentence"`` without the errno's name."""
    why = reason(err, reply)
    name = errno.errorcode.get(err, "")
    why = why.removeprefix(f"{name}: ") if name else why
    cmd = line.split(None, 1)[0] if line.strip() else "(empty)"
    return OSError(err, f"{cmd}: {why}")


def parse_wait(reply: str) -> WaitStatus | None:
    """A ``wait`` reply: ``PID exited|killed|dumped|stopped N``, ``PID continued``, or ``0``
    (nohang, nothing yet: None)."""
    f = reply.split()
    if f == ["0"]:
        return None
    if len(f) == 2 and f[1] == "continued":
        return WaitStatus(int(f[0]), "continued", signal.SIGCONT.value)
    if len(f) != 3 or f[1] not in ("exited", "killed", "dumped", "stopped"):
        raise ValueError(f"not a wait reply: {reply!r}")
    return WaitStatus(int(f[0]), f[1], int(f[2]))


def parse_ps(reply: str) -> list[PsRow]:
    """The ``ps`` reply (a header, then ``PID PPID PGID SID UID STATE NLWP COMM``; the comm may
    hold spaces)."""
    rows = []
    for line in reply.splitlines()[1:]:
        f = line.split(None, 7)
        rows.append(PsRow(int(f[0]), int(f[1]), int(f[2]), int(f[3]), int(f[4]), f[5],
                          int(f[6]), f[7] if len(f) > 7 else ""))
    return rows


def parse_show(reply: str) -> dict[str, str]:
    """The ``show`` reply: ``Key:\\tvalue`` lines."""
    out = {}
    for line in reply.splitlines():
        key, _, value = line.partition(":\t")
        out[key] = value
    return out


# -- the door -----------------------------------------------------------------------------------


class ControlFile:
    """One open ``MOUNT/.control``: a session on which commands run one after another (the
    server keeps one reply per open file). The file is mode 0600, owned by the user the server
    runs as (root, or the normal user who mounted it), and the server checks the caller's uid."""

    def __init__(self, mountpoint: str | os.PathLike[str]) -> None:
        self.fd = os.open(os.path.join(mountpoint, CONTROL), os.O_RDWR | os.O_CLOEXEC)

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            # the descriptor is gone whatever close() says; a mount whose server went away
            # fails the flush with ENOTCONN, which is no news to the caller
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> ControlFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: str | bytes) -> int:
        """One write (a line, part of one, or several lines): 0, or the errno it failed with."""
        try:
            os.write(self.fd, data.encode() if isinstance(data, str) else data)
        except OSError as e:
            return e.errno or errno.EIO
        return 0

    def _read_all(self) -> str:
        chunks, off = [], 0
        while chunk := os.pread(self.fd, 65536, off):
            chunks.append(chunk)
            off += len(chunk)
        return b"".join(chunks).decode(errors="replace")

    def reply(self) -> tuple[int, str]:
        """The reply to the last write, from offset 0 until end of file: blocks while its command
        waits. (0, text), or (errno, why) for a command that waited and then failed."""
        try:
            return 0, self._read_all()
        except OSError as e:  # a command that waited, then failed: the next read says why
            err = e.errno or errno.EIO
            try:
                return err, self._read_all()
            except OSError:  # the mount went away meanwhile (ENOTCONN): nothing more to say
                return err, ""

    def exchange(self, data: str | bytes) -> tuple[int, str]:
        """Write ``data``, read the reply: (0 or the errno the command failed with, reply)."""
        err = self.send(data)
        got, reply = self.reply()
        return err or got, reply

    def run(self, line: str) -> str:
        """Run one command line; its reply, or ``OSError`` (see ``command_error``)."""
        line = line.rstrip("\n")
        if "\n" in line:
            raise ValueError("run() takes one command line")
        err, reply = self.exchange(line + "\n")
        if err:
            raise command_error(line, err, reply)
        return reply


def exchange(mountpoint: str | os.PathLike[str], data: str | bytes) -> tuple[int, str]:
    """Open ``.control``, ``ControlFile.exchange`` once, close."""
    with ControlFile(mountpoint) as cf:
        return cf.exchange(data)


# -- the client ---------------------------------------------------------------------------------


def _in_helper_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a daemon thread while this thread waits interruptibly: a signal handler (Ctrl-C)
    still runs here, and ``fn`` is left behind if it raises."""
    box: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            box.append((True, fn()))
        except BaseException as e:  # handed to the caller below
            box.append((False, e))
        finally:
            done.set()

    threading.Thread(target=run, name="pidfs-client-wait", daemon=True).start()
    done.wait()
    ok, value = box[0]
    if not ok:
        raise value
    return value


class Client:
    """Control commands on the mount at ``path``, through ``path/.control``. Methods mirror the
    commands (``help`` on a mount lists them), return ints, lists of ints or small records, and
    raise ``OSError`` with the command's errno and the reply's sentence. Each call opens the
    control file once; ``ControlFile`` keeps one open for many commands."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def client(self) -> Client:
        return self

    @functools.cached_property
    def aio(self) -> AsyncClient:
        """The same methods as coroutines, each run in a trio worker thread."""
        return AsyncClient(self)

    # -- the door ------------------------------------------------------------------------------

    def raw(self, line: str) -> str:
        """Write one command line to ``.control`` and return the reply. A failed command raises
        ``OSError(errno, "COMMAND: why")``. A blocking command (``wait``) blocks right here."""
        line = line.rstrip("\n")
        if "\n" in line:
            raise ValueError("raw() takes one command line")
        err, reply = self._exchange(line + "\n")
        if err:
            raise command_error(line, err, reply)
        return reply

    def _exchange(self, data: str) -> tuple[int, str]:
        """The one place a ``Client`` touches ``.control`` (tests put a fake server here)."""
        return exchange(self.path, data)

    def command(self, *words: Any, **options: Any) -> str:
        """Run one command built from words and ``key=value`` options (None values left out)."""
        return self.raw(command_line(*words, **options))

    # -- the commands -------------------------------------------------------------------------

    @overload
    def clone(self, parent: int, *, thread: bool = False, clone_parent: bool = False,
              newpid: bool = False, pidfd: bool = False, wait_pid: bool = False,
              autoreap: bool = False, autokill: bool = False, nnp: bool = False,
              comm: str | None = None, argv: Sequence[str] | str | None = None,
              uid: int | None = None, gid: int | None = None,
              set_tid: Sequence[int] | int | None = None, exit_signal: str | int | None = None,
              count: None = None) -> int: ...

    @overload
    def clone(self, parent: int, *, thread: bool = False, clone_parent: bool = False,
              newpid: bool = False, pidfd: bool = False, wait_pid: bool = False,
              autoreap: bool = False, autokill: bool = False, nnp: bool = False,
              comm: str | None = None, argv: Sequence[str] | str | None = None,
              uid: int | None = None, gid: int | None = None,
              set_tid: Sequence[int] | int | None = None, exit_signal: str | int | None = None,
              count: int) -> list[int]: ...

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

        Without ``nohang`` it blocks on ``.control`` until a child has changed state (see the
        module's note: ``wait ... nowait`` blocks, ``wait ... nohang`` collects), so Ctrl-C
        still works and a wait given up on consumes nothing."""
        words = _wait_words(all=all, stopped=stopped, continued=continued)
        if nohang:
            return self._wait_line(parent, pid, pgid, "nohang", *_wait_words(nowait=nowait), *words)
        peek = functools.partial(self._wait_line, parent, pid, pgid, "nowait", *words)
        while True:
            on_main = threading.current_thread() is threading.main_thread()
            seen = _in_helper_thread(peek) if on_main else peek()
            if nowait:
                return seen
            got = self._wait_line(parent, pid, pgid, "nohang", *words)
            if got is not None:
                return got  # else another waiter took it first: block again

    def _wait_line(self, parent: int, pid: int | None, pgid: int | None,
                   *words: str) -> WaitStatus | None:
        return parse_wait(self.command("wait", parent, *words, pid=pid, pgid=pgid))

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
        return parse_ps(self.command("ps"))

    def show(self, tid: int) -> dict[str, str]:
        """What the model holds for ``tid``: the ``show`` command's keys and values."""
        return parse_show(self.command("show", tid))

    # -- time and races (timed.py) -------------------------------------------------------------

    def tick(self, duration: str | float) -> None:
        """Move a frozen clock forward: ``"1.5s"``, ``"250ms"``, ``"100j"`` or seconds."""
        self.command("tick", duration if isinstance(duration, str) else f"{duration!r}s")

    @property
    def clock(self) -> float:
        """Seconds since the table's boot, as /proc/uptime counts them (nanosecond precision)."""
        return float(self.command("clock").split()[1])

    def on(self, op: str, path: str, command: str, *, times: int = 1) -> Trigger:
        """Arm a trigger: ``command`` runs inside the next ``times`` ``op`` requests (lookup,
        open, read, readdir) on ``path`` (``"42/status"``), before each is answered."""
        reply = self.raw(f"on {op} {shlex.quote(path)} times={times} do {command}")
        return Trigger(self, [int(reply)])

    def _on(self, op: str, pid: int, name: str, exit: int | None, reap: bool, kill: str | int | None,
            do: str | None, times: int) -> Trigger:
        path = f"{pid}/{name}" if name else str(pid)
        lines = [] if do is None else [do]
        if kill is not None:
            lines.append(f"kill {pid} {kill}")
        if exit is not None:
            lines.append(f"exit_group {pid} {exit}")
        if reap:
            lines.append(f"reap {pid}")
        if not lines:
            raise TypeError("say what happens: exit=CODE, kill=SIG, reap=True or do='COMMAND'")
        ids: list[int] = []
        for line in lines:  # triggers on one request fire in the order they were armed
            ids += self.on(op, path, line, times=times).ids
        return Trigger(self, ids)

    def on_open(self, pid: int, name: str = "", *, exit: int | None = None, reap: bool = False,
                kill: str | int | None = None, do: str | None = None, times: int = 1) -> Trigger:
        """Make the next open of ``/<pid>/<name>`` race: ``do``, then ``kill``, ``exit_group``
        with ``exit`` and the parent's ``reap`` run inside it; the open then answers what
        Linux answers in that state."""
        return self._on("open", pid, name, exit, reap, kill, do, times)

    def on_lookup(self, pid: int, name: str = "", *, exit: int | None = None, reap: bool = False,
                  kill: str | int | None = None, do: str | None = None, times: int = 1) -> Trigger:
        """As ``on_open``, for the lookup of ``/<pid>`` (``name`` "") or ``/<pid>/<name>``."""
        return self._on("lookup", pid, name, exit, reap, kill, do, times)

    def on_read(self, pid: int, name: str, *, exit: int | None = None, reap: bool = False,
                kill: str | int | None = None, do: str | None = None, times: int = 1) -> Trigger:
        """As ``on_open``, for a read of an open ``/<pid>/<name>``."""
        return self._on("read", pid, name, exit, reap, kill, do, times)

    def on_readdir(self, pid: int, name: str = "", *, exit: int | None = None, reap: bool = False,
                   kill: str | int | None = None, do: str | None = None, times: int = 1) -> Trigger:
        """As ``on_open``, for the start of a listing of ``/<pid>`` or ``/<pid>/<name>``."""
        return self._on("readdir", pid, name, exit, reap, kill, do, times)

    def on_list(self, pid: int, *, exit: int | None = None, reap: bool = False,
                kill: str | int | None = None, do: str | None = None, times: int = 1) -> Trigger:
        """As ``on_open``, for the next listing of the root about to return ``pid``'s entry
        (``on list PID``): a pid reaped there is not returned, the listing goes on."""
        return self._on("list", pid, "", exit, reap, kill, do, times)

    def triggers(self) -> list[str]:
        """The armed triggers, one ``ID OP PATH times=N fired=N errors=N do COMMAND`` each."""
        return self.command("triggers").splitlines()


class Trigger:
    """Armed triggers (one per command): ``fired`` tells whether they have all run at least once,
    ``cancel()`` disarms those still armed."""

    def __init__(self, client: Client, ids: list[int]) -> None:
        self.client = client
        self.ids = ids
        self.cancelled = False

    def _armed(self) -> dict[int, int]:
        out = {}
        for line in self.client.triggers():
            tid, _op, _path, _times, fired = line.split(" ", 5)[:5]
            out[int(tid)] = int(fired.removeprefix("fired="))
        return out

    @property
    def fired(self) -> bool:
        armed = self._armed()
        if self.cancelled:
            return all(armed.get(i, 0) > 0 for i in self.ids)
        return all(i not in armed or armed[i] > 0 for i in self.ids)

    def cancel(self) -> None:
        armed = self._armed()
        for i in self.ids:
            if i in armed:
                self.client.command("cancel", i)
        self.cancelled = True

    def __repr__(self) -> str:
        return f"<Trigger {self.ids} fired={self.fired}>"


def _wait_words(**on: bool) -> list[str]:
    return [w for w, v in on.items() if v]


class AsyncClient:
    """Coroutine twins of a ``Client``'s methods for trio tests: each runs the call in a worker
    thread (``trio.to_thread.run_sync``), so the event loop stays free. ``wait`` blocks a worker
    thread on ``.control``; cancelling it is clean (it consumes nothing, see the module's note),
    its abandoned thread ends when a child changes state or the mount goes away."""

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
                   nohang: bool = False, nowait: bool = False, all: bool = False,
                   stopped: bool = False, continued: bool = False) -> WaitStatus | None:
        """``Client.wait`` for trio: the same result, the blocking read in a worker thread."""
        import trio

        c = self._client
        words = _wait_words(all=all, stopped=stopped, continued=continued)

        def line(*extra: str) -> Callable[[], WaitStatus | None]:
            return functools.partial(c._wait_line, parent, pid, pgid, *extra, *words)

        if nohang:
            return await trio.to_thread.run_sync(line("nohang", *_wait_words(nowait=nowait)))
        while True:
            seen = await trio.to_thread.run_sync(line("nowait"), abandon_on_cancel=True)
            if nowait:
                return seen
            got = await trio.to_thread.run_sync(line("nohang"))
            if got is not None:
                return got


# -- mount points -------------------------------------------------------------------------------


#: mount/nodes/root.py REQUESTS_XATTR (not imported: the client does not load the server)
REQUESTS_XATTR = "user.pidfs.requests"


def request_counts(mountpoint: str | os.PathLike[str]) -> dict[str, int]:
    """The FUSE requests a mount's server has answered since it started, by type (``lookup``,
    ``getattr``, ``opendir``, ``readdir``, ``open``, ``read``, ``release``, ``forget``...);
    reading them is not counted. Take the difference of two readings for one tool run."""
    raw = os.getxattr(os.fspath(mountpoint), REQUESTS_XATTR).decode()
    return {k: int(v) for k, v in (line.split() for line in raw.splitlines())}


#: mount/nodes/root.py MEMORY_XATTR
MEMORY_XATTR = "user.pidfs.memory"


def held_counts(mountpoint: str | os.PathLike[str]) -> dict[str, int]:
    """What a mount's server holds now: ``tasks`` of the model, ``nodes`` (inodes the kernel
    may still name), ``nodes_of_freed_pids`` (of those, the ones about pids gone: the kernel
    has not forgotten them yet), ``node_groups``, ``open_files``, ``open_dirs`` and
    ``stand_ins`` (entries for callers outside the table). Reading it is not counted as a
    request."""
    raw = os.getxattr(os.fspath(mountpoint), MEMORY_XATTR).decode()
    return {k: int(v) for k, v in (line.split() for line in raw.splitlines())}


def request_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """``after - before`` per request type, types with no requests left out."""
    return {k: n - before.get(k, 0) for k, n in sorted(after.items()) if n - before.get(k, 0)}


def umount_command(mountpoint: str, lazy: bool = False) -> list[str]:
    """``fusermount3 -u [-z]`` (``umount [-l]`` where fuse3 is missing)."""
    if shutil.which("fusermount3"):
        return ["fusermount3", "-u"] + (["-z"] if lazy else []) + [mountpoint]
    return ["umount"] + (["-l"] if lazy else []) + [mountpoint]


def is_mounted(path: str) -> bool:
    """True when ``path`` is a mount point (read from /proc/self/mountinfo)."""
    return rundir.mount_at(path) is not None


def answers(path: str) -> int:
    """0 when the file system at ``path`` answers, else the errno (ENOTCONN: its server died).
    statfs always reaches the server, unlike stat, which the kernel may answer from cache."""
    try:
        os.statvfs(path)
        return 0
    except OSError as e:
        return e.errno or errno.EIO


def _stale(mountpoint: str) -> bool:
    """A pidfs-fuse mount at ``mountpoint`` whose server died (ENOTCONN)."""
    return rundir.is_ours(rundir.mount_at(mountpoint)) and answers(mountpoint) == errno.ENOTCONN


def check_mountpoint(mountpoint: str) -> list[str]:
    """Refuse a missing or busy mount point; clear a stale pidfs-fuse mount. Returns notes to
    print."""
    notes: list[str] = []
    m = rundir.mount_at(mountpoint)
    if m is not None:
        if not rundir.is_ours(m):
            raise MountError(f"{mountpoint} is already a mount point ({rundir.describe(m)})")
        if not _stale(mountpoint):
            pid = server_pid(mountpoint)
            who = f": a pidfs-fuse table, server pid {pid}" if pid is not None else ""
            raise MountError(f"{mountpoint} is already a mount point{who} (unmount it first: "
                             f"pidfs-fuse unmount {mountpoint})")
        r = subprocess.run(umount_command(mountpoint, lazy=True), capture_output=True, text=True)
        if r.returncode != 0:
            raise MountError(f"{mountpoint} holds a stale mount (transport endpoint is not "
                             f"connected) that could not be cleared: {r.stderr.strip()}")
        notes.append(f"cleared a stale mount at {mountpoint} left by a server that was killed")
    try:
        st = os.stat(mountpoint)
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise MountError(f"mount point {mountpoint} does not exist (create it with mkdir first)") from None
        raise MountError(f"cannot use mount point {mountpoint}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise MountError(f"mount point {mountpoint} is not a directory")
    return notes


FUSE_CONF = "/etc/fuse.conf"


def check_fuse_access(*, allow_other: bool = False, fuse_conf: str = FUSE_CONF) -> None:
    """What a normal user needs for a FUSE mount, each missing piece as one sentence that says
    what to change: /dev/fuse open to them, fusermount3, and for ``allow_other`` a
    ``user_allow_other`` line in /etc/fuse.conf. Root needs only /dev/fuse."""
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC))
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise MountError("there is no /dev/fuse: load the fuse module (modprobe fuse) or, in a "
                             "container, pass the device in (--device /dev/fuse)") from None
        if e.errno in (errno.EACCES, errno.EPERM):
            st = os.stat("/dev/fuse")
            raise MountError(
                f"cannot open /dev/fuse (mode {stat.S_IMODE(st.st_mode):04o}, group {st.st_gid}): a "
                f"normal user's FUSE mount needs it readable and writable; ask root to make it so "
                f"(chmod 0666 /dev/fuse, as Debian does, or add you to its group)") from None
        raise MountError(f"cannot open /dev/fuse: {e.strerror}") from None
    if os.geteuid() == 0:
        return
    if shutil.which("fusermount3") is None:
        raise MountError("fusermount3 is missing: a normal user mounts through it (install the "
                         "fuse3 package)")
    if allow_other and not fuse_conf_allows_other(fuse_conf):
        raise MountError(f"-o allow_other needs a line 'user_allow_other' in {fuse_conf} when you "
                         f"are not root (ask root to add it); without allow_other only you (uid "
                         f"{os.geteuid()}) can read the mount")


def fuse_conf_allows_other(path: str = FUSE_CONF) -> bool:
    """True when ``path`` has an uncommented ``user_allow_other`` line (fuse(8))."""
    try:
        with open(path) as f:
            return any(line.strip() == "user_allow_other" for line in f)
    except OSError:
        return False


# -- servers ------------------------------------------------------------------------------------


def server_args(*, scenario: str | os.PathLike[str] | None = None,
                restore: str | os.PathLike[str] | None = None, options: str | None = None,
                self_pid: int | None = None, tgid_scan: str | None = None,
                clock: str | None = None, max_tasks: int | None = None) -> list[str]:
    """The server's command-line options for a table (paths made absolute: it runs in /)."""
    args: list[str] = []
    if max_tasks is not None:
        args += ["--max-tasks", str(max_tasks)]
    if clock is not None:
        args += ["--clock", clock]
    if tgid_scan is not None:
        args += ["--tgid-scan", tgid_scan]
    if options:
        args += ["-o", options]
    if scenario is not None:
        args += ["--scenario", os.path.abspath(scenario)]
    if restore is not None:
        args += ["--restore", os.path.abspath(restore)]
    if self_pid is not None:
        args += ["--self", str(self_pid)]
    return args


def spawn_server(mountpoint: str, args: list[str], log: IO[bytes], *,
                 python: Sequence[str] = (sys.executable,)) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``python -m pidfs_fuse.mount MOUNTPOINT ARGS`` in a session of its own, its output
    going to ``log``. Returns the process and the read end of its ready pipe, for
    ``await_server``. ``python`` is the interpreter's argv prefix (``mount_table`` wraps it)."""
    r, w = os.pipe()
    cmd = [*python, "-m", "pidfs_fuse.mount", mountpoint, *args, "--ready-fd", str(w)]
    try:
        proc = subprocess.Popen(cmd, pass_fds=(w,), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, start_new_session=True, cwd="/")
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    return proc, r


def await_server(mountpoint: str, proc: subprocess.Popen[bytes], ready_fd: int, log: IO[bytes], *,
                 timeout: float = START_TIMEOUT, progress: ProgressFactory | None = None,
                 log_from: int = 0) -> None:
    """Follow a starting server until it is mounted and answers (``progress(label)`` draws its
    load progress, if given). On failure raise ``MountError`` with the server's own last line
    (what it wrote to ``log`` after offset ``log_from``), leaving nothing mounted."""
    if _follow_server(ready_fd, progress) != "ready":
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        log.seek(log_from)
        lines = [ln for ln in log.read().decode(errors="replace").splitlines() if ln.strip()]
        why = lines[-1] if lines else f"the server exited with status {proc.returncode}"
        if is_mounted(mountpoint):
            subprocess.run(umount_command(mountpoint, lazy=True), capture_output=True)
        raise MountError(f"could not mount {mountpoint}: {why.removeprefix('pidfs-fuse: ')}")
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.stat(os.path.join(mountpoint, CONTROL))
            return
        except OSError as e:
            if time.monotonic() > deadline or proc.poll() is not None:
                subprocess.run(umount_command(mountpoint, lazy=True), capture_output=True)
                raise MountError(f"the mount at {mountpoint} does not answer: {e.strerror}") from None
            time.sleep(0.01)


def _follow_server(r: int, progress: ProgressFactory | None) -> str:
    """Read the starting server's pipe: report its progress lines, return "ready" or "" (it
    died)."""
    shown: dict[str, Callable[[int, int], None]] = {}
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
                if len(words) == 4 and words[0] == "progress" and progress is not None:
                    report = shown.get(words[1])
                    if report is None:
                        report = shown[words[1]] = progress(words[1]) or (lambda d, t: None)
                    report(int(words[2]), int(words[3]))


# -- detached servers (pidfs-fuse mount / unmount) ----------------------------------------------


def server_pid(mountpoint: str) -> int | None:
    """The pid of the server serving ``mountpoint`` (from its record in the run directory), or
    None when there is none or it no longer runs."""
    rec = rundir.find_record(mountpoint)
    return rec.pid if rec is not None and rec.server_alive() else None


@contextlib.contextmanager
def _mount_lock(mountpoint: str) -> Any:
    """Only one ``mount`` of a directory at a time: a lock on the directory itself (leaves
    nothing behind). The loser of two concurrent mounts fails here, or, if the winner has
    finished, at ``check_mountpoint``."""
    try:
        fd = os.open(mountpoint, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        yield  # check_mountpoint says what is wrong with it
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise MountError(f"{mountpoint} is being mounted by another pidfs-fuse mount "
                                 f"right now") from None
            raise
        yield
    finally:
        os.close(fd)


def mount(mountpoint: str, *, progress: ProgressFactory | None = None, log: str | None = None,
          log_level: str | None = None, keep_log: bool = False, notes: list[str] | None = None,
          **table: Any) -> int:
    """What ``pidfs-fuse mount`` does: check the mount point (clearing a stale mount, adding a
    note to ``notes``), start a server that outlives this process (``table`` as
    ``server_args``), return its pid once the mount answers. Its log goes to ``log`` (kept), or
    to the run directory (removed with the mount unless ``keep_log``); ``unmount`` stops it."""
    mountpoint = os.path.abspath(mountpoint)
    try:
        d = rundir.run_dir()
    except rundir.RunDirError as e:
        raise MountError(str(e)) from None
    rundir.sweep()
    check_fuse_access(allow_other="allow_other" in [o.strip() for o in (table.get("options") or "").split(",")])
    args = server_args(**table)
    if log is not None:
        log_path, keep_log = os.path.abspath(log), True
        mode = "a+b"
    else:
        log_path, mode = rundir.default_log_path(mountpoint, d), "w+b"
    args += ["--log", log_path] + (["--keep-log"] if keep_log else [])
    if log_level is not None:
        args += ["--log-level", log_level]
    with _mount_lock(mountpoint):
        found = check_mountpoint(mountpoint)
        if notes is not None:
            notes.extend(found)
        try:
            logf = open(log_path, mode)  # noqa: SIM115 (closed by the with below)
        except OSError as e:
            raise MountError(f"cannot write the log {log_path}: {e.strerror}") from None
        with logf:
            start = logf.seek(0, os.SEEK_END)
            proc, ready = spawn_server(mountpoint, args, logf)
            await_server(mountpoint, proc, ready, logf, progress=progress, log_from=start)
    return proc.pid


def unmount(mountpoint: str, *, timeout: float = 10.0) -> None:
    """``pidfs-fuse unmount``: unmount a pidfs-fuse mount (lazily when its server died, or when
    files are still open on it: the server then notices and exits, failing the readers still
    waiting), and return once its server has exited. Refuses anything that is not a pidfs-fuse
    mount. Raises ``MountError``, also when the server is still running after ``timeout``
    seconds."""
    mountpoint = os.path.abspath(mountpoint)
    if not os.path.lexists(mountpoint):
        raise MountError(f"{mountpoint} does not exist")
    m = rundir.mount_at(mountpoint)
    if m is None:
        raise MountError(f"{mountpoint} is not mounted")
    if not rundir.is_ours(m):
        raise MountError(f"{mountpoint} is not a pidfs-fuse mount (it is {rundir.describe(m)}); "
                         f"refusing to unmount it")
    rec = rundir.find_record(mountpoint)
    pid = rec.pid if rec is not None and rec.server_alive() else None
    # a live server is asked nothing (stopped, it would never answer); without one, statfs
    # tells a dead connection (ENOTCONN) at once
    stale = pid is None and answers(mountpoint) == errno.ENOTCONN
    r = subprocess.run(umount_command(mountpoint, lazy=stale), capture_output=True, text=True)
    if r.returncode != 0 and not stale and "busy" in r.stderr:
        # files are open on it (a reader blocked in a handle file): detach it; the server
        # notices, exits, and the kernel fails those readers' requests
        r = subprocess.run(umount_command(mountpoint, lazy=True), capture_output=True, text=True)
    if r.returncode != 0:
        msg = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit status {r.returncode}"
        raise MountError(f"could not unmount {mountpoint}: {msg}")
    if rec is not None and pid is None:
        rundir.remove_record(rec, only_pid=rec.pid)  # its server was killed: nobody else will
    if pid is None:
        return
    deadline = time.monotonic() + timeout
    while rundir.process_starttime(pid) == rec.starttime:  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            raise MountError(f"unmounted {mountpoint}, but its server (pid {pid}) is still running "
                             f"after {timeout:g} s (stop it with: kill {pid})")
        time.sleep(0.01)


@dataclass(frozen=True, slots=True)
class MountStatus:
    """One of this user's mounts as ``pidfs-fuse status`` lists it. ``pid`` is None when no
    record names a live server; ``tasks`` is None when the mount did not answer; ``problem``
    says what is wrong and the command that clears it (empty for a healthy mount)."""

    mountpoint: str
    pid: int | None
    tasks: int | None
    clock: str
    options: str
    since: float | None
    source: str
    problem: str = ""


def _count_tasks(mountpoint: str, timeout: float) -> int | None:
    """The number of threads in the mount's view (the total of its ``loadavg``), read in a
    helper thread so that a server that does not answer costs at most ``timeout``."""
    box: list[int | None] = [None]

    def read() -> None:
        with contextlib.suppress(OSError, ValueError, IndexError), \
                open(os.path.join(mountpoint, "loadavg")) as f:
            box[0] = int(f.read().split()[3].split("/")[1])

    t = threading.Thread(target=read, name="pidfs-status", daemon=True)
    t.start()
    t.join(timeout)
    return box[0]


def mount_status(*, timeout: float = 2.0) -> list[MountStatus]:
    """This user's pidfs-fuse mounts (from the run directory's records and this mount
    namespace's mount table), sorted by mount point; records of mounts that are gone are
    removed on the way."""
    uid = os.geteuid()
    mounted = {m.mountpoint: m for m in rundir.mountinfo()
               if rundir.is_ours(m) and m.user_id == uid}
    recs = {rec.mountpoint: rec for _, rec in rundir.records()}
    out = []
    for mp in sorted(set(mounted) | set(recs)):
        rec = recs.get(mp)
        alive = rec is not None and rec.server_alive()
        if mp not in mounted:
            assert rec is not None  # in recs, since not in mounted
            if not alive:
                rundir.remove_record(rec, only_pid=rec.pid)
                continue
            out.append(MountStatus(mp, rec.pid, None, "-", rec.options, rec.since, rec.source,
                                   f"not mounted here, but its server runs: kill {rec.pid}"))
            continue
        if answers(mp) == errno.ENOTCONN:
            out.append(MountStatus(mp, None, None, "-", rec.options if rec else "",
                                   rec.since if rec else None, rec.source if rec else "?",
                                   f"stale: its server was killed; clear it with: pidfs-fuse unmount {mp}"))
            continue
        tasks = _count_tasks(mp, timeout)
        problem = "" if tasks is not None else f"does not answer within {timeout:g} s"
        if rec is None:
            out.append(MountStatus(mp, None, tasks, "?", "", None, "?",
                                   problem or "no record of its server (started by an older pidfs-fuse?)"))
        else:
            out.append(MountStatus(mp, rec.pid if alive else None, tasks, rec.extra.get("clock", "?"),
                                   rec.options, rec.since, rec.source, problem))
    return out


# -- tables owned by this process (pytest plugin, benchmarks) -----------------------------------


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

    def __enter__(self) -> PidfsMount:
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
            try:
                unmount(path)
                ok = True
            except MountError:
                ok = False
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
                clock: str | None = "frozen", dir: str | os.PathLike[str] | None = None,
                timeout: float = MOUNT_TIMEOUT, prefix: str = "pidfs-",
                max_tasks: int | None = None) -> PidfsMount:
    """Mount a table in a child process and return once it answers: the embedded default, a
    ``scenario`` file, or a ``restore`` snapshot; ``options`` as ``mount -o``; ``self_pid`` and
    ``tgid_scan`` and ``max_tasks`` as the CLI's; ``clock`` frozen (the default here: tests want time to stand still
    until they ``tick``), real, or None for the scenario's choice. The mount point is a new
    directory under ``dir`` (default: the temporary directory) named ``prefix...``. Raises
    ``MountError`` with the server's sentence (a bad scenario names the file and the entry); nothing
    stays mounted then. Use as a context manager or call ``unmount()``."""
    if scenario is not None and restore is not None:
        raise ValueError("give scenario or restore, not both")
    d = tempfile.mkdtemp(prefix=prefix, dir=dir)
    args = server_args(scenario=scenario, restore=restore, options=options, self_pid=self_pid,
                       tgid_scan=tgid_scan, clock=clock, max_tasks=max_tasks)
    python: tuple[str, ...] = (sys.executable,)
    if threading.current_thread() is threading.main_thread():
        python = (sys.executable, "-c", _PDEATHSIG_EXEC, str(os.getpid()))
    log = tempfile.TemporaryFile(prefix="pidfs-server-")  # noqa: SIM115 (closed by the mount's teardown)
    try:
        proc, ready = spawn_server(d, args, log, python=python)
    except BaseException:
        log.close()
        os.rmdir(d)
        raise
    m = PidfsMount(Path(d), proc, log, None if scenario is None else os.fspath(scenario))
    _LIVE.add(m)
    try:
        await_server(d, proc, ready, log, timeout=timeout)
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
            for signum, old in self._saved.items():
                if signal.getsignal(signum) == self._on_signal:
                    signal.signal(signum, old)
            self._saved.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.unmount_all()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


#: process-wide, like the servers it tracks: atexit and signal handlers are process-wide too
_LIVE = _Registry()
