"""A process's directories: ``/<pid>/``, ``/<pid>/task/<tid>/``, the caller's own entry, and
the directories inside them (``task/``, ``fd/``, ``fdinfo/``, ``ns/``) with their dynamic rows.

Every decision about the caller is a question to ``procfs/access.py``: resolving and stat-ing a
pid directory (``pid_dir_lookup_errno``, ``pid_getattr_errno``), entering it (``pid_access``),
ptrace-guarded rows (``entry_access``) and ``fd/<n>`` links (``fd_link_access``).
"""

from __future__ import annotations

import bisect
import errno
import itertools
import stat as S
from typing import TYPE_CHECKING, Any

import pyfuse3

from ...kernel import EventKind, Kernel, Pid, PidNamespace, Task, ThreadGroup
from ...kernel.errors import KernelError
from ...procfs import files as F
from ...procfs import perpid as PP
from ...procfs import tables as T
from ...procfs.access import (
    entry_access,
    fd_link_access,
    map_file_access,
    pid_access,
    pid_dir_lookup_errno,
    pid_getattr_errno,
)
from ..inodes import derived_ino, split_derived
from .base import DOTS, Dir, NodeKind, PidLink, fuse_error, new_attr, owned_by, readdir_rows, task_of
from .table import PID_FILE, TABLE_LINK, PidFile, TableDir

if TYPE_CHECKING:
    from ..fs import PidFs
    from ..inodes import Node


class PidDir(Dir):
    """``/<pid>/``: the rows of ``TGID_BASE`` for the task the pid names."""

    table = T.TGID_BASE
    dies_with_pid = True
    #: the names are the table's, for the whole life of the directory: a name it lacks
    #: (procps asks every process for ``ctty``) is cached as absent
    fixed_names = True

    def __init__(self) -> None:
        self.nlink = T.dir_nlink(self.table)  # the table is static: counted once, not per entry

    def attr(self, fs: PidFs, node: Node, ctx: Any = None) -> pyfuse3.EntryAttributes:
        a = new_attr(fs, node, S.S_IFDIR | 0o555, self.nlink)
        owned_by(fs, a, task_of(fs, node))
        return a

    def getattr(self, fs: PidFs, node: Node, ctx: Any) -> pyfuse3.EntryAttributes:
        fs.ask(pid_getattr_errno, node.view, task_of(fs, node), ctx)
        return self.attr(fs, node, ctx)

    def has_handle(self, node: Node) -> bool:
        """Whether the directory has a ``pidfd`` row: not for a thread's pid reached through
        the process path (pidfd_open()'s ENOENT)."""
        return node.pid.tgid_task is not None

    def lookup(self, fs: PidFs, node: Node, name: str, ctx: Any) -> Node | None:
        task = task_of(fs, node)
        fs.ask(pid_access, node.view, task, ctx)
        if name == "..":
            return fs.table.get(node.parent)
        e = T.lookup(self.table, name)
        return pid_child(fs, node, e, task) if e is not None else None

    def readdir(self, fs: PidFs, node: Node, start_id: int, token: Any, uid: int,
                gids: list[int]) -> None:
        task = task_of(fs, node)
        handle = self.has_handle(node)
        rows = [e for e in self.table if handle or e.special != "pidfd"]
        readdir_rows(fs, node, rows, start_id, token, lambda f, p, e: pid_child(f, p, e, task))


class TidDir(PidDir):
    """``/<pid>/task/<tid>/``: the rows of ``TID_BASE``; its ``pidfd`` is a thread handle."""

    table = T.TID_BASE

    def has_handle(self, node: Node) -> bool:
        return True


class ObserverDir(PidDir):
    """``/<P>`` for a caller P the view has no process for (procps reads
    ``/proc/<getpid()>/stat``): a stand-in task that never enters the model, with no handle
    file, shown to its caller whatever ``hidepid`` says (``standin.py``)."""

    dies_with_pid = False

    def getattr(self, fs: PidFs, node: Node, ctx: Any) -> pyfuse3.EntryAttributes:
        return self.attr(fs, node, ctx)

    def has_handle(self, node: Node) -> bool:
        return False


class PidTableDir(TableDir):
    """A static directory inside a pid's directory (``ns/``, ``net/``); rows marked ``ptrace``
    (``fdinfo/``, whose 0555 lets anyone in) refuse other users' listings with EACCES."""

    def opendir(self, fs: PidFs, node: Node, ctx: Any) -> None:
        super().opendir(fs, node, ctx)
        if ctx is not None and node.entry is not None and node.entry.ptrace:
            err = entry_access(ctx.uid, node.entry, task_of(fs, node))
            if err:
                raise pyfuse3.FUSEError(err)

    def attr(self, fs: PidFs, node: Node, ctx: Any = None) -> pyfuse3.EntryAttributes:
        t = task_of(fs, node)
        a = new_attr(fs, node, S.S_IFDIR | node.entry.mode, T.entry_nlink(node.entry, t))
        owned_by(fs, a, t)
        return a

    def lookup(self, fs: PidFs, node: Node, name: str, ctx: Any) -> Node | None:
        e = T.lookup(node.entry.children, name)
        if e is None and node.entry.name == "ns":  # following a link: ``net:[INUM]``
            from .nsfs import ns_target_node

            return ns_target_node(fs, node, name, ctx)
        return pid_child(fs, node, e, task_of(fs, node)) if e is not None else None

    def readdir(self, fs: PidFs, node: Node, start_id: int, token: Any, uid: int,
                gids: list[int]) -> None:
        task = task_of(fs, node)
        readdir_rows(fs, node, node.entry.children, start_id, token,
                     lambda f, p, e: pid_child(f, p, e, task))


class TaskDir(PidTableDir):
    """``/<pid>/task/``: the thread group's tasks, the leader first, then in creation order."""

    def lookup(self, fs: PidFs, node: Node, name: str, ctx: Any) -> Node | None:
        task = task_of(fs, node)
        if not name.isdigit():
            return None
        view = node.view
        t = fs.kernel.find_task(view.ns, int(name))
        if t is None or t.group is not task.group:
            return None
        fs.ask(pid_dir_lookup_errno, view, t, ctx)
        return tid_dir(fs, node, t, name.encode())

    def readdir(self, fs: PidFs, node: Node, start_id: int, token: Any, uid: int,
                gids: list[int]) -> None:
        """Threads in creation order at offsets from their pidfs inode numbers (``DOT_ENTRIES`` +
        ino; the numbers grow with creation, and exec's leader keeps the lowest), so a resumed
        listing neither skips nor repeats a surviving thread, and finding where to resume is a
        bisection of the group's ordered pids (``thread_pids``), not a walk. Entries carry
        derived inode numbers and make no node (``mount/inodes.py``)."""
        group = task_of(fs, node).group
        inos, pids = thread_pids(fs, node.ino, group)
        view = node.view
        ns = view.ns
        a = listing_attr(fs, TID_DIR.nlink)
        # a thread directory (0555) belongs to its group's owner (task_owner), like its pid's
        a.st_uid, a.st_gid = owner = (group.uid, group.gid)
        fs.listed_owner[group] = owner
        base = derived_ino(fs.slot_of[ns.inum], True, 0)
        boot = fs.boot_ns
        level = ns.level
        reply = pyfuse3.readdir_reply
        start = None  # the start time ``a`` holds: set again only when it differs
        for j in range(bisect.bisect_left(inos, start_id - DOT_ENTRIES), len(pids)):
            pid = pids[j]
            t = pid.task
            if t is None or t.group is not group:  # gone since the pids were ordered
                continue
            # pid.nr_in(ns), inlined: a thread's pid lives in its group's namespaces
            if not pid.allocated or pid.ns.level < level or pid.ns.ancestors[level] is not ns:
                continue
            ino = inos[j]
            a.st_ino = base + ino
            if t.start_time != start:
                start = t.start_time
                a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = boot + start
            if not reply(token, str(pid.numbers[level]).encode(), a, DOT_ENTRIES + ino + 1):
                return


#: offsets 0 and 1 are ``.`` and ``..`` in every directory (fs/proc: dir_emit_dots)
DOT_ENTRIES = 2
#: thread groups at least this big keep their ordered pids between readdir calls
CACHED_GROUP = 64
_CACHE_SLOTS = 16


def thread_pids(fs: PidFs, key: int, group: ThreadGroup) -> tuple[list[int], list[Pid]]:
    """The pids of ``group``'s threads ordered by pidfs inode number, and those numbers.

    Built in one pass over the group and kept for big groups (per listing node, a few slots)
    while the group has the same size and the same newest thread: threads are only ever added
    with a higher inode number than every other, so an unchanged (size, newest) means nothing
    was added since, and threads removed since are skipped by the caller."""
    threads = group.threads
    newest = next(reversed(threads)).pid if threads else None
    cache: dict[int, Any] = fs.listing_cache
    hit = cache.get(key)
    if hit is not None and hit[0] is group and hit[1] == len(threads) and hit[2] is newest:
        return hit[3], hit[4]
    pids = [t.pid for t in threads]
    inos = [p.ino for p in pids]
    if any(a > b for a, b in itertools.pairwise(inos)):  # not creation-ordered (a restored table)
        pids.sort(key=lambda p: p.ino)
        inos = [p.ino for p in pids]
    if len(pids) >= CACHED_GROUP:
        if len(cache) >= _CACHE_SLOTS:
            del cache[next(iter(cache))]
        cache[key] = (group, len(threads), newest, inos, pids)
    return inos, pids


class FdDir(PidTableDir):
    """``/<pid>/fd/``: one link per descriptor of the emulated process, at offset fd + 2."""

    def child(self, fs: PidFs, node: Node, fd: int, name: bytes, task: Task) -> Node:
        return fs.table.make(node.key + (fd,), FD_LINK, view=node.view, pid=node.pid, extra=fd,
                             parent=node.ino, name=name, group_key=task.group)

    def lookup(self, fs: PidFs, node: Node, name: str, ctx: Any) -> Node | None:
        task = task_of(fs, node)
        if not name.isdigit():
            return None
        fd = int(name)
        if not task.group.files or fd not in task.group.files:
            return None
        return self.child(fs, node, fd, name.encode(), task)

    def readdir(self, fs: PidFs, node: Node, start_id: int, token: Any, uid: int,
                gids: list[int]) -> None:
        task = task_of(fs, node)
        # fs/proc/fd.c proc_readfd_common: descriptor fd at offset fd + 2, after the dots
        for fd in sorted(task.group.files or ()):
            if DOT_ENTRIES + fd < start_id:
                continue
            if not fs.reply(token, self.child(fs, node, fd, str(fd).encode(), task),
                            DOT_ENTRIES + fd + 1):
                return


class FdInfoDir(FdDir):
    """``/<pid>/fdinfo/``: one file per descriptor. Its 0555 lets anyone in as far as modes go,
    but Linux's proc_fdinfo_permission asks for ptrace access on every walk through it: a
    caller who may not ptrace the task gets EACCES for any name in it, existing or not."""

    def lookup(self, fs: PidFs, node: Node, name: str, ctx: Any) -> Node | None:
        if ctx is not None:
            err = fd_link_access(ctx.uid, task_of(fs, node))
            if err:
                raise pyfuse3.FUSEError(err)
        return super().lookup(fs, node, name, ctx)

    def child(self, fs: PidFs, node: Node, fd: int, name: bytes, task: Task) -> Node:
        return fs.table.make(node.key + (fd,), FD_INFO_FILE, view=node.view, pid=node.pid,
                             extra=fd, entry=None, parent=node.ino, name=name,
                             group_key=task.group)


class MapFilesDir(PidTableDir):
    """``/<pid>/map_files/`` (0500, ptrace-guarded like ``fd/``): one link per file mapping,
    named ``start-end``, in address order (perpid.list_map_files)."""

    def child(self, fs: PidFs, node: Node, name: str, task: Task) -> Node:
        return fs.table.make(node.key + (name,), MAP_FILE_LINK, view=node.view, pid=node.pid,
                             extra=name, parent=node.ino, name=name.encode(),
                             group_key=task.group)

    def lookup(self, fs: PidFs, node: Node, name: str, ctx: Any) -> Node | None:
        task = task_of(fs, node)
        if name not in PP.list_map_files(node.view, task):
            return None
        return self.child(fs, node, name, task)

    def readdir(self, fs: PidFs, node: Node, start_id: int, token: Any, uid: int,
                gids: list[int]) -> None:
        task = task_of(fs, node)
        for i, name in enumerate(PP.list_map_files(node.view, task)):
            if DOTS + i < start_id:
                continue
            if not fs.reply(token, self.child(fs, node, name, task), DOTS + i + 1):
                return


class MapFileLink(PidLink):
    """``/<pid>/map_files/<start-end>``: the mapped file (readlink needs uid 0: EPERM)."""

    link_mode = 0o400

    def readlink(self, fs: PidFs, node: Node, ctx: Any) -> bytes:
        task = self.entered_task(fs, node, ctx)
        err = map_file_access(ctx.uid, task)
        if err:
            raise pyfuse3.FUSEError(err)
        try:
            return PP.readlink_map_file(node.view, task, node.extra).encode()
        except KernelError as e:
            raise fuse_error(e) from None


class FdLink(PidLink):
    """``/<pid>/fd/<n>``: every descriptor is a pidfd here."""

    def readlink(self, fs: PidFs, node: Node, ctx: Any) -> bytes:
        task = self.entered_task(fs, node, ctx)
        fd = node.extra
        if not task.group.files or fd not in task.group.files:
            raise pyfuse3.FUSEError(errno.ENOENT)
        err = fd_link_access(ctx.uid, task)
        if err:
            raise pyfuse3.FUSEError(err)
        return b"anon_inode:[pidfd]"


class FdInfoFile(PidFile):
    """``/<pid>/fdinfo/<n>``: 0444 like Linux's, guarded by ptrace access instead of its mode
    (``FdInfoDir.lookup``, and again at open as seq_fdinfo_open does). Its entry is never
    cached: a walk by one caller must not leave a name another caller's walk would reuse
    without asking."""

    def mode(self, node: Node) -> int:
        return 0o444

    def attr(self, fs: PidFs, node: Node, ctx: Any = None) -> pyfuse3.EntryAttributes:
        a = super().attr(fs, node, ctx)
        a.entry_timeout = 0
        return a

    def check_open(self, fs: PidFs, node: Node, ctx: Any) -> None:
        super().check_open(fs, node, ctx)
        err = fd_link_access(ctx.uid, task_of(fs, node))
        if err:
            raise pyfuse3.FUSEError(err)

    def render(self, fs: PidFs, node: Node) -> bytes:
        return F.show_fdinfo(node.view, task_of(fs, node), node.extra)


PID_DIR = PidDir()
TID_DIR = TidDir()
PID_TABLE_DIR = PidTableDir()
TASK_DIR = TaskDir()
FD_DIR = FdDir()
FD_INFO_DIR = FdInfoDir()
FD_LINK = FdLink()
FD_INFO_FILE = FdInfoFile()
MAP_FILES_DIR = MapFilesDir()
MAP_FILE_LINK = MapFileLink()
#: Entry.dynamic of a directory row -> the kind listing it from the model
DYNAMIC_DIRS = {"task": TASK_DIR, "fd": FD_DIR, "fdinfo": FD_INFO_DIR, "map_files": MAP_FILES_DIR}


def pid_dir(fs: PidFs, parent: Node, nr: int, ctx: Any) -> Node | None:
    """``/<nr>`` in a root: the task numbered ``nr`` in the root's namespace (any tid resolves,
    though only leaders are listed), else the caller's hidden entry, else nothing."""
    view = parent.view
    t = fs.kernel.find_task(view.ns, nr)
    if t is None:
        from .standin import standin_dir

        return standin_dir(fs, parent, nr, ctx)
    fs.ask(pid_dir_lookup_errno, view, t, ctx)
    return listed_pid_dir(fs, parent, t, str(nr).encode())


def listed_pid_dir(fs: PidFs, parent: Node, task: Task, name: bytes) -> Node:
    view = parent.view
    pid = task.pid
    return fs.table.make(("pid", view.ns.inum, pid.ino), PID_DIR,
                         ino=derived_ino(fs.slot_of[view.ns.inum], False, pid.ino), view=view,
                         pid=pid, parent=parent.ino, name=name, group_key=task.group)


def tid_dir(fs: PidFs, parent: Node, t: Task, name: bytes) -> Node:
    return _tid_node(fs, parent.view, parent.ino, t, name)


def _tid_node(fs: PidFs, view: Any, parent_ino: int, t: Task, name: bytes) -> Node:
    pid = t.pid
    return fs.table.make(("tid", view.ns.inum, pid.ino), TID_DIR,
                         ino=derived_ino(fs.slot_of[view.ns.inum], True, pid.ino), view=view,
                         pid=pid, parent=parent_ino, name=name, group_key=t.group)


def listing_attr(fs: PidFs, nlink: int) -> pyfuse3.EntryAttributes:
    """The attributes a listing of pid or thread directories fills in per entry (inode number,
    owner, times); ``readdir_reply`` copies them at once, so one serves the whole listing."""
    a = pyfuse3.EntryAttributes()
    a.generation = 0
    a.entry_timeout = fs.timeout
    a.attr_timeout = fs.timeout
    a.st_blksize = 1024
    a.st_blocks = 0
    a.st_mode = S.S_IFDIR | 0o555
    a.st_nlink = nlink
    return a


def derived_node(fs: PidFs, ino: int) -> Node | None:
    """The node of a derived inode number (``mount/inodes.py``), made again from the ids: None
    once its pid has no task, or when its view shows the pid no more."""
    slot, thread, pidfs_ino = split_derived(ino)
    if slot >= len(fs.view_slots):
        return None
    view = fs.view_slots[slot]
    pid = fs.kernel.find_pidfs(pidfs_ino)
    if pid is None or pid.task is None:
        return None
    t = pid.task
    nr = pid.nr_in(view.ns)
    if not nr:
        return None
    name = str(nr).encode()
    if not thread:
        key = ("pid", view.ns.inum, pidfs_ino)
        return fs.table.make(key, PID_DIR, ino=ino, view=view, pid=pid,
                             parent=fs.root_ino(view), name=name, group_key=t.group)
    parent = _task_dir_of(fs, view, t)
    return _tid_node(fs, view, parent.ino if parent is not None else 0, t, name)


def _task_dir_of(fs: PidFs, view: Any, t: Task) -> Node | None:
    """The ``task/`` node (if any) whose listing holds ``t``: its leader's, else its own pid's."""
    inum = view.ns.inum
    leader = t.group.leader
    for p in ((leader.pid,) if leader is not None else ()) + (t.pid,):
        node = fs.table.find(("pid", inum, p.ino, "task"))
        if node is not None:
            return node
    return None


def derived_changes(fs: PidFs, ev: Any) -> None:
    """The invalidations of a model event that nodes cannot name: pid and thread directories a
    listing gave the kernel without a node (``mount/inodes.py``). A reap drops the dentries
    naming the pid (``/<nr>`` in every view, ``<nr>`` in its group's ``task/`` listings); an
    owner change re-reads the attributes of the group's directories (a 0555 pid directory's
    attributes change with nothing else: its times and link count are fixed)."""
    task = ev.task
    if task is None or ev.kind is EventKind.CREATED or ev.kind is EventKind.CHILD:
        return
    changes = fs.changes
    group = task.group
    pid = ev.pid
    if ev.kind is EventKind.REAPED:
        for view in fs.view_slots:
            lvl = view.ns.level  # pid_nr_ns() without the allocated test: the pid may be freed
            if lvl > pid.ns.level or pid.ns.ancestors[lvl] is not view.ns:
                continue
            name = str(pid.numbers[lvl]).encode()
            root = fs.root_ino(view)
            if root:
                changes.stale_entries.add((root, name))
            for ino in fs.table.group_nodes(group):
                n = fs.table.nodes.get(ino)
                if n is not None and n.ops is TASK_DIR and n.view is view:
                    changes.stale_entries.add((n.ino, name))
        if task is group.leader:
            fs.listed_owner.pop(group, None)
        return
    owner = (group.uid, group.gid)
    for view in fs.view_slots:
        leader = group.leader
        if leader is not None and leader.pid.nr_in(view.ns):
            changes.stale_inodes.add(derived_ino(fs.slot_of[view.ns.inum], False, leader.pid.ino))
    listed = fs.listed_owner.get(group)
    if listed is not None and listed != owner:
        fs.listed_owner[group] = owner
        for view in fs.view_slots:
            slot = fs.slot_of[view.ns.inum]
            for th in group.threads:
                if th.pid.nr_in(view.ns):
                    changes.stale_inodes.add(derived_ino(slot, True, th.pid.ino))
                    changes.stale_inodes.add(derived_ino(slot, False, th.pid.ino))


def pid_child(fs: PidFs, parent: Node, e: T.Entry, task: Task) -> Node:
    """The node of row ``e`` in a pid's directory ``parent``."""
    if parent.key[0] == "obs":
        from .standin import child

        return child(fs, parent, e, task)
    if e.special == "pidfd":
        if not parent.ops.has_handle(parent):
            raise pyfuse3.FUSEError(errno.ENOENT)
        from .special import handle_node

        return handle_node(fs, parent.pid, parent, e.name.encode())
    ops: NodeKind
    if e.kind == T.DIR:
        ops = DYNAMIC_DIRS.get(e.dynamic or "", PID_TABLE_DIR)
    elif e.kind == T.LINK:
        ops = TABLE_LINK
    else:
        ops = PID_FILE
    return fs.table.make(parent.key + (e.name,), ops, view=parent.view, pid=parent.pid, entry=e,
                         parent=parent.ino, name=e.name.encode(), extra=parent.extra,
                         group_key=task.group)


def make_observer(kernel: Kernel, ns: PidNamespace, nr: int, template: int | None, *,
                  uid: int, gid: int) -> Task:
    """A stand-in task numbered ``nr`` in ``ns``, of ``uid``/``gid``, that never enters the
    model."""
    base = kernel.find_task(ns, template) if template else None
    reaper = ns.child_reaper or kernel.init
    src = base.group if base is not None else reaper.group
    numbers = (0,) * ns.level + (nr,)
    pid = Pid(numbers, ns, 0)
    g = ThreadGroup(leader=None, parent=base.group.parent if base is not None else reaper,  # type: ignore[arg-type]
                    pgrp=src.pgrp, session=src.session,
                    argv=src.argv if base is not None else ("observer",),
                    environ=src.environ, uid=uid, gid=gid, cwd=src.cwd, exe=src.exe,
                    root=src.root, vsize=src.vsize, rss=src.rss, live=1)
    t = Task(pid=pid, group=g, comm=base.comm if base is not None else "observer",
             start_time=max(kernel.clock(), reaper.start_time))
    g.leader = t
    g.threads[t] = None
    pid.task = t
    pid.tgid_task = t
    return t
