"""A root: ``/`` and ``/.pidns/<inum>/``.

Lookup and listing read one list of rows (``procfs.tables.root_rows``: the global files, the
mount's own entries on the top root, ``self`` and ``thread-self``), then the pid directories.
Listing keeps the kernel's stable offsets (fs/proc/base.c ``proc_pid_readdir``): ``.`` and ``..``
at 1 and 2, row ``i`` at ``i + 3``, ``self``/``thread-self`` at ``FIRST_PROCESS_ENTRY`` and the
one after, each thread-group leader at ``TGID_OFFSET + tgid`` from the tagged scan, so a listing
resumed after exits neither skips nor repeats.
"""

from __future__ import annotations

import stat as S
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyfuse3

from ...procfs import tables as T
from ...procfs.access import pid_visible_in_listing
from ...procfs.view import HIDEPID_INVISIBLE, HIDEPID_NOT_PTRACEABLE
from ..inodes import derived_ino
from .base import DOTS, Dir, new_attr
from .piddir import PID_DIR, listing_attr, pid_dir
from .standin import own_entry
from .table import global_child

if TYPE_CHECKING:
    from ...kernel import Task
    from ..fs import PidFs
    from ..inodes import Node

#: the extended attribute of the top root that holds the request counts ("TYPE N" lines);
#: reading it is not counted (``client.request_counts``)
REQUESTS_XATTR = "user.pidfs.requests"
#: what the server holds, "KEY N" lines: the soak prints it before and after (memory that
#: grows under churn shows here first)
MEMORY_XATTR = "user.pidfs.memory"
FIRST_PROCESS_ENTRY = 256
TGID_OFFSET = FIRST_PROCESS_ENTRY + 2  # fs/proc/base.c


class Root(Dir):
    lists_caller = True

    def __init__(self, *, top: bool) -> None:
        self.top = top  # the mount's own root (it alone has .control, .pidfs, .pidns)

    def rows(self, node: Node) -> tuple[T.Entry, ...]:
        return T.root_rows(node.view, top=self.top)

    def attr(self, fs: PidFs, node: Node, ctx: Any = None) -> pyfuse3.EntryAttributes:
        return new_attr(fs, node, S.S_IFDIR | 0o555, 3)

    def dotdot_ino(self, fs: PidFs, node: Node) -> int:
        """A procfs root lists itself as ``..`` (its dentry is its own parent)."""
        return node.ino

    def lookup(self, fs: PidFs, node: Node, name: str, ctx: Any) -> Node | None:
        if name == "..":
            return node
        if name.isdigit() and name[0] != "0":
            return pid_dir(fs, node, int(name), ctx)
        e = T.lookup(self.rows(node), name)
        return global_child(fs, node, e) if e is not None else None

    def getxattr(self, fs: PidFs, node: Node, name: str, ctx: Any) -> bytes:
        if not self.top or name not in (REQUESTS_XATTR, MEMORY_XATTR):
            return super().getxattr(fs, node, name, ctx)
        fs.requests["getxattr"] -= 1  # the reading is not counted
        if name == MEMORY_XATTR:
            held = {"tasks": fs.kernel.nr_threads, "nodes": len(fs.table.nodes),
                    "nodes_of_freed_pids": sum(1 for n in fs.table.nodes.values()
                                               if n.pid is not None and not n.pid.allocated),
                    "node_groups": len(fs.table.by_group), "open_files": len(fs.files),
                    "open_dirs": len(fs.dir_uids), "stand_ins": len(fs.observers)}
            return "".join(f"{k} {v}\n" for k, v in held.items()).encode()
        return "".join(f"{k} {v}\n" for k, v in sorted(fs.requests.items()) if v).encode()

    def readdir(self, fs: PidFs, node: Node, start_id: int, token: Any, uid: int,
                gids: list[int]) -> None:
        rows = self.rows(node)
        first_self = len(rows) - len(T.SELF_ROWS)
        for i, e in enumerate(rows):
            offset = (DOTS + i + 1 if i < first_self
                      else FIRST_PROCESS_ENTRY + (i - first_self) + 1)
            if offset <= start_id:
                continue
            if not fs.reply(token, global_child(fs, node, e), offset):
                return
        # the pid directories: derived inode numbers, no node per entry (mount/inodes.py)
        view = node.view
        ns = view.ns
        check = fs.depends_on_caller
        a = listing_attr(fs, PID_DIR.nlink)
        base = derived_ino(fs.slot_of[ns.inum], False, 0)
        boot = fs.boot_ns
        reply = pyfuse3.readdir_reply
        nr = max(start_id - TGID_OFFSET, 0)
        if fs.kernel.triggers and self.top:  # commands may run inside: step by step
            hits = self._stepwise(fs, view, nr, uid, gids)
        else:  # nothing changes until the reply is built: a word of the id map at a time
            hits = fs.kernel.scan_tgids(ns, nr, linear=fs.linear)
        owner = start = None  # what ``a`` holds: set again only when it differs (most do not)
        own = own_listed(fs, node, nr, uid, gids)
        for tgid, task in hits:
            if own is not None and tgid > own[0]:
                if not fs.reply(token, own[1], TGID_OFFSET + own[0] + 1):
                    return
                own = None
            if check and not pid_visible_in_listing(view, uid, gids, task):
                continue
            g = task.group
            a.st_ino = base + task.pid.ino
            if (g.uid, g.gid) != owner:  # a 0555 pid directory is its group's owner's
                a.st_uid, a.st_gid = owner = (g.uid, g.gid)
            if task.start_time != start:
                start = task.start_time
                a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = boot + start
            if not reply(token, str(tgid).encode(), a, TGID_OFFSET + tgid + 1):
                return
        if own is not None:
            fs.reply(token, own[1], TGID_OFFSET + own[0] + 1)

    @staticmethod
    def _stepwise(fs: PidFs, view: Any, nr: int, uid: int,
                  gids: list[int]) -> Iterator[tuple[int, Task]]:
        """The leaders from ``nr`` on while triggers are armed: ``on list TGID`` runs before
        the listing returns that pid, and the scan then looks at that number again."""
        fired = 0
        check = fs.depends_on_caller
        while True:
            hit = fs.kernel.next_tgid(view.ns, nr, linear=fs.linear)
            if hit is None:
                return
            tgid, task = hit
            nr = tgid + 1
            if check and not pid_visible_in_listing(view, uid, gids, task):
                continue
            if tgid != fired and fs.listing(tgid):
                nr = fired = tgid  # look again: a pid reaped right here is not listed
                continue
            yield tgid, task


def own_listed(fs: PidFs, node: Node, start: int, uid: int,
               gids: list[int]) -> tuple[int, Node] | None:
    """The caller's own stand-in, listed at its number (from ``start`` on) where Linux's
    listing would otherwise leave the caller out: under hidepid=invisible or ptraceable, for a
    caller the table has no process for (ptrace_may_access() lets a task at itself). Without
    those options the listing is the table's alone (``ps -e`` shows exactly its processes)."""
    pid = fs.listing_caller
    if not pid or node.view.options.hidepid not in (HIDEPID_INVISIBLE, HIDEPID_NOT_PTRACEABLE):
        return None
    c = fs.callers.who(pid)
    if c.tgid < start or fs.kernel.find_task(node.view.ns, c.tgid) is not None:
        return None
    if not c.real:
        return None
    return c.tgid, own_entry(fs, node, c.tgid, c, uid, gids[0] if gids else uid)


ROOT = Root(top=True)
NS_ROOT = Root(top=False)
