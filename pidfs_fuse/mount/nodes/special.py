"""The mount's own nodes, which have no procfs counterpart: ``/.control``, ``/.pidfs/``,
``/.pidns/`` and the handle files (``/<pid>/pidfd``, ``/.pidfs/<ino>``).

What an open control file or handle does lives in ``mount/control_file.py`` and
``mount/handles.py``; the kinds here only answer attributes, lookup, listing and open.
"""

from __future__ import annotations

import errno
import os
import stat as S
from typing import TYPE_CHECKING, Any

import pyfuse3

from ...kernel import KernelError, Pid
from ...procfs.access import pid_access
from .. import control_file, handles
from .base import Dir, NodeKind, fuse_error, new_attr, owned_by

if TYPE_CHECKING:
    from ..fs import PidFs
    from ..inodes import Node


class ControlFile(NodeKind):
    """``/.control`` (0600): its owner (the user the server runs as: root, or the normal user
    who mounted it) writes a command line and reads the reply."""

    truncatable = True

    def attr(self, fs: PidFs, node: Node, ctx: Any = None) -> pyfuse3.EntryAttributes:
        a = new_attr(fs, node, S.S_IFREG | node.entry.mode, 1)
        a.st_uid, a.st_gid = os.geteuid(), os.getegid()
        return a

    def open(self, fs: PidFs, node: Node, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        return control_file.open_control(fs, ctx)


class MountDir(Dir):
    """A directory of the mount's own (``.pidfs``, ``.pidns``), root-owned."""

    def attr(self, fs: PidFs, node: Node, ctx: Any = None) -> pyfuse3.EntryAttributes:
        return new_attr(fs, node, S.S_IFDIR | node.entry.mode, 2)


class HostProcDir(MountDir):
    """``/.host-proc``: empty; where ``pidfs-fuse exec`` mounts the real /proc in its own mount
    namespace, so the links of a stand-in's ``fd/`` open there (``callers.py``)."""


class PidfsDir(MountDir):
    """``/.pidfs/<ino>``: a handle file reopened by pidfs inode number while the pid lives
    (the file-handle analogue). Looked up, never listed; a name stops resolving the moment the
    pid is reaped, so no dentry below is cached."""

    volatile_children = True

    def lookup(self, fs: PidFs, node: Node, name: str, ctx: Any) -> Node | None:
        if not name.isdigit():
            return None
        pid = fs.kernel.find_pidfs(int(name))
        if pid is None or pid.task is None:
            return None
        fs.ask(pid_access, node.view, pid.task, ctx)  # hidepid= holds here as on /<pid>/
        return handle_node(fs, pid, node, name.encode())


class PidnsDir(MountDir):
    """``/.pidns/<inum>/``: the whole tree as seen from another pid namespace."""

    def child(self, fs: PidFs, node: Node, name: str) -> Node | None:
        if not name.isdigit():
            return None
        ns = next((n for n in fs.kernel.namespaces() if n.inum == int(name)), None)
        if ns is None:
            return None
        from .root import NS_ROOT

        return fs.table.make(("pidnsroot", ns.inum), NS_ROOT, view=fs.view(ns), parent=node.ino,
                             name=name.encode())

    def lookup(self, fs: PidFs, node: Node, name: str, ctx: Any) -> Node | None:
        return self.child(fs, node, name)

    def readdir(self, fs: PidFs, node: Node, start_id: int, token: Any, uid: int,
                gids: list[int]) -> None:
        # ordered by inode number, each at offset 2 + inum (after the dots), so a listing
        # resumed after a namespace died neither skips nor repeats one that lives
        for inum in sorted(ns.inum for ns in fs.kernel.namespaces()):
            if 2 + inum < start_id:
                continue
            child = self.child(fs, node, str(inum))
            if child is None or not fs.reply(token, child, 2 + inum + 1):
                return


class HandleFile(NodeKind):
    """A handle file: opening binds a pidfd (``mount/handles.py``); its inode number is the
    pidfs inode number; ``trusted.*`` extended attributes live on the struct pid."""

    truncatable = True

    def attr(self, fs: PidFs, node: Node, ctx: Any = None) -> pyfuse3.EntryAttributes:
        # 0666, unlike pidfs's 0700: other users may open a handle and poll it; signalling
        # through it is checked against their uid at write (EPERM), as pidfd_send_signal does
        a = new_attr(fs, node, S.S_IFREG | 0o666, 1)
        t = node.pid.task
        if t is not None:
            owned_by(fs, a, t)
        a.st_size = 0
        a.attr_timeout = 0
        return a

    def open(self, fs: PidFs, node: Node, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        return handles.open_handle(fs, node.pid, flags, ctx)

    def getxattr(self, fs: PidFs, node: Node, name: str, ctx: Any) -> bytes:
        try:
            return fs.kernel.getxattr(node.pid, name, uid=ctx.uid)
        except KernelError as e:
            raise fuse_error(e) from None

    def setxattr(self, fs: PidFs, node: Node, name: str, value: bytes, ctx: Any) -> None:
        if node.pid.task is None:
            raise pyfuse3.FUSEError(errno.ESRCH)
        try:
            fs.kernel.setxattr(node.pid, name, value, uid=ctx.uid)
        except KernelError as e:
            raise fuse_error(e) from None

    def removexattr(self, fs: PidFs, node: Node, name: str, ctx: Any) -> None:
        try:
            fs.kernel.removexattr(node.pid, name, uid=ctx.uid)
        except KernelError as e:
            raise fuse_error(e) from None

    def listxattr(self, fs: PidFs, node: Node, ctx: Any) -> list[bytes]:
        return [n.encode() for n in fs.kernel.listxattr(node.pid, uid=ctx.uid)]


CONTROL_FILE = ControlFile()
PIDFS_DIR = PidfsDir()
PIDNS_DIR = PidnsDir()
HOST_PROC = HostProcDir()
HANDLE_FILE = HandleFile()


def handle_node(fs: PidFs, pid: Pid, parent: Node, name: bytes) -> Node:
    """The one node of a struct pid's handle file; its inode number is the pidfs inode number."""
    return fs.table.make(("pidfd", pid.ino), HANDLE_FILE, ino=pid.ino, pid=pid,
                         view=fs.root_view, parent=parent.ino, name=name)
