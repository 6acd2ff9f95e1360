"""What a node of a reaped pid answers through a descriptor opened before the reap.

Its name no longer resolves (lookups of it are ENOENT, ``events.py`` drops its dentry), but a
descriptor opened before still reaches the inode. Linux 6.18, measured on this machine with
real processes (``mountpoint_tests/test_time_races.py`` names each case):

- ``fstat`` of ``/<pid>/``, ``task/``, ``task/<tid>/``, ``fdinfo/``, ``ns/``, ``net/``,
  ``map_files/`` and of a file (``status``...) works: the same mode, root-owned; of ``fd/`` it
  is ENOENT;
- listing one of those directories gives nothing but the dots; ``fd/`` is ENOENT and ``net/``
  EINVAL;
- a read of a file at offset 0 is ESRCH (the node kinds render again, ``nodes/table.py``).

A file keeps the size the kernel was last given (``Node.given``): procfs says 0, but the kernel
serves reads of a FUSE file only up to its size, so 0 would turn the read's ESRCH into an end of
file. Handle files and links keep answering ESRCH.
"""

from __future__ import annotations

import errno
import stat as S
from typing import TYPE_CHECKING

import pyfuse3

from ..kernel import ExitState
from ..procfs import tables as T
from .nodes.base import OBSERVER, new_attr
from .nodes.piddir import FdDir, FdInfoDir, PidDir, PidTableDir
from .nodes.table import PidFile

if TYPE_CHECKING:
    from .fs import PidFs
    from .inodes import Node


def is_reaped(node: Node) -> bool:
    """A node about a pid whose task is gone (not a caller's stand-in)."""
    return (node.pid is not None and node.extra != OBSERVER
            and (node.pid.task is None or node.pid.task.exit_state is ExitState.DEAD))


def attr(fs: PidFs, node: Node) -> pyfuse3.EntryAttributes:
    """``fstat`` of a reaped pid's node, or the errno Linux answers (FUSEError)."""
    ops = node.ops
    if not is_reaped(node) or (isinstance(ops, FdDir) and not isinstance(ops, FdInfoDir)):
        raise pyfuse3.FUSEError(errno.ENOENT if isinstance(ops, FdDir) and is_reaped(node)
                                else errno.ESRCH)
    if isinstance(ops, PidDir):
        return new_attr(fs, node, S.S_IFDIR | 0o555, ops.nlink)
    if isinstance(ops, PidTableDir):
        return new_attr(fs, node, S.S_IFDIR | node.entry.mode, T.entry_nlink(node.entry))
    if isinstance(ops, PidFile):
        a = new_attr(fs, node, S.S_IFREG | ops.mode(node), 1)
        a.st_size = len(node.given or b"")
        return a
    raise pyfuse3.FUSEError(errno.ESRCH)


def listing_errno(node: Node) -> int:
    """What listing a reaped pid's directory answers: 0 (the dots alone) or an errno."""
    ops = node.ops
    if isinstance(ops, FdDir) and not isinstance(ops, FdInfoDir):
        return errno.ENOENT
    if isinstance(ops, PidTableDir) and node.entry is not None and node.entry.name == "net":
        return errno.EINVAL
    return 0
