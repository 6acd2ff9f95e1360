"""What every node kind answers, and the defaults of a kind that does not answer a request.

A node kind is one small class per thing the mount shows (root, pid directory, table file,
handle file, ...); each inode's ``Node.ops`` is an instance of one. ``PidFs`` only routes a
request to ``node.ops``; the kind holds the attributes, lookup, listing and open for its nodes
in one place, and asks ``procfs/access.py`` (through ``PidFs.ask``) whenever the caller matters.
Kinds keep no state of their own: everything lives in the nodes and in ``PidFs``.
"""

from __future__ import annotations

import errno
import stat as S
from typing import TYPE_CHECKING, Any

import pyfuse3

from ...kernel import ExitState, KernelError, Task
from ...procfs.access import pid_access, task_owner

if TYPE_CHECKING:
    from ..fs import PidFs
    from ..inodes import Node

#: ``Node.extra`` of an observer's directory and of every node below it
OBSERVER = ("observer",)
#: every listing starts with ``.`` (offset 1) and ``..`` (offset 2), as dir_emit_dots(); the
#: first row of a table is then at offset 3
DOTS = 2


def fuse_error(e: KernelError) -> pyfuse3.FUSEError:
    return pyfuse3.FUSEError(e.errno)


def new_attr(fs: PidFs, node: Node, mode: int, nlink: int) -> pyfuse3.EntryAttributes:
    """Attributes of a root-owned node dated at the model's boot, cached as the mount allows."""
    a = pyfuse3.EntryAttributes()
    a.st_ino = node.ino
    a.generation = 0
    a.entry_timeout = fs.timeout
    a.attr_timeout = fs.timeout
    a.st_blksize = 1024
    a.st_blocks = 0
    a.st_uid = 0
    a.st_gid = 0
    a.st_mode = mode
    a.st_nlink = nlink
    a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = fs.boot_ns
    return a


def owned_by(fs: PidFs, a: pyfuse3.EntryAttributes, task: Task, *, dated: bool = True) -> None:
    """task_dump_owner(): the task's uid and gid own the node (root, once the mm is gone, owns
    all but the 0555 directories); ``dated``: its times are the task's start."""
    a.st_uid, a.st_gid = task_owner(task, a.st_mode & 0o7777, S.S_ISDIR(a.st_mode))
    if dated:
        a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = fs.boot_ns + task.start_time


def task_of(fs: PidFs, node: Node) -> Task:
    """The live (or zombie) task a pid node shows; ESRCH once reaped (as procfs)."""
    if node.key[0] == "obs":  # a stand-in's node: ("obs", inum, nr, host tgid, ...)
        t = fs.observers.get(node.key[1:4])
        if t is None:
            raise pyfuse3.FUSEError(errno.ESRCH)
        return t
    t = node.pid.task if node.pid is not None else None
    if t is None or t.exit_state is ExitState.DEAD:
        raise pyfuse3.FUSEError(errno.ESRCH)
    return t


class NodeKind:
    """Defaults: a node that is neither listed into nor opened, with no extended attributes."""

    kind = "file"  # "dir" | "file" | "link"
    #: the dentry naming a node of this kind goes stale when its pid is reaped
    dies_with_pid = False
    #: children's dentries are never cached (they may stop resolving at any moment)
    volatile_children = False
    #: a directory whose set of names never changes: a lookup of a name it lacks is answered
    #: with a negative entry the kernel keeps (instead of asking again on every path walk)
    fixed_names = False
    #: open(O_TRUNC) is accepted (nothing to truncate) instead of EPERM
    truncatable = False
    #: a listing that can hold the caller's own entry (a root): ``PidFs.listing_caller``
    lists_caller = False

    def attr(self, fs: PidFs, node: Node, ctx: Any = None) -> pyfuse3.EntryAttributes:
        raise NotImplementedError

    def getattr(self, fs: PidFs, node: Node, ctx: Any) -> pyfuse3.EntryAttributes:
        return self.attr(fs, node, ctx)

    def lookup(self, fs: PidFs, node: Node, name: str, ctx: Any) -> Node | None:
        return None

    def opendir(self, fs: PidFs, node: Node, ctx: Any) -> None:
        raise pyfuse3.FUSEError(errno.ENOTDIR)

    def readdir(self, fs: PidFs, node: Node, start_id: int, token: Any, uid: int,
                gids: list[int]) -> None:
        return None

    def dotdot_ino(self, fs: PidFs, node: Node) -> int:
        """The inode ``..`` lists: the parent directory's (dir_emit_dots: parent_ino())."""
        return node.parent or node.ino

    def open(self, fs: PidFs, node: Node, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        raise pyfuse3.FUSEError(errno.EISDIR)

    def readlink(self, fs: PidFs, node: Node, ctx: Any) -> bytes:
        raise pyfuse3.FUSEError(errno.EINVAL)

    def getxattr(self, fs: PidFs, node: Node, name: str, ctx: Any) -> bytes:
        raise pyfuse3.FUSEError(errno.EOPNOTSUPP)

    def setxattr(self, fs: PidFs, node: Node, name: str, value: bytes, ctx: Any) -> None:
        raise pyfuse3.FUSEError(errno.EOPNOTSUPP)

    def removexattr(self, fs: PidFs, node: Node, name: str, ctx: Any) -> None:
        raise pyfuse3.FUSEError(errno.EOPNOTSUPP)

    def listxattr(self, fs: PidFs, node: Node, ctx: Any) -> list[bytes]:
        return []


class Dir(NodeKind):
    """A directory: opening it asks, for a pid's directories, whether the caller may enter."""

    kind = "dir"

    def opendir(self, fs: PidFs, node: Node, ctx: Any) -> None:
        if node.pid is not None:
            fs.ask(pid_access, node.view, task_of(fs, node), ctx)


class PidLink(NodeKind):
    """A link in a pid's directory (a table row, ``fd/<n>``, ``map_files/<range>``): owned by
    the task, not dated; its readlink starts with ``entered_task`` (the policy's pid_access)."""

    kind = "link"
    link_mode = 0o777

    def attr(self, fs: PidFs, node: Node, ctx: Any = None) -> pyfuse3.EntryAttributes:
        a = new_attr(fs, node, S.S_IFLNK | self.link_mode, 1)
        owned_by(fs, a, task_of(fs, node), dated=False)
        return a

    def entered_task(self, fs: PidFs, node: Node, ctx: Any) -> Task:
        """The task, once the caller may look into its directory."""
        task = task_of(fs, node)
        fs.ask(pid_access, node.view, task, ctx)
        return task


def readdir_rows(fs: PidFs, node: Node, rows: Any, start_id: int, token: Any, make: Any) -> None:
    """List table rows at offsets ``DOTS + index + 1`` (stable: a table does not change)."""
    for i, e in enumerate(rows):
        if DOTS + i < start_id:
            continue
        if not fs.reply(token, make(fs, node, e), DOTS + i + 1):
            return
