"""``/.control`` sessions: write a command line, read the reply from the same open file.

A failure fails the ``write`` with its errno (the reply says why). A command that has to wait
(``wait`` without ``nohang``) is accepted and finishes in the background: the kernel holds the
file's lock for the whole of a write, so blocking there would stall every other writer of
``.control``; the next read from offset 0 waits for it instead. Commands themselves are
``control.py``'s; this module only carries lines in and replies out.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyfuse3
import trio

from ..control import WouldBlock
from ..kernel import KernelError
from .nodes.table import DEFAULT_POLLMASK

if TYPE_CHECKING:
    from .fs import PidFs

log = logging.getLogger(__name__)


def open_control(fs: PidFs, ctx: Any) -> pyfuse3.FileInfo:
    """Only root and the server's own user may open it (its mode is 0600, owned by that user)."""
    if ctx.uid not in (0, os.geteuid()):
        raise pyfuse3.FUSEError(errno.EACCES)
    fh = fs.add_file(ControlSession())
    return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False, nonseekable=False)


@dataclass(slots=True, eq=False)
class ControlSession:
    """One open ``.control`` file: the reply to the last write, and a command still running."""

    reply: bytes = b""
    #: set when a blocking command (``wait``) accepted by the last write has finished
    pending: trio.Event | None = None
    #: the errno that command ended with, reported once by the next read from offset 0
    failed: int = 0

    async def read(self, fs: PidFs, off: int, size: int) -> bytes:
        if off == 0 and self.pending is not None:
            await self.pending.wait()
        if off == 0 and self.failed:
            err, self.failed = self.failed, 0
            raise pyfuse3.FUSEError(err)  # read again for the reply that says why
        return self.reply[off: off + size]

    async def write(self, fs: PidFs, buf: bytes) -> int:
        """Run the written command line(s), in order, one reply each."""
        if self.pending is not None and not self.pending.is_set():
            raise pyfuse3.FUSEError(errno.EBUSY)
        self.pending, self.failed = None, 0
        try:
            text = bytes(buf).decode()
        except UnicodeDecodeError:
            self.reply = b"error: EINVAL: the command is not UTF-8 text\n"
            raise pyfuse3.FUSEError(errno.EINVAL) from None
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if not lines:
            self.reply = b"error: EINVAL: empty command (try 'help')\n"
            raise pyfuse3.FUSEError(errno.EINVAL)
        out: list[str] = []
        try:
            for i, line in enumerate(lines):
                call = fs.control.parse(line)
                try:
                    out.append(await run_call(call))
                except WouldBlock:
                    if fs.nursery is None:  # no server around us (tests): block in place
                        out.append(await finish(fs, call))
                        continue
                    self.reply = "".join(out).encode()
                    self.pending = trio.Event()
                    fs.nursery.start_soon(self._finish_in_background, fs, call, lines[i + 1:], out)
                    return len(buf)
        except KernelError as e:
            out.append(f"error: {e.errname}: {e.reason}\n")
            self.reply = "".join(out).encode()
            raise pyfuse3.FUSEError(e.errno) from None
        finally:
            await fs.settle()
        self.reply = "".join(out).encode()
        return len(buf)

    async def _finish_in_background(self, fs: PidFs, call: Any, rest: list[str],
                                    out: list[str]) -> None:
        try:
            out.append(await finish(fs, call))
            for line in rest:
                out.append(await finish(fs, fs.control.parse(line)))
        except KernelError as e:
            out.append(f"error: {e.errname}: {e.reason}\n")
            self.failed = e.errno
        except Exception:  # a bug: this task runs in the server's nursery, so it must not escape
            log.exception("internal error finishing a control command")
            out.append("error: EIO: internal error (see the server log)\n")
            self.failed = errno.EIO
        finally:
            self.reply = "".join(out).encode()
            await fs.settle()
            self.pending.set()  # type: ignore[union-attr]

    def poll(self, fs: PidFs, poll_handle: Any) -> int:
        return DEFAULT_POLLMASK

    async def release(self, fs: PidFs) -> None:
        return None


async def run_call(call: Any) -> str:
    """Run one call; the file I/O of one that has some (``snapshot``) runs on a worker thread,
    so this thread goes on answering requests (the file may even be on a mount it serves)."""
    io = call.split()
    if io is not None:
        return await trio.to_thread.run_sync(io)
    return call.run()


async def finish(fs: PidFs, call: Any) -> str:
    """Run a blocked call again after every model change until it answers."""
    while True:
        ev = fs.changes.any_change
        try:
            return await run_call(call)
        except WouldBlock:
            await fs.settle()
            await ev.wait()
