"""The caller's own entry when the table has no process with its number: a stand-in task that
never enters the model, showing the caller's *real* self where tools rely on it.

``/<nr>`` (``nr`` is how the caller knows itself: ``getpid()`` or ``gettid()`` in its own pid
namespace) answers only the host process that asked for it: its node is keyed by that
process's host tgid (``Observers``), every request checks that the caller is that process
(anyone else gets ENOENT), and nothing under it is cached by the kernel (zero timeouts), so two
callers with the same number (two ``pidfs-fuse exec`` commands both are 4000000) never see
each other's. The rows are the table's (``TGID_BASE``, ``TID_BASE`` for ``task/<tid>``); what
the stand-in's model cannot know comes from the host's /proc, read once per request
(``callers.py``):

- ``status``: the model's, with the host's ``Uid:``, ``Gid:`` and ``Groups:`` lines;
- ``maps``, ``mounts``, ``mountinfo``: the host's, as they are;
- ``exe``, ``cwd``, ``root``: links to what the host's links name;
- ``fd/``: the caller's open descriptors, each a link that opens: the file's name where it
  leads the caller to the same file, else into a real procfs the caller reaches
  (``callers.Callers.fd_path``, ``real_proc``);
- ``fdinfo/``: the host's, one file per descriptor;
- ``task/``: the caller's threads by their numbers in its namespace (``thread-self`` resolves);
  a thread's directory shows the process's stand-in, with the same host rows.

A caller always sees its own entry whatever ``hidepid`` says (Linux: ``ptrace_may_access`` lets
a task at itself), so these nodes never ask the policy. When the host's /proc cannot be read
(``Callers.enabled`` false) the rows are the model's alone, owned by the caller's uid.
"""

from __future__ import annotations

import errno
import os
import stat as S
from typing import TYPE_CHECKING, Any

import pyfuse3

from ...procfs import tables as T
from ..callers import HOST_PROC_DIR, Caller, host_errno
from .base import DOTS, OBSERVER, new_attr, owned_by, readdir_rows, task_of
from .piddir import DOT_ENTRIES, PID_TABLE_DIR, ObserverDir, make_observer
from .table import TABLE_LINK, OpenFile, PidFile, TableLink

if TYPE_CHECKING:
    from ..fs import PidFs
    from ..inodes import Node

#: rows whose whole content is the host's
HOST_FILES = frozenset({"maps", "mounts", "mountinfo"})
#: links whose target is the host's
HOST_LINKS = frozenset({"exe", "cwd", "root"})


def host_of(node: Node) -> int:
    """The host tgid of the process a stand-in node belongs to (its key: ``("obs", inum, nr,
    host tgid, ...)``)."""
    return int(node.key[3])


def caller_of(fs: PidFs, node: Node, ctx: Any) -> Caller | None:
    """The caller, when it is the process this stand-in node belongs to and the host's /proc
    describes it; None when the host's /proc cannot be read. ENOENT for anyone else."""
    if ctx is None:
        raise pyfuse3.FUSEError(errno.ENOENT)
    c = fs.callers.who(ctx.pid)
    if not c.real:
        return None
    if c.host_tgid != host_of(node):
        raise pyfuse3.FUSEError(errno.ENOENT)
    return c


def _zero_timeouts(a: pyfuse3.EntryAttributes) -> pyfuse3.EntryAttributes:
    a.entry_timeout = 0
    a.attr_timeout = 0
    return a


class StandinDir(ObserverDir):
    """``/<nr>`` of a caller not in the table (and its ``task/<tid>``): not cached, answered to
    its own process only."""

    def attr(self, fs: PidFs, node: Node, ctx: Any = None) -> pyfuse3.EntryAttributes:
        return _zero_timeouts(super().attr(fs, node, ctx))

    def getattr(self, fs: PidFs, node: Node, ctx: Any) -> pyfuse3.EntryAttributes:
        caller_of(fs, node, ctx)
        return self.attr(fs, node, ctx)

    def opendir(self, fs: PidFs, node: Node, ctx: Any) -> None:
        caller_of(fs, node, ctx)
        task_of(fs, node)

    def lookup(self, fs: PidFs, node: Node, name: str, ctx: Any) -> Node | None:
        caller_of(fs, node, ctx)
        task = task_of(fs, node)
        if name == "..":
            return fs.table.get(node.parent)
        e = T.lookup(self.table, name)
        return child(fs, node, e, task) if e is not None else None

    def readdir(self, fs: PidFs, node: Node, start_id: int, token: Any, uid: int,
                gids: list[int]) -> None:
        task = task_of(fs, node)
        rows = [e for e in self.table if e.special != "pidfd"]
        readdir_rows(fs, node, rows, start_id, token, lambda f, p, e: child(f, p, e, task))


class StandinTidDir(StandinDir):
    """``/<nr>/task/<tid>/`` of a stand-in."""

    table = T.TID_BASE


class StandinRowDir(type(PID_TABLE_DIR)):  # type: ignore[misc]
    """A static directory of a stand-in (``ns/``, ``net/``, ``fdinfo/``...): the table's rows,
    not cached, its own process only."""

    def attr(self, fs: PidFs, node: Node, ctx: Any = None) -> pyfuse3.EntryAttributes:
        return _zero_timeouts(super().attr(fs, node, ctx))

    def opendir(self, fs: PidFs, node: Node, ctx: Any) -> None:
        caller_of(fs, node, ctx)

    def lookup(self, fs: PidFs, node: Node, name: str, ctx: Any) -> Node | None:
        caller_of(fs, node, ctx)
        if node.entry.dynamic is not None:  # map_files/: the model's, empty
            return None
        return super().lookup(fs, node, name, ctx)

    def readdir(self, fs: PidFs, node: Node, start_id: int, token: Any, uid: int,
                gids: list[int]) -> None:
        if node.entry.dynamic is None:
            super().readdir(fs, node, start_id, token, uid, gids)


class StandinTaskDir(StandinRowDir):
    """``/<nr>/task/``: the caller's threads, by their numbers in its own namespace."""

    def thread(self, fs: PidFs, node: Node, tid: int) -> Node:
        return fs.table.make(node.key + (tid,), STANDIN_TID_DIR, view=node.view, pid=node.pid,
                             parent=node.ino, name=str(tid).encode(), extra=OBSERVER)

    def lookup(self, fs: PidFs, node: Node, name: str, ctx: Any) -> Node | None:
        c = caller_of(fs, node, ctx)
        task_of(fs, node)
        if not name.isdigit() or name[0] == "0":
            return None
        tid = int(name)
        if c is None:  # no real self to ask: the stand-in's one thread
            return self.thread(fs, node, tid) if tid == node.pid.nr else None
        if tid != c.tid:
            try:
                if tid not in {t for t, _ in fs.callers.threads(c)}:
                    return None
            except OSError as e:
                raise pyfuse3.FUSEError(host_errno(e)) from None
        return self.thread(fs, node, tid)

    def readdir(self, fs: PidFs, node: Node, start_id: int, token: Any, uid: int,
                gids: list[int]) -> None:
        tids = [node.pid.nr]
        if fs.callers.enabled:
            c = fs.callers.who(host_of(node))
            if c.real and c.host_tgid == host_of(node):
                try:
                    tids = [t for t, _ in fs.callers.threads(c)]
                except OSError as e:
                    raise pyfuse3.FUSEError(host_errno(e)) from None
        for i, tid in enumerate(tids):
            if DOTS + i < start_id:
                continue
            if not fs.reply(token, self.thread(fs, node, tid), DOTS + i + 1):
                return


class StandinFdDir(StandinRowDir):
    """``/<nr>/fd/``: the caller's open descriptors (the model's none without a real self)."""

    def link(self, fs: PidFs, node: Node, fd: int) -> Node:
        return fs.table.make(node.key + (fd,), STANDIN_FD_LINK, view=node.view, pid=node.pid,
                             extra=fd, parent=node.ino, name=str(fd).encode())

    def lookup(self, fs: PidFs, node: Node, name: str, ctx: Any) -> Node | None:
        c = caller_of(fs, node, ctx)
        if c is None or not name.isdigit() or (name[0] == "0" and name != "0"):
            return None
        try:
            os.lstat(f"{fs.callers.proc}/{c.host_tgid}/fd/{name}")
        except OSError:
            return None
        return self.link(fs, node, int(name))

    def readdir(self, fs: PidFs, node: Node, start_id: int, token: Any, uid: int,
                gids: list[int]) -> None:
        if not fs.callers.enabled:
            return
        try:
            fds = fs.callers.fds(host_of(node))
        except OSError as e:
            raise pyfuse3.FUSEError(host_errno(e)) from None
        # fs/proc/fd.c proc_readfd_common: descriptor fd at offset fd + 2, after the dots
        for fd in fds:
            if DOT_ENTRIES + fd < start_id:
                continue
            if not fs.reply(token, self.link(fs, node, fd), DOT_ENTRIES + fd + 1):
                return


class StandinFdInfoDir(StandinFdDir):
    """``/<nr>/fdinfo/``: one file per descriptor of the caller (psutil's ``open_files()``
    reads each one's position and flags)."""

    def link(self, fs: PidFs, node: Node, fd: int) -> Node:
        return fs.table.make(node.key + (fd,), STANDIN_FD_INFO_FILE, view=node.view,
                             pid=node.pid, extra=fd, parent=node.ino, name=str(fd).encode())


class StandinFdInfoFile(PidFile):
    """``/<nr>/fdinfo/<n>``: the host's (0444, as Linux's)."""

    def mode(self, node: Node) -> int:
        return 0o444

    def direct(self, node: Node) -> bool:
        return True

    def attr(self, fs: PidFs, node: Node, ctx: Any = None) -> pyfuse3.EntryAttributes:
        return _zero_timeouts(super().attr(fs, node, ctx))

    def open(self, fs: PidFs, node: Node, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        c = caller_of(fs, node, ctx)
        if c is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        if flags & os.O_ACCMODE != os.O_RDONLY:
            raise pyfuse3.FUSEError(errno.EACCES)
        try:
            data = fs.callers.read(c.host_tgid, f"fdinfo/{node.extra}")
        except OSError as e:
            raise pyfuse3.FUSEError(errno.ENOENT if e.errno == errno.ENOENT else host_errno(e)) from None
        fh = fs.add_file(OpenFile(node, data, ctx.uid))
        return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False)


class StandinFdLink(TableLink):
    """``/<nr>/fd/<n>``: the file's name where that name leads the caller to it, else a link
    into a real procfs the caller reaches, whose ``thread-self/fd/<n>`` is the descriptor
    itself; its mode is the host's (``lr-x------`` for a descriptor open for reading...)."""

    def attr(self, fs: PidFs, node: Node, ctx: Any = None) -> pyfuse3.EntryAttributes:
        mode = 0o700
        if fs.callers.enabled:
            try:
                mode = S.S_IMODE(os.lstat(f"{fs.callers.proc}/{host_of(node)}/fd/{node.extra}").st_mode)
            except OSError:
                pass
        a = new_attr(fs, node, S.S_IFLNK | mode, 1)
        owned_by(fs, a, task_of(fs, node), dated=False)
        return _zero_timeouts(a)

    def readlink(self, fs: PidFs, node: Node, ctx: Any) -> bytes:
        c = caller_of(fs, node, ctx)
        if c is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        fd = node.extra
        try:
            host_text = fs.callers.readlink(c.host_tgid, f"fd/{fd}")
            path = fs.callers.fd_path(c.host_tgid, fd)
        except OSError as e:
            raise pyfuse3.FUSEError(errno.ENOENT if e.errno == errno.ENOENT else host_errno(e)) from None
        if path is not None:
            return path.encode()
        where = fs.callers.real_proc(c.host_tgid)
        if where == "/proc":
            return f"/proc/thread-self/fd/{fd}".encode()
        if where == HOST_PROC_DIR:
            up = "../" * fs.path_of(node).count("/")  # from fd/ up to the mount's root
            return f"{up}{HOST_PROC_DIR}/thread-self/fd/{fd}".encode()
        return host_text.encode()


class StandinLink(TableLink):
    """``exe``, ``cwd``, ``root`` of a stand-in: the host's targets."""

    def attr(self, fs: PidFs, node: Node, ctx: Any = None) -> pyfuse3.EntryAttributes:
        return _zero_timeouts(super().attr(fs, node, ctx))

    def readlink(self, fs: PidFs, node: Node, ctx: Any) -> bytes:
        c = caller_of(fs, node, ctx)
        if c is None:
            return super().readlink(fs, node, ctx)
        try:
            return fs.callers.readlink(c.host_tgid, node.entry.name).encode()
        except OSError as e:
            raise pyfuse3.FUSEError(host_errno(e)) from None


class StandinFile(PidFile):
    """A file of a stand-in: the model's rendering, or the host's for ``HOST_FILES`` and the
    ``HOST_STATUS_LINES`` of ``status``; rendered at each open for the caller, never cached."""

    def direct(self, node: Node) -> bool:
        return True

    def attr(self, fs: PidFs, node: Node, ctx: Any = None) -> pyfuse3.EntryAttributes:
        return _zero_timeouts(super().attr(fs, node, ctx))

    def render_for(self, fs: PidFs, node: Node, c: Caller | None) -> bytes:
        name = node.entry.name
        if c is not None and name in HOST_FILES:
            return fs.callers.read(c.host_tgid, name)
        data = self.render(fs, node)
        if c is not None and name == "status":
            host = fs.callers.status_lines(c.host_tgid)
            data = b"".join(host.get(line.split(b"\t", 1)[0], line) + b"\n"
                            for line in data.splitlines())
        return data

    def content(self, fs: PidFs, node: Node) -> bytes:
        """A rendering on its own (a file open for writing, or a trigger armed): for the
        process the node belongs to, which alone may open it."""
        c = fs.callers.who(host_of(node)) if fs.callers.enabled else None
        try:
            return self.render_for(fs, node, c if c is not None and c.real else None)
        except OSError as e:
            raise pyfuse3.FUSEError(host_errno(e)) from None

    def read_direct(self, fs: PidFs, node: Node, off: int, size: int, uid: int) -> bytes:
        return self.content(fs, node)[off: off + size]

    def open(self, fs: PidFs, node: Node, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        c = caller_of(fs, node, ctx)
        task_of(fs, node)
        if flags & os.O_ACCMODE != os.O_RDONLY:
            return super().open(fs, node, flags, ctx)
        try:
            data = self.render_for(fs, node, c)
        except OSError as e:
            raise pyfuse3.FUSEError(host_errno(e)) from None
        fh = fs.add_file(OpenFile(node, data, ctx.uid))
        return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False)


STANDIN_DIR = StandinDir()
STANDIN_TID_DIR = StandinTidDir()
STANDIN_ROW_DIR = StandinRowDir()
STANDIN_TASK_DIR = StandinTaskDir()
STANDIN_FD_DIR = StandinFdDir()
STANDIN_FD_LINK = StandinFdLink()
STANDIN_FD_INFO_DIR = StandinFdInfoDir()
STANDIN_FD_INFO_FILE = StandinFdInfoFile()
STANDIN_LINK = StandinLink()
STANDIN_FILE = StandinFile()


def child(fs: PidFs, parent: Node, e: T.Entry, task: Any) -> Node:
    """The node of row ``e`` in a stand-in's directory ``parent``."""
    ops: Any
    if e.kind == T.DIR:
        ops = {"task": STANDIN_TASK_DIR, "fd": STANDIN_FD_DIR,
               "fdinfo": STANDIN_FD_INFO_DIR}.get(e.dynamic or "", STANDIN_ROW_DIR)
    elif e.kind == T.LINK:
        ops = STANDIN_LINK if e.name in HOST_LINKS else TABLE_LINK
    else:
        ops = STANDIN_FILE
    return fs.table.make(parent.key + (e.name,), ops, view=parent.view, pid=parent.pid, entry=e,
                         parent=parent.ino, name=e.name.encode(), extra=OBSERVER)


def standin_dir(fs: PidFs, parent: Node, nr: int, ctx: Any) -> Node | None:
    """``/<nr>`` in a root for the caller that knows itself by ``nr`` when the view has no
    process with that number: its stand-in (made, or remade after a change of uid or gid),
    owned by the caller's uid and gid. None for anyone else."""
    if ctx is None:
        return None
    c = fs.callers.who(ctx.pid)
    if not c.names(nr):
        return None
    return own_entry(fs, parent, nr, c, ctx.uid, ctx.gid)


def own_entry(fs: PidFs, parent: Node, nr: int, c: Caller, uid: int, gid: int) -> Node:
    view = parent.view
    key = (view.ns.inum, nr, c.host_tgid)
    t = fs.observers.get(key)
    if t is None or (t.group.uid, t.group.gid) != (uid, gid):
        if fs.observers.due():
            fs.sweep_observers()
        t = make_observer(fs.kernel, view.ns, nr, fs.self_template, uid=uid, gid=gid)
        fs.observers.add(key, t)
    return fs.table.make(("obs", *key), STANDIN_DIR, view=view, pid=t.pid, parent=parent.ino,
                         name=str(nr).encode(), extra=OBSERVER)


__all__ = ["STANDIN_DIR", "child", "own_entry", "standin_dir"]
