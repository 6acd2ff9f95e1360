"""``/.control`` sessions: write command lines, read the reply from the same open file.

Lines, whatever the write sizes. Bytes written are cut at newlines: every complete line runs
once, whole, in order, when its newline arrives; a line's start without its newline is kept
(its end is in a later write: ``cat FILE > .control`` writes 128 KiB pieces, and the kernel
splits big writes). A last line that never gets its newline runs when the reply is read (a
read from offset 0) or, failing that, when the file is released: after the last close() has
returned, so a failure there is only logged (this server takes no FLUSH requests, which would
cost every close() of every file a round trip: ``fs.py``). Read the reply to learn how a last
line went. The
kept start is scanned once, so splitting is linear in the bytes written.

Replies and failures. Each write's reply holds one reply per command it completed, in order
(a write that only carried part of a line has an empty reply). The first command that fails
stops its write: the write fails with that command's errno, the reply holds the replies of the
commands before it and then ``error: ENAME: why``, and nothing after it in that write runs;
the rest of the line the write ended in is dropped too, when it comes, so no tail of a
refused write runs as a command of its own. Blank lines are skipped; a write with nothing but
blanks fails with EINVAL. A line longer than ``MAX_LINE`` bytes fails with E2BIG as soon as
it is known to be too long, and runs nothing (its remaining pieces are dropped).

Waiting. A command that has to wait (``wait`` without ``nohang``, a bulk ``clone ... count=N``,
``snapshot``, whose file a forked child writes) is accepted and finishes in the background:
the kernel holds the file's lock for the whole of a write, so blocking there would stall every
other writer of ``.control``. The next read from offset 0 waits for it (a signal to the reader
ends that read with EINTR: ``interrupts.py``); a write while it runs fails with EBUSY. The
background command is cancelled, and reaps nothing, when the file is released or when the
process that opened it dies first (its pidfd becomes readable); its reply then ends with
``error: ECANCELED: ...`` (a cancelled ``snapshot`` still writes its file: the child goes on,
so no half-written temporary file is left behind). Commands themselves are ``control.py``'s;
this module only carries lines in and replies out.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyfuse3
import trio

from ..control import Unfinished, WouldBlock
from ..kernel import KernelError
from .nodes.table import DEFAULT_POLLMASK

if TYPE_CHECKING:
    from .fs import PidFs

log = logging.getLogger(__name__)

#: the longest command line, newline excluded: MAX_ARG_STRLEN, the longest single argument
#: execve(2) takes (E2BIG beyond it, as there)
MAX_LINE = 128 * 1024


def open_control(fs: PidFs, ctx: Any) -> pyfuse3.FileInfo:
    """Only root and the server's own user may open it (its mode is 0600, owned by that user)."""
    if ctx.uid not in (0, os.geteuid()):
        raise pyfuse3.FUSEError(errno.EACCES)
    session = ControlSession(opener=ctx.pid)
    session.fh = fh = fs.add_file(session)
    return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False, nonseekable=False)


@dataclass(frozen=True, slots=True)
class _TooLong:
    """A line over ``MAX_LINE`` bytes, in the place it had among the lines of a write."""

    size: int

    def error(self) -> KernelError:
        return KernelError(errno.E2BIG, f"a command line of {self.size} bytes or more; the "
                                        f"limit is {MAX_LINE} bytes (nothing of it was run)")


class _Failed(Exception):
    """A command line failed: stops the write (or read, or release) that ran it."""

    def __init__(self, err: int) -> None:
        super().__init__(err)
        self.errno = err


@dataclass(slots=True, eq=False)
class ControlSession:
    """One open ``.control`` file: the reply to the last write, a line still incomplete, and a
    command still running."""

    opener: int = 0  # tid that opened the file: the background command ends if it dies
    fh: int = 0
    reply: bytes = b""
    #: the start of a line whose newline has not come yet
    partial: bytearray = field(default_factory=bytearray)
    #: dropping the rest of a refused line, up to its newline
    skipping: bool = False
    #: set when a blocking command (``wait``) accepted by the last write has finished
    pending: trio.Event | None = None
    #: the errno that command ended with, reported once by the next read from offset 0
    failed: int = 0
    #: the background command's scope: cancelled at release
    scope: trio.CancelScope | None = None

    async def read(self, fs: PidFs, off: int, size: int) -> bytes:
        if off == 0 and self.partial and not self._busy():
            try:
                await self._run_lines(fs, [self._take_partial()], [])
            except _Failed as e:
                raise pyfuse3.FUSEError(e.errno) from None  # read again for the reply
        if off == 0 and self.pending is not None and not self.pending.is_set():
            await fs.interrupts.wait(self.pending, fh=self.fh, off=off, size=size,
                                     opener=self.opener)
        if off == 0 and self.failed:
            err, self.failed = self.failed, 0
            raise pyfuse3.FUSEError(err)  # read again for the reply that says why
        return self.reply[off: off + size]

    async def write(self, fs: PidFs, buf: bytes) -> int:
        """Run the command lines the write completes, in order, one reply each."""
        if self._busy():
            raise pyfuse3.FUSEError(errno.EBUSY)
        self.pending, self.failed = None, 0
        data = bytes(buf)
        out: list[str] = []
        nothing = not self.partial and not self.skipping and not data.strip()
        try:
            lines = self._split(data)
            if nothing:
                self.reply = b"error: EINVAL: empty command (try 'help')\n"
                raise pyfuse3.FUSEError(errno.EINVAL)
            await self._run_lines(fs, lines, out)
        except _Failed as e:
            if not data.endswith(b"\n"):  # the line this write ended in is refused with it
                self.partial.clear()
                self.skipping = True
            raise pyfuse3.FUSEError(e.errno) from None
        return len(buf)

    def _busy(self) -> bool:
        return self.pending is not None and not self.pending.is_set()

    def _take_partial(self) -> bytes:
        line = bytes(self.partial)
        self.partial.clear()
        return line

    def _split(self, data: bytes) -> list[bytes | _TooLong]:
        """The complete lines ``data`` ends (the kept start joined to the first), keeping the
        start of the last; a line over ``MAX_LINE`` becomes a ``_TooLong`` in its place (and an
        incomplete one already over it ends the list). Each byte is looked at once."""
        lines: list[bytes | _TooLong] = []
        pos = 0
        if self.skipping:
            nl = data.find(b"\n")
            if nl < 0:
                return lines
            self.skipping, pos = False, nl + 1
        while True:
            nl = data.find(b"\n", pos)
            if nl < 0:
                break
            if self.partial:
                self.partial += data[pos:nl]
                line = self._take_partial()
            else:
                line = data[pos:nl]
            pos = nl + 1
            lines.append(_TooLong(len(line)) if len(line) > MAX_LINE else line)
        if pos < len(data):
            n = len(self.partial) + len(data) - pos
            if n > MAX_LINE:
                self.partial.clear()
                lines.append(_TooLong(n))
            else:
                self.partial += data[pos:]
        return lines

    async def _run_lines(self, fs: PidFs, lines: list[bytes | _TooLong], out: list[str]) -> None:
        """Run ``lines`` in order into the reply; the first failure raises ``_Failed`` with the
        reply saying why; a blocking command continues (with the rest) in the background."""
        try:
            for i, raw in enumerate(lines):
                if isinstance(raw, _TooLong):
                    raise raw.error()
                try:
                    text = raw.decode()
                except UnicodeDecodeError:
                    out.append("error: EINVAL: the command is not UTF-8 text\n")
                    self.reply = "".join(out).encode()
                    raise _Failed(errno.EINVAL) from None
                if not text.strip():
                    continue
                call = fs.control.parse(text)
                if not (call.offloaded and fs.nursery is not None):
                    try:
                        out.append(await run_call(call))
                        continue
                    except WouldBlock:
                        if fs.nursery is None:  # no server around us (tests): block in place
                            out.append(await finish(fs, call))
                            continue
                assert fs.nursery is not None
                self.reply = "".join(out).encode()
                self.pending = trio.Event()
                fs.nursery.start_soon(self._finish_in_background, fs, call, lines[i + 1:], out)
                return
        except KernelError as e:
            out.append(f"error: {e.errname}: {e.reason}\n")
            self.reply = "".join(out).encode()
            raise _Failed(e.errno or errno.EIO) from None
        finally:
            await fs.settle()
        self.reply = "".join(out).encode()

    async def _finish_in_background(self, fs: PidFs, call: Any, rest: list[bytes | _TooLong],
                                    out: list[str]) -> None:
        done = False
        try:
            async with trio.open_nursery() as nursery:
                self.scope = nursery.cancel_scope
                pidfd = _pidfd_of(self.opener)
                if pidfd is not None:
                    nursery.start_soon(_cancel_at_exit, pidfd, nursery.cancel_scope)
                await self._finish(fs, call, rest, out)
                done = True
                nursery.cancel_scope.cancel()
            if not done:
                out.append("error: ECANCELED: the command was cancelled: its file was closed "
                           "or the process that opened it exited\n")
                self.failed = errno.ECANCELED
        finally:
            self.scope = None
            self.reply = "".join(out).encode()
            await fs.settle()
            self.pending.set()  # type: ignore[union-attr]

    async def _finish(self, fs: PidFs, call: Any, rest: list[bytes | _TooLong],
                      out: list[str]) -> None:
        try:
            out.append(await finish(fs, call))
            for raw in rest:
                if isinstance(raw, _TooLong):
                    raise raw.error()
                if raw.strip():
                    out.append(await finish(fs, fs.control.parse(raw.decode(errors="replace"))))
        except KernelError as e:
            out.append(f"error: {e.errname}: {e.reason}\n")
            self.failed = e.errno or errno.EIO
        except Exception:  # a bug: this task runs in the server's nursery, so it must not escape
            log.exception("internal error finishing a control command")
            out.append("error: EIO: internal error (see the server log)\n")
            self.failed = errno.EIO

    def poll(self, fs: PidFs, poll_handle: Any) -> int:
        return DEFAULT_POLLMASK

    async def release(self, fs: PidFs) -> None:
        """After the last close: a last line without its newline runs now (its failure goes to
        the log: nobody is left to tell); a command still waiting is cancelled (it reaps
        nothing), and so is one that line started."""
        if self.partial and not self._busy():
            line = self._take_partial()
            try:
                await self._run_lines(fs, [line], [])
            except _Failed as e:
                log.warning("the last line of a closed .control file failed (%s): %r",
                         errno.errorcode.get(e.errno, e.errno), line[:200])
        if self.scope is not None:
            self.scope.cancel()


def _pidfd_of(tid: int) -> int | None:
    """A pidfd of the thread group of ``tid`` (None if it is gone or not visible here)."""
    try:
        with open(f"/proc/{tid}/status") as f:
            tgid = next(int(ln.split()[1]) for ln in f if ln.startswith("Tgid:"))
        return os.pidfd_open(tgid)
    except (OSError, StopIteration, ValueError):
        return None


async def _cancel_at_exit(pidfd: int, scope: trio.CancelScope) -> None:
    try:
        await trio.lowlevel.wait_readable(pidfd)
        scope.cancel()
    finally:
        os.close(pidfd)


async def run_call(call: Any) -> str:
    """Run one call; the file I/O of one that has some (``snapshot``) runs on a worker thread,
    so this thread goes on answering requests (the file may even be on a mount it serves)."""
    io = call.split()
    if io is not None:  # cancelled (its file closed), the thread is left to finish alone
        return await trio.to_thread.run_sync(io, abandon_on_cancel=True)
    return call.run()


async def finish(fs: PidFs, call: Any) -> str:
    """Run a blocked call again after every model change until it answers; a bulk command's
    next slice runs once the requests that came during this one had their turn."""
    while True:
        ev = fs.changes.any_change
        try:
            return await run_call(call)
        except Unfinished:
            await fs.settle()
            await trio.lowlevel.checkpoint()  # a slice may change nothing (growth.py)
        except WouldBlock:
            await fs.settle()
            await ev.wait()
