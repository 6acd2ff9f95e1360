"""The FUSE operations: the model served as a /proc-like tree (pyfuse3 + trio live only here).

``PidFs`` routes: each request goes to the node kind of its inode (``Node.ops``, from
``mount/nodes``), which holds the attributes, lookup, listing and open of that kind of node, or
to the open file of its file handle (a table file, a ``.control`` session in
``control_file.py``, a handle in ``handles.py``). ``PidFs`` keeps the state they share: the
inode table, the views, the open files, the caller's identity for listings, and the model's
listener, which fans each event out to the handle waiters and to ``events.py`` (cache
invalidation).

With ``hidepid``/``gid`` the answer depends on the caller (``access.depends_on_caller``), so
nodes get zero timeouts and every access is asked again; otherwise entries and attributes are
cached for an hour and invalidated on change.
"""

from __future__ import annotations

import errno
import functools
import gc
import logging
import stat
import time
from collections import Counter
from typing import Any

import pyfuse3
import trio

from .. import timed
from ..control import Control
from ..kernel import Event, EventKind, ExitState, Kernel, KernelError, PidNamespace, Task
from ..procfs.access import depends_on_caller
from ..procfs.view import MountOptions, View
from . import reaped
from .callers import Callers
from .events import Changes
from .handles import Waiters
from .inodes import DERIVED_BASE, MAX_VIEW_SLOTS, ROOT_INODE, InodeTable, Node
from .interrupts import Interrupts
from .nodes import ROOT
from .nodes.piddir import derived_changes, derived_node
from .nodes.table import DEFAULT_POLLMASK, OpenFile
from .observers import Observers

log = logging.getLogger(__name__)

LONG = 3600.0  # seconds: entry/attr timeout when caching is safe
#: clones per slice of ``clone ... count=N``: other requests are answered between slices
#: (about 4 ms of work here; issue 9: within 100 ms while bulk work runs). A ``cat`` is four or
#: five requests, each waiting for the slice under way: 1,000 clones a slice made its longest
#: read 170 ms at the 99th percentile, 250 make it 28 ms, at the same total speed
#: (bench/bulk_bench.py)
BULK_SLICE = 250


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
        self.boot_ns = int(self.boot_epoch * 1e9)  # node times, computed once (per-entry cost)
        self.self_template = self_template
        self.table = InodeTable()
        self.views: dict[int, View] = {}
        #: views in creation order: a view's index is its slot in derived inode numbers
        self.view_slots: list[View] = []
        self.slot_of: dict[int, int] = {}  # namespace inum -> slot
        self.root_view = self.view(ns or kernel.root_ns)
        self.depends_on_caller = depends_on_caller(self.options)
        self.timeout = 0.0 if self.depends_on_caller else LONG
        #: fh -> an open file (table file, control session or handle): read/write/poll/release
        self.files: dict[int, Any] = {}
        self.next_fh = 1
        self.dir_uids: dict[int, tuple[int, int, list[int]]] = {}  # opendir fh -> dir and caller
        self.dir_callers: dict[int, int] = {}  # opendir fh of a root -> its opener's FUSE pid
        #: requests answered since the server started, by type (``nodes.root.REQUESTS_XATTR``)
        self.requests: Counter[str] = Counter()
        #: listing node ino -> a big thread group's ordered pids (``nodes.piddir.thread_pids``)
        self.listing_cache: dict[int, Any] = {}
        #: thread group -> its owner when its task/ was last listed: the thread directories the
        #: kernel may hold from that listing have no nodes, so an owner change invalidates them
        #: by their derived numbers (``nodes.piddir.derived_changes``)
        self.listed_owner: dict[Any, tuple[int, int]] = {}
        self.control = Control(kernel, self.root_view.ns)
        self.control.slice = BULK_SLICE
        self.control.after_slice = settle_heap
        self.control.snapshot_in_child = True  # a million tasks take seconds to encode
        #: where commands that wait run on after their write was answered (set by serve())
        self.nursery: trio.Nursery | None = None
        self.waiters = Waiters()
        #: blocked reads that a signal to their caller ends with EINTR (its nursery: serve())
        self.interrupts = Interrupts()
        self.changes = Changes(self.table)
        #: a caller's own numbers (pidfs-fuse exec: a deeper pid namespace) and real self
        self.callers = Callers()
        #: (namespace inum, number, host tgid) -> the stand-in of a caller the view has no
        #: process for (``nodes/standin.py``)
        self.observers = Observers(real=self.callers.enabled)
        #: the caller whose listing of a root is being answered (FUSE pid, 0 for none): under
        #: hidepid=invisible/ptraceable its own entry is listed, as Linux lists it
        self.listing_caller = 0
        kernel.listener = self.on_event
        self.table.derive = functools.partial(derived_node, self)
        root = self.table.make(("root", self.root_view.ns.inum), ROOT, ino=ROOT_INODE,
                               static=True, view=self.root_view)
        root.lookups = 1

    # -- shared by the node kinds -------------------------------------------------------------

    def view(self, ns: PidNamespace) -> View:
        v = self.views.get(ns.inum)
        if v is None:
            if len(self.view_slots) >= MAX_VIEW_SLOTS:  # derived inode numbers would collide
                log.error("this mount has shown %d pid namespaces, the most it can number",
                          len(self.view_slots))
                raise pyfuse3.FUSEError(errno.ENOSPC)
            v = View(kernel=self.kernel, ns=ns, options=self.options, boot_epoch=self.boot_epoch)
            self.views[ns.inum] = v
            self.slot_of[ns.inum] = len(self.view_slots)
            self.view_slots.append(v)
        return v

    def root_ino(self, view: View) -> int:
        """The inode of the root showing ``view`` (``/`` or ``/.pidns/<inum>``), 0 if none."""
        if view is self.root_view:
            return ROOT_INODE
        node = self.table.find(("pidnsroot", view.ns.inum))
        return node.ino if node is not None else 0

    def ask(self, question: Any, view: View, task: Task, ctx: Any) -> None:
        """Ask one of procfs/access.py's questions for the caller; raise its errno."""
        if not self.depends_on_caller or ctx is None:
            return
        err = question(view, ctx.uid, _caller_gids(ctx), task)
        if err and not (task.exit_state is not ExitState.DEAD
                        and self.callers.is_caller(ctx.pid, task.pid.nr_in(view.ns))):
            # ptrace_may_access() lets a task at itself: its own entry whatever hidepid says
            raise pyfuse3.FUSEError(err)

    def add_file(self, f: Any) -> int:
        fh = self.next_fh
        self.next_fh += 1
        self.files[fh] = f
        return fh

    def reply(self, token: Any, node: Node, next_id: int) -> bool:
        """One readdir entry; counts a lookup when the kernel took it."""
        if pyfuse3.readdir_reply(token, node.name, node.ops.attr(self, node), next_id):
            node.lookups += 1
            return True
        return False

    def on_event(self, ev: Event) -> None:
        """The model's listener: runs synchronously inside whatever request changed the model."""
        self.waiters.on_event(ev)
        self.changes.on_event(ev)
        derived_changes(self, ev)
        if ev.kind is EventKind.REAPED:
            self.observers.discard_number(ev.pid.nr)

    def sweep_observers(self) -> None:
        """Free the stand-ins of callers that are gone (``observers.py``) and have the kernel
        drop their entries, so their nodes are forgotten too. The invalidation runs in the
        background: this is called inside a lookup in the root, whose lock it needs."""
        for key in self.observers.sweep():
            node = self.table.find(("obs", *key))
            if node is not None:
                self.changes.stale_entries.add((node.parent, node.name))
        if self.nursery is not None and self.changes.stale_entries:
            self.nursery.start_soon(self.settle)

    async def settle(self, held: int = 0) -> None:
        """Push pending invalidations into the kernel before answering (``events.py``); those
        of entries in the directory ``held`` (locked by the kernel until this request is
        answered) go in the background, after the answer."""
        if await self.changes.settle(held) and self.nursery is not None:
            self.nursery.start_soon(self.changes.settle)

    def _node(self, ino: int) -> Node:
        node = self.table.get(ino)
        if node is None:
            # a derived inode whose pid is gone: what its node would answer (task_of)
            raise pyfuse3.FUSEError(errno.ESRCH if ino >= DERIVED_BASE else errno.ENOENT)
        return node

    def _file(self, fh: int) -> Any:
        f = self.files.get(fh)
        if f is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        return f

    # -- requests about nodes -----------------------------------------------------------------

    # -- injected races (timed.py): one dict test per request while none is armed ----------

    def path_of(self, node: Node) -> str:
        """The node's path from the mount's root (``42/status``; the root is ``""``)."""
        parts = []
        while node.ino != ROOT_INODE and node.name:
            parts.append(node.name.decode(errors="replace"))
            up = self.table.get(node.parent)
            if up is None:
                break
            node = up
        return "/".join(reversed(parts))

    async def fire(self, op: str, path: str, held: int = 0) -> None:
        """Run the triggers armed on ``op`` ``path`` in this request's moment, then push the
        invalidations their commands caused, so the request answers from the new state
        (``held``: the directory the kernel keeps locked meanwhile, see ``settle``)."""
        if timed.fire(self.control, op, path):
            await self.settle(held)

    def listing(self, tgid: int) -> bool:
        """``on list TGID``: run its triggers before the root listing returns that pid; True
        when one ran. The invalidations wait until the listing is answered (the kernel holds
        the root's lock while it lists)."""
        if not timed.fire(self.control, "list", str(tgid)):
            return False
        if self.nursery is not None:
            self.nursery.start_soon(self.settle)
        return True

    # -- requests about nodes -----------------------------------------------------------------

    async def lookup(self, parent_inode, name, ctx=None):
        parent = self._node(parent_inode)
        if self.kernel.triggers:
            p = self.path_of(parent)
            await self.fire("lookup", f"{p}/{name.decode(errors='replace')}" if p else
                            name.decode(errors="replace"), held=parent_inode)
        node = self._lookup(parent, name, ctx)
        if node is None:
            if parent.ops.fixed_names and self.timeout:
                # a negative entry (inode 0) the kernel keeps until it expires or the
                # directory goes (fuse_lookup_name): ``ps`` asks every process for ``ctty``
                absent = pyfuse3.EntryAttributes()
                absent.entry_timeout = self.timeout
                return absent
            raise pyfuse3.FUSEError(errno.ENOENT)
        attr = node.ops.attr(self, node, ctx)
        if parent.ops.volatile_children:
            attr.entry_timeout = 0
        node.lookups += 1
        return attr

    def _lookup(self, parent: Node, name_b: bytes, ctx: Any) -> Node | None:
        try:
            name = name_b.decode()
        except UnicodeDecodeError:
            return None
        if name == ".":
            return parent
        return parent.ops.lookup(self, parent, name, ctx)

    async def forget(self, inode_list):
        self.requests["forget"] += 1
        for ino, n in inode_list:
            try:
                self.table.forget(ino, n)
            except Exception:  # forget never raises (pyfuse3 contract)
                log.exception("forget(%d, %d)", ino, n)

    async def getattr(self, inode, ctx=None):
        node = self._node(inode)
        try:
            return node.ops.getattr(self, node, ctx)
        except pyfuse3.FUSEError as e:
            if e.errno != errno.ESRCH:
                raise
            return reaped.attr(self, node)  # fstat through a descriptor opened before the reap

    async def setattr(self, inode, attr, fields, fh, ctx):
        node = self._node(inode)
        if fields.update_size and node.ops.truncatable:
            return node.ops.attr(self, node, ctx)  # O_TRUNC on a writable file: nothing to truncate
        raise pyfuse3.FUSEError(errno.EPERM)

    async def readlink(self, inode, ctx):
        node = self._node(inode)
        return node.ops.readlink(self, node, ctx)

    async def opendir(self, inode, ctx):
        node = self._node(inode)
        node.ops.opendir(self, node, ctx)
        fh = self.next_fh
        self.next_fh += 1
        self.dir_uids[fh] = (inode, ctx.uid, _caller_gids(ctx) if self.depends_on_caller else [])
        if self.depends_on_caller and node.ops.lists_caller:
            self.dir_callers[fh] = ctx.pid
        return fh

    async def releasedir(self, fh):
        self.dir_uids.pop(fh, None)
        self.dir_callers.pop(fh, None)

    async def readdir(self, fh, start_id, token):
        inode, uid, gids = self.dir_uids.get(fh, (fh, 0, []))
        node = self._node(inode)
        fired = self.kernel.triggers and start_id == 0 and timed.fire(self.control, "readdir",
                                                                      self.path_of(node))
        if fired:
            await self.settle(held=inode)
        try:
            for name, ino, next_id in ((b".", node.ino, 1), (b"..", node.ops.dotdot_ino(self, node), 2)):
                if start_id < next_id and not pyfuse3.readdir_reply(token, name, _dot_attr(ino), next_id):
                    return  # the kernel takes no lookup for dots (fuse_direntplus_link skips them)
            self.listing_caller = self.dir_callers.get(fh, 0)
            node.ops.readdir(self, node, start_id, token, uid, gids)
        except pyfuse3.FUSEError as e:
            # a listing of an open task/ (or /<pid>) of a reaped process is empty on Linux
            # (kernel_facts.json: "listdir of an open /<pid>/task fd after the reap"), but
            # fd/ and net/ fail (reaped.py)
            if e.errno != errno.ESRCH or not reaped.is_reaped(node):
                raise
            err = reaped.listing_errno(node)
            if err:
                raise pyfuse3.FUSEError(err) from None
        finally:
            self.listing_caller = 0

    async def open(self, inode, flags, ctx):
        node = self._node(inode)
        if not self.kernel.triggers:
            return node.ops.open(self, node, flags, ctx)
        path = self.path_of(node)
        if timed.fire(self.control, "open", path):
            await self.settle()
            try:
                fi = node.ops.open(self, node, flags, ctx)
            except pyfuse3.FUSEError as e:
                # the pid was reaped inside this open: Linux's path walk no longer resolves
                # its name (kernel_facts.json: "open /<pid>/status after the reap": ENOENT)
                if e.errno == errno.ESRCH:
                    raise pyfuse3.FUSEError(errno.ENOENT) from None
                raise
        else:
            fi = node.ops.open(self, node, flags, ctx)
        f = self.files.get(fi.fh)
        if isinstance(f, OpenFile) and f.data is not None:  # reads must reach a read trigger
            fi.direct_io, fi.keep_cache = True, False  # (and with their offsets: see OpenFile)
            f.seq = True
        return fi

    # -- requests about open files ------------------------------------------------------------

    async def read(self, fh, off, size):
        f = self._file(fh)
        if self.kernel.triggers and isinstance(f, OpenFile) and \
                timed.fire(self.control, "read", self.path_of(f.node)):
            # answered from the new state; the invalidations wait until this read is answered
            # (the kernel holds the page this read fills: invalidating it now would deadlock)
            if self.nursery is not None:
                self.nursery.start_soon(self.settle)
            # this read renders the new state (a descriptor opened before the trigger was armed
            # reads through the page cache: a longer new text is cut at the size the kernel
            # still holds; a shorter one shrinks it)
            f.node.content = None
            if not f.seq:
                f.data = None
        return await f.read(self, off, size)

    async def write(self, fh, off, buf):
        return await self._file(fh).write(self, buf)

    # No flush: pyfuse3's default answers ENOSYS, after which the kernel sends no FLUSH on this
    # connection again (fuse_flush: fc->no_flush). A FLUSH is a round trip inside every close(),
    # of every file: with it, open+read+close cost three requests where a server without one
    # pays two (1.5x; issue 13). Only ``.control`` had a use for it (a last line without its
    # newline ran in close()); it runs at release now (``control_file.py``).

    async def release(self, fh):
        f = self.files.pop(fh, None)
        if f is not None:
            await f.release(self)

    async def poll(self, inode, fh, poll_handle, ctx):
        f = self.files.get(fh)
        return DEFAULT_POLLMASK if f is None else f.poll(self, poll_handle)

    # -- changes to the tree: refused with the errnos the real /proc gives ---------------------
    # Measured on this machine (Linux 6.18, root) at /proc, /proc/<pid>, task/, fd/, fdinfo/ and
    # sys/: procfs has no create/mkdir/unlink/rename operations, and its lookup of a missing
    # name fails (no negative dentry), so creating anything (open O_CREAT, mknod, mkdir,
    # symlink, link) and renaming to a new name give ENOENT, while unlinking or rmdir-ing an
    # entry, or renaming onto an existing one, give EPERM. The kernel answers some cases before
    # asking the server (EEXIST for an existing name, ENOTDIR/EISDIR for the wrong kind, EXDEV
    # across file systems), as for any FUSE mount.

    async def create(self, parent_inode, name, mode, flags, ctx):
        raise pyfuse3.FUSEError(errno.ENOENT)

    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        raise pyfuse3.FUSEError(errno.ENOENT)

    async def mkdir(self, parent_inode, name, mode, ctx):
        raise pyfuse3.FUSEError(errno.ENOENT)

    async def symlink(self, parent_inode, name, target, ctx):
        raise pyfuse3.FUSEError(errno.ENOENT)

    async def link(self, inode, new_parent_inode, new_name, ctx):
        raise pyfuse3.FUSEError(errno.ENOENT)

    async def unlink(self, parent_inode, name, ctx):
        raise pyfuse3.FUSEError(errno.EPERM)

    async def rmdir(self, parent_inode, name, ctx):
        raise pyfuse3.FUSEError(errno.EPERM)

    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        target = self._lookup(self._node(parent_inode_new), name_new, ctx)
        raise pyfuse3.FUSEError(errno.ENOENT if target is None else errno.EPERM)

    # -- extended attributes (handle files only) ----------------------------------------------

    async def getxattr(self, inode, name, ctx):
        node = self._node(inode)
        return node.ops.getxattr(self, node, name.decode(errors="replace"), ctx)

    async def setxattr(self, inode, name, value, ctx):
        node = self._node(inode)
        node.ops.setxattr(self, node, name.decode(errors="replace"), bytes(value), ctx)

    async def listxattr(self, inode, ctx):
        node = self._node(inode)
        return node.ops.listxattr(self, node, ctx)

    async def removexattr(self, inode, name, ctx):
        node = self._node(inode)
        node.ops.removexattr(self, node, name.decode(errors="replace"), ctx)

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

    name = handler.__name__

    @functools.wraps(handler)
    async def guarded(self, *args):
        self.requests[name] += 1
        try:
            return await handler(self, *args)
        except pyfuse3.FUSEError:
            raise
        except KernelError as e:
            raise pyfuse3.FUSEError(e.errno) from None
        except Exception:
            log.exception("internal error in %s%r; answering EIO", handler.__name__, args[:2])
            raise pyfuse3.FUSEError(errno.EIO) from None

    return guarded


for _name in ("lookup", "getattr", "setattr", "readlink", "opendir", "releasedir", "readdir",
              "open", "read", "write", "release", "poll", "getxattr", "setxattr",
              "listxattr", "removexattr", "statfs", "create", "mknod", "mkdir", "symlink", "link",
              "unlink", "rmdir", "rename"):
    setattr(PidFs, _name, _guarded(getattr(PidFs, _name)))


def settle_heap() -> None:
    """Move every object alive now out of the cyclic garbage collector's sight (``gc.freeze``).

    A full collection walks every tracked object: with a million tasks (about ten million
    objects) one takes seconds, and Python starts one each time the heap grew by a quarter, so a
    growing table would stall every request for seconds at a time (measured: 1.2 s pauses at
    300,000 tasks, 4 s at 1,000,000). The server freezes the heap once the table is loaded
    (``server.run``) and after each slice of a bulk clone. The price: a frozen cycle that
    becomes garbage later (a task of the loaded table or of a bulk clone, reaped) is not
    collected; tasks created by ordinary commands and bulk clones under ``control.FREEZE_MIN``
    stay collectable. Garbage still pending is collected first, so it is never frozen; that
    walks only what is not frozen yet (what was made since the last freeze)."""
    gc.collect()
    gc.freeze()


def _dot_attr(ino: int) -> pyfuse3.EntryAttributes:
    """``.`` or ``..`` in a listing: only the inode number and the type reach the caller."""
    a = pyfuse3.EntryAttributes()
    a.st_ino = ino
    a.st_mode = stat.S_IFDIR | 0o555
    return a


def _caller_gids(ctx: Any) -> list[int]:
    try:
        return [ctx.gid, *pyfuse3.get_sup_groups(ctx.pid)]
    except Exception:
        return [ctx.gid]
