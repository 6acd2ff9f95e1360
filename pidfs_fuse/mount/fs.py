"""The FUSE operations: the model served as a /proc-like tree (pyfuse3 + trio live only here).

Speed comes from the kernel's caches and correctness from explicit invalidation: pid
directories and their files get long entry/attribute timeouts and ``keep_cache``; every model
event marks the nodes it touches stale, and the request that caused the change (a control
write, a handle write, a sysctl write) does not answer before those inodes and dentries were
invalidated in the kernel (from a worker thread: invalidating from the serving thread can
deadlock). Files whose content changes with time (``uptime``, ``stat``, ``loadavg``) use
``direct_io``. With ``hidepid``/``gid`` the answer depends on the caller, so pid nodes get zero
timeouts and every access is asked again.

Root listing uses the model's tagged scan and the kernel's stable offsets
(``TGID_OFFSET + tgid``), so a listing resumed after exits neither skips nor repeats.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat as S
import time
from dataclasses import dataclass
from typing import Any

import pyfuse3
import trio

from ..control import Control, WouldBlock
from ..kernel import (POLLHUP, POLLIN, POLLRDNORM, Event, EventKind, Kernel, KernelError, Pid,
                      PidFd, PidNamespace, Task)
from ..kernel import signals as SIG
from ..kernel.core import describe_status
from ..kernel.task import ExitState
from ..procfs import files as F
from ..procfs import tables as T
from ..procfs.access import (depends_on_caller, entry_access, fd_link_access, pid_access,
                             pid_dir_lookup_errno, pid_getattr_errno, pid_visible_in_listing)
from ..procfs.view import MountOptions, View
from .inodes import ROOT_INODE, InodeTable, Node

log = logging.getLogger(__name__)

FIRST_PROCESS_ENTRY = 256
TGID_OFFSET = FIRST_PROCESS_ENTRY + 2  # fs/proc/base.c
LONG = 3600.0  # seconds: entry/attr timeout when caching is safe
DEFAULT_POLLMASK = 0x1 | 0x4 | 0x40 | 0x100  # POLLIN|POLLOUT|POLLRDNORM|POLLWRNORM
TIME_VARYING = frozenset({"uptime", "stat", "loadavg"})  # global files re-read every time
#: ``Node.extra`` of an observer's directory and of every node below it
OBSERVER = ("observer",)


def _err(e: KernelError) -> pyfuse3.FUSEError:
    return pyfuse3.FUSEError(e.errno)


@dataclass(slots=True, eq=False)
class ControlSession:
    """One open ``.control`` file: the reply to the last write, and a command still running."""

    reply: bytes = b""
    #: set when a blocking command (``wait``) accepted by the last write has finished
    pending: trio.Event | None = None
    #: the errno that command ended with, reported once by the next read from offset 0
    failed: int = 0


@dataclass(slots=True, eq=False)
class Handle:
    """An open pidfd file: bound to one struct pid from open to release."""

    fd: PidFd
    view: View
    nonblock: bool
    fh: int = 0
    uid: int = 0  # who opened it: signalling is checked against this uid
    poll: Any = None  # the latest PollHandle
    #: the text served at offsets > 0: rendered by the last read at offset 0 (seq_file-like),
    #: so a reader taking the text in pieces never mixes two renderings
    text: bytes | None = None


@dataclass(slots=True, eq=False)
class OpenFile:
    node: Node
    data: bytes | None  # snapshot for cached files; None: render per read (direct_io)
    uid: int = 0  # the opener (sysctl writes are checked against it)


class PidFs(pyfuse3.Operations):
    """pyfuse3 operations over one Kernel, seen from ``ns`` (default: the root namespace)."""

    supports_dot_lookup = True
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, kernel: Kernel, *, ns: PidNamespace | None = None,
                 options: MountOptions | None = None, boot_epoch: float | None = None,
                 linear_scan: bool = False, self_template: int | None = None) -> None:
        super().__init__()
        self.kernel = kernel
        self.options = options or MountOptions()
        self.boot_epoch = boot_epoch if boot_epoch is not None else time.time() - kernel.clock() / 1e9
        self.linear = linear_scan
        self.self_template = self_template
        self.table = InodeTable()
        self.views: dict[int, View] = {}
        self.root_view = self._view(ns or kernel.root_ns)
        self.cache_ok = not depends_on_caller(self.options)
        self.timeout = LONG if self.cache_ok else 0.0
        self.controls: dict[int, ControlSession] = {}
        self.handles: dict[int, Handle] = {}
        self.open_files: dict[int, OpenFile] = {}
        self.next_fh = 1
        self.dir_uids: dict[int, tuple[int, list[int]]] = {}  # opendir fh -> caller (hidepid)
        self.control = Control(kernel, self.root_view.ns)
        #: where commands that wait run on after their write was answered (set by serve())
        self.nursery: trio.Nursery | None = None
        # waking: trio events for blocked reads and waits; poll handles per pid
        self.pid_waiters: dict[Pid, trio.Event] = {}
        self.any_change: trio.Event = trio.Event()
        self.pollers: dict[Pid, dict[int, Handle]] = {}
        self.stale_inodes: set[int] = set()
        self.stale_entries: set[tuple[int, bytes]] = set()
        self.observers: dict[tuple[int, int], Task] = {}
        kernel.listener = self.on_event
        root = self.table.make(("root", self.root_view.ns.inum), "dir", "root", ino=ROOT_INODE,
                               static=True, view=self.root_view)
        root.lookups = 1

    # -- views and events -------------------------------------------------------------------

    def _view(self, ns: PidNamespace) -> View:
        v = self.views.get(ns.inum)
        if v is None:
            v = View(kernel=self.kernel, ns=ns, options=self.options, boot_epoch=self.boot_epoch)
            self.views[ns.inum] = v
        return v

    def on_event(self, ev: Event) -> None:
        """The model's listener: runs synchronously inside whatever request changed the model."""
        kind, pid, task = ev.kind, ev.pid, ev.task
        if kind in (EventKind.EXITED, EventKind.REAPED):
            w = self.pid_waiters.pop(pid, None)
            if w is not None:
                w.set()
            hs = self.pollers.get(pid)
            if hs:
                for h in hs.values():
                    ph, h.poll = h.poll, None
                    if ph is not None:
                        try:
                            ph.notify()
                        except OSError as e:  # the poller went away
                            log.debug("poll notify failed: %s", e)
        if kind is not EventKind.FREED:
            self.any_change.set()
            self.any_change = trio.Event()
        table = self.table
        if task is not None:
            groups = [task.group]
            parent = task.group.parent
            if parent is not None:
                groups.append(parent.group)
            for g in groups:
                self.stale_inodes.update(table.group_nodes(g))
        if kind is EventKind.REAPED:
            for ino in list(table.group_nodes(task.group) if task is not None else ()):
                node = table.get(ino)
                if node is not None and node.pid is pid and node.special in ("piddir", "tiddir"):
                    self.stale_entries.add((node.parent, node.name))
            for key in [k for k in self.observers if k[1] == pid.nr]:
                self.observers.pop(key, None)

    async def settle(self) -> None:
        """Push pending invalidations into the kernel before answering the request that made
        them. Runs in a worker thread (the kernel may need this loop to answer a pending read
        of the same inode first)."""
        if not self.stale_inodes and not self.stale_entries:
            return
        inodes, self.stale_inodes = self.stale_inodes, set()
        entries, self.stale_entries = self.stale_entries, set()
        work_inodes = []
        for ino in inodes:
            node = self.table.get(ino)
            if node is None:
                continue
            node.content = None
            work_inodes.append(ino)

        def push() -> None:
            for ino in work_inodes:
                try:
                    pyfuse3.invalidate_inode(ino, attr_only=False)
                except OSError as e:
                    if e.errno not in (errno.ENOENT,):
                        log.debug("invalidate_inode(%d): %s", ino, e)
            for parent, name in entries:
                try:
                    pyfuse3.invalidate_entry(parent, name)
                except OSError as e:
                    if e.errno not in (errno.ENOENT,):
                        log.debug("invalidate_entry(%d, %r): %s", parent, name, e)

        if work_inodes or entries:
            await trio.to_thread.run_sync(push)

    # -- resolving nodes ----------------------------------------------------------------

    def _node(self, ino: int) -> Node:
        node = self.table.get(ino)
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return node

    def _task_of(self, node: Node) -> Task:
        """The live (or zombie) task a pid node shows; ESRCH once reaped (as procfs)."""
        if node.extra == OBSERVER:
            t = self.observers.get((node.view.ns.inum, node.pid.nr))
            if t is None:
                raise pyfuse3.FUSEError(errno.ESRCH)
            return t
        t = node.pid.task if node.pid is not None else None
        if t is None or t.exit_state is ExitState.DEAD:
            raise pyfuse3.FUSEError(errno.ESRCH)
        return t

    def _access(self, view: View, task: Task, ctx: Any, question=pid_access) -> None:
        """Ask ``question`` (one of procfs/access.py's, default: may the caller enter the pid's
        directory) for the caller; raise its errno."""
        if self.cache_ok or ctx is None:
            return
        err = question(view, ctx.uid, _caller_gids(ctx), task)
        if err:
            raise pyfuse3.FUSEError(err)

    # -- attributes ---------------------------------------------------------------------

    def _attr(self, node: Node, ctx: Any = None) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = node.ino
        a.generation = 0
        a.entry_timeout = self.timeout if node.special not in ("self", "thread-self") else 0
        a.attr_timeout = self.timeout
        a.st_blksize = 1024
        a.st_blocks = 0
        a.st_uid = 0
        a.st_gid = 0
        t_ns = int(self.boot_epoch * 1e9)
        special = node.special
        if special in ("root", "pidnsroot"):
            a.st_mode = S.S_IFDIR | 0o555
            a.st_nlink = 3
        elif special in ("piddir", "tiddir", "observer", "taskdir", "fddir", "fdinfodir", "subdir",
                         "pidnsdir", "pidfsdir", "gdir"):
            mode = node.entry.mode if node.entry is not None and node.entry.kind == "dir" else 0o555
            a.st_mode = S.S_IFDIR | mode
            a.st_nlink = 2
            t = self._task_of(node) if node.pid is not None else None
            if special in ("piddir", "tiddir", "observer"):
                table = T.TGID_BASE if special != "tiddir" else T.TID_BASE
                a.st_nlink = T.dir_nlink(table)
            elif node.entry is not None and special != "gdir" and t is not None:
                a.st_nlink = T.entry_nlink(node.entry, t)
            elif special == "gdir":
                a.st_nlink = T.entry_nlink(node.entry)
            if t is not None:
                a.st_uid, a.st_gid = t.group.uid, t.group.gid
                t_ns += t.start_time
        elif special == "link" or special in ("self", "thread-self", "fdlink"):
            a.st_mode = S.S_IFLNK | 0o777
            a.st_nlink = 1
            if node.pid is not None:
                t = self._task_of(node)
                a.st_uid, a.st_gid = t.group.uid, t.group.gid
        elif special == "pidfd":
            pid: Pid = node.pid
            t = pid.task
            # 0666, unlike pidfs's 0700: other users may open a handle and poll it; signalling
            # through it is checked against their uid at write (EPERM), as pidfd_send_signal does
            a.st_mode = S.S_IFREG | 0o666
            a.st_nlink = 1
            if t is not None:
                a.st_uid, a.st_gid = t.group.uid, t.group.gid
                t_ns += t.start_time
            a.st_size = 0
            a.attr_timeout = 0
        elif special == "control":
            a.st_mode = S.S_IFREG | 0o600
            a.st_nlink = 1
        else:  # files: global, per-pid, fdinfo
            mode = node.entry.mode if node.entry is not None else 0o400
            a.st_mode = S.S_IFREG | mode
            a.st_nlink = 1
            if node.pid is not None:
                t = self._task_of(node)
                a.st_uid, a.st_gid = t.group.uid, t.group.gid
                t_ns += t.start_time
            if not self._direct(node):
                a.st_size = len(self._content(node))
        a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = t_ns
        return a

    def _direct(self, node: Node) -> bool:
        return node.special == "global" and (node.entry.name in TIME_VARYING or node.entry.write is not None)

    def _content(self, node: Node) -> bytes:
        data = node.content
        if data is None:
            data = self._render(node)
            if not self._direct(node):
                node.content = data
        return data

    def _render(self, node: Node) -> bytes:
        view = node.view
        special = node.special
        try:
            if special == "global":
                return node.entry.show(view, None)
            if special == "fdinfo":
                task = self._task_of(node)
                return F.show_fdinfo(view, task, node.extra)
            task = self._task_of(node)
            return node.entry.show(view, task)
        except KernelError as e:
            raise _err(e) from None

    # -- lookup -------------------------------------------------------------------------

    async def lookup(self, parent_inode, name, ctx=None):
        parent = self._node(parent_inode)
        node = self._lookup(parent, name, ctx)
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        attr = self._attr(node, ctx)
        if parent.special == "pidfsdir":
            attr.entry_timeout = 0  # /.pidfs/<ino> must stop resolving the moment the pid is reaped
        node.lookups += 1
        return attr

    def _child_key(self, parent: Node, name: str) -> tuple:
        return parent.key + (name,)

    def _lookup(self, parent: Node, name_b: bytes, ctx: Any) -> Node | None:
        try:
            name = name_b.decode()
        except UnicodeDecodeError:
            return None
        if name == ".":
            return parent
        sp = parent.special
        view = parent.view
        mk = self.table.make
        if sp in ("root", "pidnsroot"):
            if name == "..":
                return parent
            if name.isdigit() and name[0] != "0":
                return self._pid_dir(parent, int(name), ctx)
            if name in ("self", "thread-self"):
                return mk(self._child_key(parent, name), "link", name, view=view, parent=parent.ino,
                          name=name_b, static=True)
            if sp == "root" and name == ".control":
                return mk(("control",), "file", "control", static=True, parent=parent.ino, name=name_b)
            if sp == "root" and name == ".pidfs":
                return mk(("pidfs",), "dir", "pidfsdir", static=True, view=view, parent=parent.ino,
                          name=name_b)
            if sp == "root" and name == ".pidns":
                return mk(("pidns",), "dir", "pidnsdir", static=True, view=view, parent=parent.ino,
                          name=name_b)
            e = T.lookup(T.root_table(view), name)
            return self._global(parent, e, name_b) if e is not None else None
        if sp == "gdir":
            e = T.lookup(parent.entry.children, name)
            return self._global(parent, e, name_b) if e is not None else None
        if sp == "pidnsdir":
            if not name.isdigit():
                return None
            ns = next((n for n in self.kernel.namespaces() if n.inum == int(name)), None)
            if ns is None:
                return None
            v = self._view(ns)
            return mk(("pidnsroot", ns.inum), "dir", "pidnsroot", view=v, parent=parent.ino, name=name_b)
        if sp == "pidfsdir":
            if not name.isdigit():
                return None
            pid = self.kernel.find_pidfs(int(name))
            if pid is None or pid.task is None:
                return None
            self._access(view, pid.task, ctx)  # hidepid= holds here as on /<pid>/
            return self._pidfd_node(pid, parent, name_b)
        if sp in ("piddir", "tiddir", "observer"):
            task = self._task_of(parent)
            self._access(view, task, ctx)
            if name == "..":
                return self.table.get(parent.parent)
            table = T.TID_BASE if sp == "tiddir" else T.TGID_BASE
            e = T.lookup(table, name)
            if e is None:
                return None
            return self._pid_entry(parent, e, task, name_b)
        if sp == "subdir":  # ns/
            e = T.lookup(parent.entry.children, name)
            if e is None:
                return None
            return self._pid_entry(parent, e, self._task_of(parent), name_b)
        if sp == "taskdir":
            task = self._task_of(parent)
            if not name.isdigit():
                return None
            t = self.kernel.find_task(view.ns, int(name))
            if t is None or t.group is not task.group:
                return None
            self._access(view, t, ctx, pid_dir_lookup_errno)
            return mk(("tid", view.ns.inum, t.pid.ino), "dir", "tiddir", view=view, pid=t.pid,
                      parent=parent.ino, name=name_b, group_key=t.group)
        if sp in ("fddir", "fdinfodir"):
            task = self._task_of(parent)
            if not name.isdigit():
                return None
            fd = int(name)
            if not task.group.files or fd not in task.group.files:
                return None
            if sp == "fddir":
                return mk(parent.key + (fd,), "link", "fdlink", view=view, pid=parent.pid,
                          extra=fd, parent=parent.ino, name=name_b, group_key=task.group)
            return mk(parent.key + (fd,), "file", "fdinfo", view=view, pid=parent.pid, extra=fd,
                      entry=None, parent=parent.ino, name=name_b, group_key=task.group)
        return None

    def _global(self, parent: Node, e: Any, name_b: bytes) -> Node:
        kind = "dir" if e.kind == "dir" else "file"
        return self.table.make(self._child_key(parent, e.name), kind, "gdir" if kind == "dir" else "global",
                               view=parent.view, entry=e, parent=parent.ino, name=name_b, static=True)

    def _pid_dir(self, parent: Node, nr: int, ctx: Any) -> Node | None:
        view = parent.view
        t = self.kernel.find_task(view.ns, nr)
        if t is None:
            return self._observer(parent, nr, ctx)
        self._access(view, t, ctx, pid_dir_lookup_errno)
        return self.table.make(("pid", view.ns.inum, t.pid.ino), "dir", "piddir", view=view, pid=t.pid,
                               parent=parent.ino, name=str(nr).encode(), group_key=t.group)

    def _observer(self, parent: Node, nr: int, ctx: Any) -> Node | None:
        """The caller itself when the view has no process with its number (procps needs
        /proc/<getpid()>/stat): a hidden entry shaped after ``--self`` or init's child."""
        if ctx is None or ctx.pid != nr:
            return None
        view = parent.view
        key = (view.ns.inum, nr)
        t = self.observers.get(key)
        if t is None:
            t = _make_observer(self.kernel, view.ns, nr, self.self_template)
            self.observers[key] = t
        return self.table.make(("obs", view.ns.inum, nr), "dir", "observer", view=view, pid=t.pid,
                               parent=parent.ino, name=str(nr).encode(), extra=OBSERVER)

    def _pid_entry(self, parent: Node, e: Any, task: Task, name_b: bytes) -> Node:
        view = parent.view
        mk = self.table.make
        key = self._child_key(parent, e.name)
        common = dict(view=view, pid=parent.pid, entry=e, parent=parent.ino, name=name_b,
                      group_key=None if parent.special == "observer" else task.group,
                      extra=parent.extra)
        special = getattr(e, "special", None)
        if special == "pidfd":
            if parent.special == "observer":
                raise pyfuse3.FUSEError(errno.ENOENT)
            if parent.special == "piddir" and parent.pid.tgid_task is None:
                # a thread's pid through the process path: pidfd_open()'s ENOENT
                raise pyfuse3.FUSEError(errno.ENOENT)
            return self._pidfd_node(parent.pid, parent, name_b)
        if e.kind == "dir":
            dyn = getattr(e, "dynamic", None)
            sp = {"task": "taskdir", "fd": "fddir", "fdinfo": "fdinfodir"}.get(dyn, "subdir")
            return mk(key, "dir", sp, **common)
        if e.kind == "link":
            return mk(key, "link", "link", **common)
        return mk(key, "file", "pidfile", **common)

    def _pidfd_node(self, pid: Pid, parent: Node, name_b: bytes) -> Node:
        # st_ino of a handle file is the pidfs inode number; one node per struct pid
        return self.table.make(("pidfd", pid.ino), "file", "pidfd", ino=pid.ino, pid=pid,
                               view=self.root_view, parent=parent.ino, name=name_b)

    async def forget(self, inode_list):
        for ino, n in inode_list:
            try:
                self.table.forget(ino, n)
            except Exception:  # forget never raises (pyfuse3 contract)
                log.exception("forget(%d, %d)", ino, n)

    async def getattr(self, inode, ctx=None):
        node = self._node(inode)
        if node.special in ("piddir", "tiddir"):
            self._access(node.view, self._task_of(node), ctx, pid_getattr_errno)
        return self._attr(node, ctx)

    async def setattr(self, inode, attr, fields, fh, ctx):
        node = self._node(inode)
        if fields.update_size and node.special in ("global", "control", "pidfd"):
            return self._attr(node, ctx)  # O_TRUNC on a writable file: nothing to truncate
        raise pyfuse3.FUSEError(errno.EPERM)

    async def readlink(self, inode, ctx):
        node = self._node(inode)
        sp = node.special
        if sp == "self":
            return str(ctx.pid).encode()
        if sp == "thread-self":
            return f"{ctx.pid}/task/{ctx.pid}".encode()
        task = self._task_of(node)
        self._access(node.view, task, ctx)
        if node.entry is not None and entry_access(ctx.uid, node.entry, task):
            raise pyfuse3.FUSEError(errno.EACCES)
        if sp == "fdlink":
            fd = node.extra
            if not task.group.files or fd not in task.group.files:
                raise pyfuse3.FUSEError(errno.ENOENT)
            err = fd_link_access(ctx.uid, task)
            if err:
                raise pyfuse3.FUSEError(err)
            return b"anon_inode:[pidfd]"
        try:
            return node.entry.readlink(node.view, task).encode()
        except KernelError as e:
            raise _err(e) from None

    # -- directories --------------------------------------------------------------------

    async def opendir(self, inode, ctx):
        node = self._node(inode)
        if node.kind != "dir":
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        if node.pid is not None:
            task = self._task_of(node)
            self._access(node.view, task, ctx)
        fh = self._fh()
        self.dir_uids[fh] = (inode, ctx.uid, _caller_gids(ctx) if not self.cache_ok else [])
        return fh

    async def releasedir(self, fh):
        self.dir_uids.pop(fh, None)

    async def readdir(self, fh, start_id, token):
        inode, uid, gids = self.dir_uids.get(fh, (fh, 0, []))
        node = self._node(inode)
        sp = node.special
        if sp in ("root", "pidnsroot"):
            self._readdir_root(node, start_id, token, uid, gids)
        elif sp == "gdir":
            self._readdir_entries(node, node.entry.children, start_id, token, self._global)
        elif sp in ("piddir", "tiddir", "observer", "subdir"):
            task = self._task_of(node)
            table = (node.entry.children if sp == "subdir" else
                     T.TID_BASE if sp == "tiddir" else T.TGID_BASE)
            rows = [e for e in table if not (getattr(e, "special", None) == "pidfd" and
                                             (sp == "observer" or (sp == "piddir" and node.pid.tgid_task is None)))]
            self._readdir_entries(node, rows, start_id, token,
                                  lambda p, e, nb: self._pid_entry(p, e, task, nb))
        elif sp == "taskdir":
            task = self._task_of(node)
            view = node.view
            for i, t in enumerate(list(task.group.threads)):
                if i < start_id:
                    continue
                nr = t.pid.nr_in(view.ns)
                if not nr:
                    continue
                child = self.table.make(("tid", view.ns.inum, t.pid.ino), "dir", "tiddir", view=view,
                                        pid=t.pid, parent=node.ino, name=str(nr).encode(), group_key=t.group)
                if not self._reply(token, child, i + 1):
                    break
        elif sp in ("fddir", "fdinfodir"):
            task = self._task_of(node)
            fds = sorted(task.group.files or ())
            for i, fd in enumerate(fds):
                if fd + 1 <= start_id:
                    continue
                child = self._lookup(node, str(fd).encode(), None)
                if child is None or not self._reply(token, child, fd + 1):
                    break
        elif sp == "pidnsdir":
            for i, ns in enumerate(self.kernel.namespaces()):
                if i < start_id:
                    continue
                child = self._lookup(node, str(ns.inum).encode(), None)
                if child is None or not self._reply(token, child, i + 1):
                    break
        elif sp == "pidfsdir":
            return  # inode numbers are looked up, not listed (like file handles)

    def _reply(self, token, node: Node, next_id: int) -> bool:
        attr = self._attr(node)
        if pyfuse3.readdir_reply(token, node.name, attr, next_id):
            node.lookups += 1
            return True
        return False

    def _readdir_entries(self, node: Node, rows, start_id: int, token, make) -> None:
        for i, e in enumerate(rows):
            if i < start_id:
                continue
            child = make(node, e, e.name.encode())
            if not self._reply(token, child, i + 1):
                return

    def _readdir_root(self, node: Node, start_id: int, token, uid: int, gids: list[int]) -> None:
        view = node.view
        fixed: list[tuple[str, Any]] = [(e.name, e) for e in T.root_table(view)]
        if node.special == "root":
            fixed += [(".control", None), (".pidfs", None), (".pidns", None)]
        if start_id < FIRST_PROCESS_ENTRY:
            for i, (name, e) in enumerate(fixed):
                if i < start_id:
                    continue
                child = self._lookup(node, name.encode(), None)
                if child is None:
                    continue
                if not self._reply(token, child, i + 1):
                    return
            start_id = FIRST_PROCESS_ENTRY
        for j, name in enumerate(("self", "thread-self")):
            if start_id <= FIRST_PROCESS_ENTRY + j:
                child = self._lookup(node, name.encode(), None)
                if not self._reply(token, child, FIRST_PROCESS_ENTRY + j + 1):
                    return
                start_id = FIRST_PROCESS_ENTRY + j + 1
        nr = max(start_id - TGID_OFFSET, 0)
        kernel = self.kernel
        check = not self.cache_ok
        while True:
            hit = kernel.next_tgid(view.ns, nr, linear=self.linear)
            if hit is None:
                return
            tgid, task = hit
            nr = tgid + 1
            if check and not pid_visible_in_listing(view, uid, gids, task):
                continue
            child = self.table.make(("pid", view.ns.inum, task.pid.ino), "dir", "piddir", view=view,
                                    pid=task.pid, parent=node.ino, name=str(tgid).encode(),
                                    group_key=task.group)
            if not self._reply(token, child, TGID_OFFSET + tgid + 1):
                return

    # -- files --------------------------------------------------------------------------

    def _fh(self) -> int:
        fh = self.next_fh
        self.next_fh += 1
        return fh

    async def open(self, inode, flags, ctx):
        node = self._node(inode)
        sp = node.special
        acc = flags & os.O_ACCMODE
        if sp == "control":
            if ctx.uid != 0:
                raise pyfuse3.FUSEError(errno.EACCES)
            fh = self._fh()
            self.controls[fh] = ControlSession()
            return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False, nonseekable=False)
        if sp == "pidfd":
            return self._open_pidfd(node, flags, ctx)
        if node.kind != "file":
            raise pyfuse3.FUSEError(errno.EISDIR)
        if node.pid is not None:
            task = self._task_of(node)
            self._access(node.view, task, ctx)
            if node.entry is not None and entry_access(ctx.uid, node.entry, task):
                raise pyfuse3.FUSEError(errno.EACCES)
        if acc != os.O_RDONLY and (node.entry is None or node.entry.write is None):
            raise pyfuse3.FUSEError(errno.EACCES)
        fh = self._fh()
        if self._direct(node) or acc != os.O_RDONLY:
            self.open_files[fh] = OpenFile(node, None, ctx.uid)
            return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False)
        self.open_files[fh] = OpenFile(node, self._content(node))
        return pyfuse3.FileInfo(fh=fh, direct_io=False, keep_cache=True)

    async def read(self, fh, off, size):
        of = self.open_files.get(fh)
        if of is not None:
            data = of.data
            if data is None:
                data = self._render(of.node)
            return data[off: off + size]
        cs = self.controls.get(fh)
        if cs is not None:
            if off == 0 and cs.pending is not None:
                await cs.pending.wait()
            if off == 0 and cs.failed:
                err, cs.failed = cs.failed, 0
                raise pyfuse3.FUSEError(err)  # read again for the reply that says why
            return cs.reply[off: off + size]
        h = self.handles.get(fh)
        if h is not None:
            return await self._read_pidfd(h, off, size)
        raise pyfuse3.FUSEError(errno.EBADF)

    async def write(self, fh, off, buf):
        cs = self.controls.get(fh)
        if cs is not None:
            return await self._write_control(cs, buf)
        h = self.handles.get(fh)
        if h is not None:
            return await self._write_pidfd(h, buf)
        of = self.open_files.get(fh)
        if of is None or of.node.entry is None or of.node.entry.write is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        node = of.node
        try:
            task = None if node.special == "global" else self._task_of(node)
            node.entry.write(node.view, task, bytes(buf), of.uid)
        except KernelError as e:
            raise _err(e) from None
        await self.settle()
        return len(buf)

    async def release(self, fh):
        self.open_files.pop(fh, None)
        self.controls.pop(fh, None)
        h = self.handles.pop(fh, None)
        if h is not None:
            hs = self.pollers.get(h.fd.pid)
            if hs is not None:
                hs.pop(fh, None)
                if not hs:
                    del self.pollers[h.fd.pid]
            self.kernel.pidfd_close(h.fd)
            await self.settle()

    async def poll(self, inode, fh, poll_handle, ctx):
        h = self.handles.get(fh)
        if h is None:
            return DEFAULT_POLLMASK
        mask = self.kernel.pidfd_poll(h.fd)
        # re-arm with the newest PollHandle on every call (the kernel sends one whenever a
        # waiter is queued on this open file: poll/select each time, epoll on every re-poll);
        # one notify wakes every waiter of the file. After HUP nothing changes any more.
        h.poll = poll_handle if not mask & POLLHUP else None
        return mask

    # -- the control file -----------------------------------------------------------------

    async def _write_control(self, cs: ControlSession, buf: bytes) -> int:
        """Run the written command line(s). A failure fails this write with its errno (the
        reply says why). A command that has to wait (``wait`` without ``nohang``) is accepted
        and finishes in the background: the kernel holds the file's lock for the whole of a
        write, so blocking here would stall every other writer of ``.control``; the next read
        from offset 0 waits for it instead."""
        if cs.pending is not None and not cs.pending.is_set():
            raise pyfuse3.FUSEError(errno.EBUSY)
        cs.pending, cs.failed = None, 0
        try:
            text = bytes(buf).decode()
        except UnicodeDecodeError:
            cs.reply = b"error: EINVAL: the command is not UTF-8 text\n"
            raise pyfuse3.FUSEError(errno.EINVAL) from None
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if not lines:
            cs.reply = b"error: EINVAL: empty command (try 'help')\n"
            raise pyfuse3.FUSEError(errno.EINVAL)
        out: list[str] = []
        try:
            for i, line in enumerate(lines):
                call = self.control.parse(line)
                try:
                    out.append(call.run())
                except WouldBlock:
                    if self.nursery is None:  # no server around us (tests): block in place
                        out.append(await self._finish(call))
                        continue
                    cs.reply = "".join(out).encode()
                    cs.pending = trio.Event()
                    self.nursery.start_soon(self._finish_control, cs, call, lines[i + 1:], out)
                    return len(buf)
        except KernelError as e:
            out.append(f"error: {e.errname}: {e.reason}\n")
            cs.reply = "".join(out).encode()
            raise _err(e) from None
        finally:
            await self.settle()
        cs.reply = "".join(out).encode()
        return len(buf)

    async def _finish(self, call: Any) -> str:
        """Run a blocked call again after every model change until it answers."""
        while True:
            ev = self.any_change
            try:
                return call.run()
            except WouldBlock:
                await self.settle()
                await ev.wait()

    async def _finish_control(self, cs: ControlSession, call: Any, rest: list[str],
                              out: list[str]) -> None:
        try:
            out.append(await self._finish(call))
            for line in rest:
                out.append(await self._finish(self.control.parse(line)))
        except KernelError as e:
            out.append(f"error: {e.errname}: {e.reason}\n")
            cs.failed = e.errno
        except Exception:  # a bug: this task runs in the server's nursery, so it must not escape
            log.exception("internal error finishing a control command")
            out.append("error: EIO: internal error (see the server log)\n")
            cs.failed = errno.EIO
        finally:
            cs.reply = "".join(out).encode()
            await self.settle()
            cs.pending.set()  # type: ignore[union-attr]

    # -- handle files (pidfd) ---------------------------------------------------------------

    def _open_pidfd(self, node: Node, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        pid: Pid = node.pid
        try:
            fd = self.kernel.pidfd_get(pid, thread=pid.tgid_task is None,
                                       nonblock=bool(flags & os.O_NONBLOCK))
        except KernelError as e:
            raise _err(e) from None
        fh = self._fh()
        h = Handle(fd, self.root_view, bool(flags & os.O_NONBLOCK), fh=fh, uid=ctx.uid)
        self.handles[fh] = h
        self.pollers.setdefault(pid, {})[fh] = h
        # direct_io: every read reaches _read_pidfd (the page cache would serve a stale text and
        # never block); seekable, so pread(fd, n, 0) or lseek(0) re-reads the current state
        return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False, nonseekable=False)

    async def _read_pidfd(self, h: Handle, off: int, size: int) -> bytes:
        """Block until the handle is readable (EAGAIN instead with O_NONBLOCK), then serve the
        text: rendered afresh at offset 0, continued from that rendering at other offsets.

        Only O_NONBLOCK given to open counts: pyfuse3 passes no file flags to ``read``, so a
        later fcntl(F_SETFL) is not seen. A blocked read cannot be interrupted (pyfuse3 has no
        FUSE_INTERRUPT hook): a reader killed while blocked stays in the kernel until the
        process exits or the mount goes away."""
        k = self.kernel
        while not k.pidfd_poll(h.fd) & POLLIN:
            if h.nonblock:
                raise pyfuse3.FUSEError(errno.EAGAIN)
            ev = self.pid_waiters.get(h.fd.pid)
            if ev is None:
                ev = self.pid_waiters[h.fd.pid] = trio.Event()
            await ev.wait()
        if off == 0 or h.text is None:
            h.text = render_handle(h.view, k, h.fd)
        return h.text[off: off + size]

    async def _write_pidfd(self, h: Handle, buf: bytes) -> int:
        text = bytes(buf).decode(errors="replace").strip()
        try:
            sig = SIG.parse_signal(text)
            self.kernel.pidfd_send_signal(h.fd, sig, uid=h.uid)
        except KernelError as e:
            raise _err(e) from None
        finally:
            await self.settle()
        return len(buf)

    # -- xattrs on handle files -----------------------------------------------------------

    def _xpid(self, inode: int) -> Pid:
        node = self._node(inode)
        if node.special != "pidfd":
            raise pyfuse3.FUSEError(errno.EOPNOTSUPP)
        return node.pid

    async def getxattr(self, inode, name, ctx):
        pid = self._xpid(inode)
        try:
            return self.kernel.getxattr(pid, name.decode(errors="replace"), uid=ctx.uid)
        except KernelError as e:
            raise _err(e) from None

    async def setxattr(self, inode, name, value, ctx):
        pid = self._xpid(inode)
        if pid.task is None:
            raise pyfuse3.FUSEError(errno.ESRCH)
        try:
            self.kernel.setxattr(pid, name.decode(errors="replace"), bytes(value), uid=ctx.uid)
        except KernelError as e:
            raise _err(e) from None

    async def listxattr(self, inode, ctx):
        node = self._node(inode)
        if node.special != "pidfd":
            return []
        return [n.encode() for n in self.kernel.listxattr(node.pid, uid=ctx.uid)]

    async def removexattr(self, inode, name, ctx):
        pid = self._xpid(inode)
        try:
            self.kernel.removexattr(pid, name.decode(errors="replace"), uid=ctx.uid)
        except KernelError as e:
            raise _err(e) from None

    async def statfs(self, ctx):
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_namemax = 255
        return s


def _guarded(handler):
    """A request handler that cannot take the server down: pyfuse3 lets any exception other
    than FUSEError escape its main loop, which ends the mount. A bug is logged with its
    traceback and the request fails with EIO (a model error that slipped through keeps its
    errno); the server goes on serving."""

    @functools.wraps(handler)
    async def guarded(self, *args):
        try:
            return await handler(self, *args)
        except pyfuse3.FUSEError:
            raise
        except KernelError as e:
            raise _err(e) from None
        except Exception:
            log.exception("internal error in %s%r; answering EIO", handler.__name__, args[:2])
            raise pyfuse3.FUSEError(errno.EIO) from None

    return guarded


for _name in ("lookup", "getattr", "setattr", "readlink", "opendir", "releasedir", "readdir",
              "open", "read", "write", "release", "poll", "getxattr", "setxattr", "listxattr",
              "removexattr", "statfs"):
    setattr(PidFs, _name, _guarded(getattr(PidFs, _name)))


def _caller_gids(ctx: Any) -> list[int]:
    try:
        return [ctx.gid, *pyfuse3.get_sup_groups(ctx.pid)]
    except Exception:
        return [ctx.gid]


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


def _make_observer(kernel: Kernel, ns: PidNamespace, nr: int, template: int | None) -> Task:
    """A stand-in task numbered ``nr`` in ``ns`` that never enters the model."""
    from ..kernel.pid import Pid as _Pid
    from ..kernel.task import Task as _Task, ThreadGroup as _Group

    base = kernel.find_task(ns, template) if template else None
    reaper = ns.child_reaper or kernel.init
    src = base.group if base is not None else reaper.group
    numbers = (0,) * ns.level + (nr,)
    pid = _Pid(numbers, ns, 0)
    g = _Group(leader=None, parent=base.group.parent if base is not None else reaper,  # type: ignore[arg-type]
               pgrp=src.pgrp, session=src.session, argv=src.argv if base is not None else ("observer",),
               environ=src.environ, uid=src.uid, gid=src.gid, cwd=src.cwd, exe=src.exe, root=src.root,
               vsize=src.vsize, rss=src.rss, live=1)
    t = _Task(pid=pid, group=g, comm=base.comm if base is not None else "observer",
              start_time=max(kernel.clock(), reaper.start_time))
    g.leader = t
    g.threads[t] = None
    pid.task = t
    pid.tgid_task = t
    return t
