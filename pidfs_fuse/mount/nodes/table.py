"""Nodes made from procfs table rows: static directories, files, links, sysctls, self.

A file's content is rendered by its row's ``show`` and kept on the node until an event about
its process marks it stale (see ``mount/events.py``); it is served from the page cache
(``keep_cache``) except for files whose content changes with time or that are written
(``direct_io``, rendered per read).
"""

from __future__ import annotations

import errno
import os
import stat as S
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyfuse3

from ...kernel import KernelError
from ...procfs import perpid as PP
from ...procfs import tables as T
from ...procfs.access import entry_access, pid_access, read_access, wchan_visible
from .base import Dir, NodeKind, PidLink, fuse_error, new_attr, owned_by, readdir_rows, task_of

if TYPE_CHECKING:
    from ..fs import PidFs
    from ..inodes import Node

#: global files re-rendered on every read (their content moves with the clock or with every
#: fork, not with an event about one process); writable ones (pressure/*) are always direct
TIME_VARYING = frozenset({"uptime", "stat", "loadavg", "vmstat", "diskstats", "slabinfo",
                          "uuid", "file-nr"})
#: per-pid files that show cpu times: with a real clock they change with every jiffy of a
#: running task and no event says so, so they are rendered per read, after the clock's catch-up
CPU_TIMES = frozenset({"stat", "sched", "schedstat"})
#: poll mask of every open file but a handle: always readable and writable
DEFAULT_POLLMASK = 0x1 | 0x4 | 0x40 | 0x100  # POLLIN|POLLOUT|POLLRDNORM|POLLWRNORM


class TableDir(Dir):
    """A static directory of global rows (``sys/``, ``sys/kernel/``)."""

    def attr(self, fs: PidFs, node: Node, ctx: Any = None) -> pyfuse3.EntryAttributes:
        return new_attr(fs, node, S.S_IFDIR | node.entry.mode, T.entry_nlink(node.entry))

    def lookup(self, fs: PidFs, node: Node, name: str, ctx: Any) -> Node | None:
        e = T.lookup(node.entry.children, name)
        return global_child(fs, node, e) if e is not None else None

    def readdir(self, fs: PidFs, node: Node, start_id: int, token: Any, uid: int,
                gids: list[int]) -> None:
        readdir_rows(fs, node, node.entry.children, start_id, token, global_child)


class TableFile(NodeKind):
    """A file rendered by its row's ``show``; writable rows take ``write``."""

    def direct(self, node: Node) -> bool:
        """Rendered on every read (``direct_io``) instead of once per change."""
        return False

    def task(self, fs: PidFs, node: Node) -> Any:
        """The task the file is about (None for global files)."""
        return None

    def mode(self, node: Node) -> int:
        return node.entry.mode

    def attr(self, fs: PidFs, node: Node, ctx: Any = None) -> pyfuse3.EntryAttributes:
        a = new_attr(fs, node, S.S_IFREG | self.mode(node), 1)
        if node.pid is not None:
            owned_by(fs, a, task_of(fs, node))
        if not self.direct(node):
            try:
                node.given = self.content(fs, node)
            except pyfuse3.FUSEError:  # a file whose open fails (a zombie's environ) still stats
                node.given = b""
            a.st_size = len(node.given)
        return a

    def content(self, fs: PidFs, node: Node) -> bytes:
        data = node.content
        if data is None:
            data = self.render(fs, node)
            if not self.direct(node):
                node.content = data
        return data

    def render(self, fs: PidFs, node: Node) -> bytes:
        try:
            return node.entry.show(node.view, self.task(fs, node))
        except KernelError as e:
            raise fuse_error(e) from None

    def read_direct(self, fs: PidFs, node: Node, off: int, size: int, uid: int) -> bytes:
        """One read of a file rendered per read, by ``uid`` (its opener)."""
        return self.render(fs, node)[off: off + size]

    def check_open(self, fs: PidFs, node: Node, ctx: Any) -> None:
        """Who may open it: everyone (global files); per-pid kinds ask the access policy."""

    def write_refused(self, node: Node) -> tuple[bool, int]:
        """A row without a writer opened for writing, which only root gets this far with (the
        kernel checked the mode): whether Linux refuses the open itself, and the errno. Global
        files open and fail the write with EIO (proc_reg_write without a write method); a
        read-only sysctl refuses the open (proc_sys_permission), as ``net/`` files do."""
        refused = "sys" in node.key[:-1] or "net" in node.key[:-1]
        return (True, errno.EACCES) if refused else (False, errno.EIO)

    def open(self, fs: PidFs, node: Node, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        self.check_open(fs, node, ctx)
        acc = flags & os.O_ACCMODE
        if acc != os.O_RDONLY and (node.entry is None or node.entry.write is None):
            at_open, err = self.write_refused(node)
            if at_open:
                raise pyfuse3.FUSEError(err)
        if self.direct(node) or acc != os.O_RDONLY:
            fh = fs.add_file(OpenFile(node, None, ctx.uid))
            return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False)
        fh = fs.add_file(OpenFile(node, self.content(fs, node)))
        return pyfuse3.FileInfo(fh=fh, direct_io=False, keep_cache=True)


class GlobalFile(TableFile):
    """``/stat``, ``/uptime``, ``/meminfo``, ...: about the whole model, root-owned."""

    truncatable = True

    def direct(self, node: Node) -> bool:
        return node.entry.name in TIME_VARYING


class SysctlFile(GlobalFile):
    """A writable global file (``sys/kernel/pid_max``, ``ns_last_pid``): rendered on every read,
    a write is checked against the opener's uid by the row's ``write``."""

    def direct(self, node: Node) -> bool:
        return True


class PidFile(TableFile):
    """A per-pid file (``/<pid>/status``, ...): owned by the task, guarded by the policy.
    Rows marked ``direct`` (wchan, whose answer depends on the reader; mem and pagemap, read by
    offset) are rendered per read; ``access.read_access`` refuses reads as Linux does (EPERM
    for timerslack_ns, EACCES for stack) after an open the mode allowed."""

    def direct(self, node: Node) -> bool:
        e = node.entry
        return e is not None and (e.direct or (e.name in CPU_TIMES
                                               and node.view.kernel.sched.source is not None))

    def task(self, fs: PidFs, node: Node) -> Any:
        return task_of(fs, node)

    def render(self, fs: PidFs, node: Node) -> bytes:
        fs.kernel.clock()  # a real clock's cpu accounting catches up first (kernel/sched.py)
        return super().render(fs, node)

    def read_direct(self, fs: PidFs, node: Node, off: int, size: int, uid: int) -> bytes:
        task = task_of(fs, node)
        e = node.entry
        try:
            if e.read_at is not None:
                return bytes(e.read_at(node.view, task, off, size))
            if e.access == PP.ACCESS_PTRACE_OR_ZERO:
                return PP.show_wchan(node.view, task, ptrace_ok=wchan_visible(uid, task))[off: off + size]
        except KernelError as err:
            raise fuse_error(err) from None
        return self.render(fs, node)[off: off + size]

    def write_refused(self, node: Node) -> tuple[bool, int]:
        """Per-pid rows open for root and fail the write with EINVAL (no write method), but
        ``net/`` files, whose open is refused."""
        return (True, errno.EACCES) if "net" in node.key[:-1] else (False, errno.EINVAL)

    def check_open(self, fs: PidFs, node: Node, ctx: Any) -> None:
        task = task_of(fs, node)
        fs.ask(pid_access, node.view, task, ctx)
        if node.entry is not None and entry_access(ctx.uid, node.entry, task):
            raise pyfuse3.FUSEError(errno.EACCES)

    def open(self, fs: PidFs, node: Node, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        info = super().open(fs, node, flags, ctx)
        f = fs.files[info.fh]
        f.uid = ctx.uid
        return info


class TableLink(PidLink):
    """A per-pid link row (``cwd``, ``exe``, ``root``, ``ns/pid``): ptrace-guarded rows say
    EACCES to other users."""

    def readlink(self, fs: PidFs, node: Node, ctx: Any) -> bytes:
        task = self.entered_task(fs, node, ctx)
        if entry_access(ctx.uid, node.entry, task):
            raise pyfuse3.FUSEError(errno.EACCES)
        try:
            return node.entry.readlink(node.view, task).encode()
        except KernelError as e:
            raise fuse_error(e) from None


class GlobalLink(NodeKind):
    """A root link (``mounts -> self/mounts``, ``net -> self/net``): root-owned, fixed."""

    kind = "link"

    def attr(self, fs: PidFs, node: Node, ctx: Any = None) -> pyfuse3.EntryAttributes:
        return new_attr(fs, node, S.S_IFLNK | 0o777, 1)

    def readlink(self, fs: PidFs, node: Node, ctx: Any) -> bytes:
        return node.entry.readlink(node.view, None).encode()


class SelfLink(NodeKind):
    """``/self`` (or, with ``thread``, ``/thread-self``): the caller's own entry, never cached."""

    kind = "link"

    def __init__(self, *, thread: bool) -> None:
        self.thread = thread

    def attr(self, fs: PidFs, node: Node, ctx: Any = None) -> pyfuse3.EntryAttributes:
        a = new_attr(fs, node, S.S_IFLNK | 0o777, 1)
        a.entry_timeout = 0
        return a

    def readlink(self, fs: PidFs, node: Node, ctx: Any) -> bytes:
        tgid, tid = fs.callers.self_numbers(ctx.pid)  # the caller's own pid namespace
        if self.thread:
            return f"{tgid}/task/{tid}".encode()
        return str(tgid).encode()


@dataclass(slots=True, eq=False)
class OpenFile:
    """An open table file: the content at open for cached files, or None to render per read."""

    node: Node
    data: bytes | None
    uid: int = 0  # the opener (writes are checked against it)
    #: direct_io with the text kept (``fs.open`` while a trigger is armed): read as seq_file
    seq: bool = False

    async def read(self, fs: PidFs, off: int, size: int) -> bytes:
        try:
            return self._read(fs, off, size)
        except pyfuse3.FUSEError as e:
            # environ opened before the reap reads empty on Linux 6.18 (environ_read finds the
            # mm it took at open gone), where other files say ESRCH
            if e.errno == errno.ESRCH and self.node.entry is not None \
                    and self.node.entry.name == "environ":
                return b""
            raise

    def _read(self, fs: PidFs, off: int, size: int) -> bytes:
        node = self.node
        if node.entry is not None and node.pid is not None and node.entry.access != PP.ACCESS_ANY:
            err = read_access(self.uid, node.entry, task_of(fs, node))
            if err:
                raise pyfuse3.FUSEError(err)
        data = self.data
        if data is None:
            return node.ops.read_direct(fs, node, off, size, self.uid)
        if self.seq:
            # opened with direct_io while a trigger was armed: the server sees each read's own
            # offset, so a read from the start renders again and a read that goes on is served
            # from that rendering, as from seq_file's buffer (zombie, or ESRCH after the reap)
            if off == 0:
                data = self.data = node.ops.content(fs, node)
            return data[off: off + size]
        if off == 0 and node.pid is not None:
            task_of(fs, node)  # a reaped pid's file is ESRCH from the start (environ: empty)
        # A page-cache read stops at the size the kernel was last given, so it is answered
        # from the rendering of that size, not from the text at open: a status opened just
        # before its task died and read after is the zombie's once the kernel has the
        # zombie's size (procfs renders at read time), and never a live text cut at the
        # zombie's length or a zombie's padded with NULs to the live one's.
        if node.given is not None:
            data = node.given
        return data[off: off + size]

    async def write(self, fs: PidFs, buf: bytes) -> int:
        node = self.node
        if node.entry is None or node.entry.write is None:
            raise pyfuse3.FUSEError(node.ops.write_refused(node)[1])
        try:
            node.entry.write(node.view, node.ops.task(fs, node), bytes(buf), self.uid)
        except KernelError as e:
            raise fuse_error(e) from None
        await fs.settle()
        return len(buf)

    def poll(self, fs: PidFs, poll_handle: Any) -> int:
        return DEFAULT_POLLMASK

    async def release(self, fs: PidFs) -> None:
        return None


def global_child(fs: PidFs, parent: Node, e: T.Entry) -> Node:
    """The node of a global row (a root's rows, ``sys/``...): one per row and parent, static."""
    from . import ROW_KINDS  # the registry imports this module

    if e.special is not None:
        ops = ROW_KINDS[e.special]
    elif e.kind == T.DIR:
        ops = TABLE_DIR
    elif e.kind == T.LINK:
        ops = GLOBAL_LINK
    else:
        ops = SYSCTL_FILE if e.write is not None else GLOBAL_FILE
    return fs.table.make(parent.key + (e.name,), ops, view=parent.view, entry=e,
                         parent=parent.ino, name=e.name.encode(), static=True)


TABLE_DIR = TableDir()
GLOBAL_FILE = GlobalFile()
SYSCTL_FILE = SysctlFile()
PID_FILE = PidFile()
TABLE_LINK = TableLink()
GLOBAL_LINK = GlobalLink()
SELF_LINK = SelfLink(thread=False)
THREAD_SELF_LINK = SelfLink(thread=True)
