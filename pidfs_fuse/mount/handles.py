"""Handle-file I/O: an open ``pidfd`` file is bound to one struct pid from open to release.

``read`` blocks until the handle's poll mask has POLLIN (EAGAIN instead with ``O_NONBLOCK``),
then serves ``exited N`` / ``killed SIG`` / ``dumped SIG`` and ``Key:\\tvalue`` lines; ``write``
sends a signal; ``poll`` reports the kernel's pidfd mask. Blocked readers and pollers are woken
by the model's events (``Waiters.on_event``), never by timers, and a blocked reader that gets a
signal by ``interrupts.py``.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyfuse3
import trio

from ..kernel import POLLHUP, POLLIN, Event, EventKind, Kernel, KernelError, Pid, PidFd, describe_status
from ..kernel import signals as SIG
from ..procfs import files as F
from ..procfs.view import View

if TYPE_CHECKING:
    from .fs import PidFs

log = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class Handle:
    """An open pidfd file: bound to one struct pid from open to release."""

    fd: PidFd
    view: View
    nonblock: bool
    fh: int = 0
    uid: int = 0  # who opened it: signalling is checked against this uid
    opener: int = 0  # the tid that opened it (interrupts.py's fallback caller)
    poll_handle: Any = None  # the latest PollHandle
    #: the text served at offsets > 0: rendered by the last read at offset 0 (seq_file-like),
    #: so a reader taking the text in pieces never mixes two renderings
    text: bytes | None = None

    async def read(self, fs: PidFs, off: int, size: int) -> bytes:
        """Block until the handle is readable (EAGAIN instead with O_NONBLOCK), then serve the
        text: rendered afresh at offset 0, continued from that rendering at other offsets.

        Only O_NONBLOCK given to open counts: pyfuse3 passes no file flags to ``read``, so a
        later fcntl(F_SETFL) is not seen. A signal the reader takes ends a blocked read with
        EINTR (``interrupts.py``); a read tried again blocks again."""
        k = fs.kernel
        while not k.pidfd_poll(self.fd) & POLLIN:
            if self.nonblock:
                raise pyfuse3.FUSEError(errno.EAGAIN)
            await fs.interrupts.wait(fs.waiters.exit_of(self.fd.pid), fh=self.fh, off=off,
                                     size=size, opener=self.opener)
        if off == 0 or self.text is None:
            self.text = render_handle(self.view, k, self.fd)
        return self.text[off: off + size]

    async def write(self, fs: PidFs, buf: bytes) -> int:
        text = bytes(buf).decode(errors="replace").strip()
        try:
            sig = SIG.parse_signal(text)
            fs.kernel.pidfd_send_signal(self.fd, sig, uid=self.uid)
        except KernelError as e:
            raise pyfuse3.FUSEError(e.errno) from None
        finally:
            await fs.settle()
        return len(buf)

    def poll(self, fs: PidFs, poll_handle: Any) -> int:
        mask = fs.kernel.pidfd_poll(self.fd)
        # re-arm with the newest PollHandle on every call (the kernel sends one whenever a
        # waiter is queued on this open file: poll/select each time, epoll on every re-poll);
        # one notify wakes every waiter of the file. After HUP nothing changes any more.
        self.poll_handle = poll_handle if not mask & POLLHUP else None
        return mask

    async def release(self, fs: PidFs) -> None:
        fs.waiters.remove(self)
        fs.kernel.pidfd_close(self.fd)
        await fs.settle()


@dataclass(slots=True)
class Waiters:
    """Who waits on which struct pid: blocked handle reads (a trio event per pid) and the
    open handles whose latest PollHandle is to be notified."""

    exits: dict[Pid, trio.Event] = field(default_factory=dict)
    pollers: dict[Pid, dict[int, Handle]] = field(default_factory=dict)

    def exit_of(self, pid: Pid) -> trio.Event:
        """The event set at the next exit or reap event of ``pid``."""
        ev = self.exits.get(pid)
        if ev is None:
            ev = self.exits[pid] = trio.Event()
        return ev

    def add(self, h: Handle) -> None:
        self.pollers.setdefault(h.fd.pid, {})[h.fh] = h

    def remove(self, h: Handle) -> None:
        hs = self.pollers.get(h.fd.pid)
        if hs is not None:
            hs.pop(h.fh, None)
            if not hs:
                del self.pollers[h.fd.pid]

    def on_event(self, ev: Event) -> None:
        """Wake readers and pollers of a pid that exited or was reaped."""
        if ev.kind not in (EventKind.EXITED, EventKind.REAPED):
            return
        w = self.exits.pop(ev.pid, None)
        if w is not None:
            w.set()
        for h in self.pollers.get(ev.pid, {}).values():
            ph, h.poll_handle = h.poll_handle, None
            if ph is not None:
                try:
                    ph.notify()
                except OSError as e:  # the poller went away
                    log.debug("poll notify failed: %s", e)


def open_handle(fs: PidFs, pid: Pid, flags: int, ctx: Any) -> pyfuse3.FileInfo:
    """Opening a handle file is pidfd_open() of the pid it names (a thread handle for a pid
    that leads no thread group)."""
    try:
        fd = fs.kernel.pidfd_get(pid, thread=pid.tgid_task is None,
                                 nonblock=bool(flags & os.O_NONBLOCK))
    except KernelError as e:
        raise pyfuse3.FUSEError(e.errno) from None
    h = Handle(fd, fs.root_view, bool(flags & os.O_NONBLOCK), uid=ctx.uid, opener=ctx.pid)
    h.fh = fs.add_file(h)
    fs.waiters.add(h)
    # direct_io: every read reaches Handle.read (the page cache would serve a stale text and
    # never block); seekable, so pread(fd, n, 0) or lseek(0) re-reads the current state
    return pyfuse3.FileInfo(fh=h.fh, direct_io=True, keep_cache=False, nonseekable=False)


def render_handle(view: View, kernel: Kernel, fd: PidFd) -> bytes:
    """What reading a handle file returns once its process (or thread) has exited:
    ``exited N`` / ``killed SIG`` / ``dumped SIG``, then ``Key:\\tvalue`` lines."""
    pid = fd.pid
    t = pid.task
    if t is not None:
        g = t.group
        status = g.group_exit_code if (g.group_exit and not fd.thread) else t.exit_code
    else:
        info = kernel.exit_info(pid)
        status = info.exit_code if info is not None else 0
    kind, code = describe_status(status)
    lines = [f"{kind} {code}"]
    fdinfo = F.show_pidfd_fdinfo(view, fd).decode()
    for ln in fdinfo.splitlines():
        if ln.startswith(("Pid:", "NSpid:")):
            lines.append(ln)
    lines.append(f"Ino:\t{pid.ino}")
    info = kernel.exit_info(pid)
    if info is not None:
        lines.append(f"ExitCode:\t{info.exit_code}")
    return ("\n".join(lines) + "\n").encode()
