"""The inode table of the mount: which FUSE inode stands for which thing, and lookup counts.

Node identity is keyed by the pidfs inode number of the struct pid a node is about, never by the
reusable pid number, so a number given to a new process gets new inodes (CONVENTIONS: "Node
identity"). A handle file's inode *is* the pidfs inode number (``st_ino`` equals it), so every
other node lives far above that range. Lookup counts follow pyfuse3's contract: ``lookup`` and
every ``readdir_reply`` that returned True add one, ``forget`` subtracts; a dynamic node goes
away at zero.

Pid and thread directories (``/<pid>``, ``task/<tid>``) have *derived* inode numbers
(``derived_ino``: the view's slot and the pidfs inode number), so a listing hands them to the
kernel (every pyfuse3 listing is a readdirplus: each entry counts as a lookup) without making a
node: listing a million processes keeps nothing. A request that names such an inode makes its
node from the number (``InodeTable.derive``); FORGET drops it (the kernel's count includes the
listings' lookups, which the node never saw, so it drops at zero or below), and a later request
makes it again. Invalidations of these inodes are derived from the ids too (``nodes.piddir``).

What a node *is* (root, pid directory, handle file, ...) is its ``ops``: the node kind from
``mount/nodes`` that answers every request about it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

ROOT_INODE = 1
#: non-handle nodes are numbered from here; pidfs inode numbers (handles) stay below
NODE_BASE = 1 << 40
#: derived inode numbers (pid and thread directories) are at and above this: DERIVED_BASE |
#: view slot << 41 | thread << 40 | pidfs inode number (below 1 << 40: restore.INO_LIMIT)
DERIVED_BASE = 1 << 62
_PIDFS_BITS = 40
#: view slots that fit below DERIVED_BASE (a mount that has shown this many pid namespaces
#: refuses to show another: ``PidFs.view``)
MAX_VIEW_SLOTS = 1 << (62 - _PIDFS_BITS - 1)


def derived_ino(slot: int, thread: bool, pidfs_ino: int) -> int:
    """The inode number of a pid (``thread`` False) or thread directory in view ``slot``."""
    return DERIVED_BASE | slot << (_PIDFS_BITS + 1) | int(thread) << _PIDFS_BITS | pidfs_ino


def split_derived(ino: int) -> tuple[int, bool, int]:
    """``derived_ino``'s (slot, thread, pidfs inode number) of a derived inode number."""
    rest = ino & (DERIVED_BASE - 1)
    return (rest >> (_PIDFS_BITS + 1), bool(rest >> _PIDFS_BITS & 1),
            rest & ((1 << _PIDFS_BITS) - 1))


@dataclass(slots=True, eq=False)
class Node:
    ino: int
    key: tuple
    ops: Any  # the node's kind (mount/nodes): answers attr, lookup, readdir, open... for it
    view: Any = None  # procfs View the node belongs to (None for handles)
    pid: Any = None  # the struct pid the node is about, if any
    entry: Any = None  # procfs table Entry, if any
    extra: Any = None  # fd number, namespace, observer number...
    parent: int = 0  # parent inode (for dentry invalidation)
    name: bytes = b""
    group_key: Any = None  # the ThreadGroup whose changes make this node stale
    lookups: int = 0
    static: bool = False
    content: bytes | None = None  # cached rendering (files with page cache)
    #: the rendering whose length the kernel was last given as st_size (its i_size, where a
    #: cached read stops): what a page-cache read is answered from
    given: bytes | None = None

    @property
    def kind(self) -> str:
        """``"dir"``, ``"file"`` or ``"link"``."""
        return self.ops.kind


@dataclass(slots=True)
class InodeTable:
    nodes: dict[int, Node] = field(default_factory=dict)
    by_key: dict[tuple, int] = field(default_factory=dict)
    #: ThreadGroup -> inodes of nodes showing it (to invalidate on its events)
    by_group: dict[Any, set[int]] = field(default_factory=dict)
    next_ino: int = NODE_BASE
    #: makes the node of a derived inode number (None: nothing lives there any more)
    derive: Callable[[int], Node | None] | None = None

    def get(self, ino: int) -> Node | None:
        node = self.nodes.get(ino)
        if node is None and ino >= DERIVED_BASE and self.derive is not None:
            node = self.derive(ino)
        return node

    def find(self, key: tuple) -> Node | None:
        ino = self.by_key.get(key)
        return self.nodes.get(ino) if ino is not None else None

    def make(self, key: tuple, ops: Any, *, ino: int | None = None, static: bool = False,
             **kw: Any) -> Node:
        """The node for ``key``, created if needed (lookup count unchanged)."""
        node = self.find(key)
        if node is not None:
            return node
        if ino is None:
            ino = self.next_ino
            self.next_ino += 1
        node = Node(ino=ino, key=key, ops=ops, static=static, **kw)
        self.nodes[ino] = node
        self.by_key[key] = ino
        if node.group_key is not None:
            self.by_group.setdefault(node.group_key, set()).add(ino)
        return node

    def forget(self, ino: int, n: int) -> None:
        node = self.nodes.get(ino)
        if node is None:
            return
        node.lookups -= n
        if node.lookups <= 0 and not node.static:
            node.lookups = 0
            self._drop(node)

    def _drop(self, node: Node) -> None:
        del self.nodes[node.ino]
        if self.by_key.get(node.key) == node.ino:
            del self.by_key[node.key]
        if node.group_key is not None:
            s = self.by_group.get(node.group_key)
            if s is not None:
                s.discard(node.ino)
                if not s:
                    del self.by_group[node.group_key]

    def group_nodes(self, group: Any) -> set[int]:
        return self.by_group.get(group, set())
