"""What following a ``/<pid>/ns/<type>`` link reaches: the namespace itself (nsfs).

Linux's ns links are magic: ``readlink`` shows ``TYPE:[INUM]`` and following one lands on an
nsfs inode whose ``st_ino`` is INUM, the same for every process in that namespace (``ps -o
netns``, ``lsns``, ``pstree -N`` and ``pgrep --ns`` compare exactly that). A FUSE link is
followed as a relative path, so the ``ns/`` directory answers a lookup of the name
``TYPE:[INUM]`` (never listed) when it is one of that task's namespaces, after the same ptrace
check as the link (proc_ns_get_link()), with a node numbered INUM: ``stat -L`` gives
``st_ino`` = INUM. As on this machine's kernel the file is ``S_IFREG | 0444``, one link, size 0,
root-owned; opening it is EACCES (see ``NsFile.open``). Its ``st_dev`` is the mount's, not
nsfs's (a FUSE mount has one device); namespace ioctls (NS_GET_PARENT, ...) are not served.
"""

from __future__ import annotations

import errno
import logging
import re
import stat as S
from typing import TYPE_CHECKING, Any

import pyfuse3

from ...procfs import files as F
from ...procfs.access import may_ptrace, pid_access
from .base import NodeKind, new_attr, task_of

if TYPE_CHECKING:
    from ..fs import PidFs
    from ..inodes import Node

log = logging.getLogger(__name__)

_TARGET = re.compile(r"(cgroup|ipc|mnt|net|pid|time|user|uts):\[([0-9]{1,10})\]")


def ns_target_node(fs: PidFs, ns_dir: Node, name: str, ctx: Any) -> Node | None:
    """The nsfs node for ``name`` looked up in the ``ns/`` directory ``ns_dir``, or None when
    ``name`` is no ``TYPE:[INUM]`` of that task's namespaces. EACCES when the caller may not
    ptrace the task."""
    m = _TARGET.fullmatch(name)
    if m is None:
        return None
    kind, inum = m.group(1), int(m.group(2))
    task = task_of(fs, ns_dir)
    held = F.ns_inums(task)
    if not any(v == inum and k.removesuffix("_for_children") == kind for k, v in held.items()):
        return None
    fs.ask(pid_access, ns_dir.view, task, ctx)
    if ctx is not None and not may_ptrace(ctx.uid, task):
        raise pyfuse3.FUSEError(errno.EACCES)
    key = ("nsfs", inum)
    taken = fs.table.get(inum)
    if taken is not None and taken.key != key:  # a pidfs inode number as large (restored)
        log.warning("ns inode %d is also handle inode %d: not served", inum, inum)
        return None
    return fs.table.make(key, NS_FILE, ino=inum, view=ns_dir.view, parent=ns_dir.ino,
                         name=name.encode(), extra=kind)


class NsFile(NodeKind):
    """The namespace a followed ns link reaches (see the module's docstring)."""

    def attr(self, fs: PidFs, node: Node, ctx: Any = None) -> pyfuse3.EntryAttributes:
        a = new_attr(fs, node, S.S_IFREG | 0o444, 1)
        a.st_size = 0
        return a

    def open(self, fs: PidFs, node: Node, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        """EACCES: an open namespace is only good for its ioctls (NS_GET_USERNS, NS_GET_PARENT)
        and setns(), which no FUSE file can serve; lsns reads EACCES as "no owner or parent to
        show" and lists the namespace, where ENOTTY from the ioctl would end it."""
        raise pyfuse3.FUSEError(errno.EACCES)


NS_FILE = NsFile()
