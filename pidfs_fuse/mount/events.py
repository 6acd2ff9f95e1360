"""From model events to kernel cache invalidations.

Speed comes from the kernel's caches and correctness from explicit invalidation: pid
directories and their files get long entry/attribute timeouts and ``keep_cache``; every model
event marks the nodes it touches stale (those of the task's thread group and of its parent's),
and a reap also marks the dentries naming the reaped pid's directories. The request that caused
the change (a control write, a handle write, a sysctl write) calls ``settle`` before answering,
which drops the cached renderings and pushes the invalidations into the kernel from a worker
thread (invalidating from the serving thread can deadlock: the kernel may need this loop to
answer a pending read of the same inode first). Entries in the directory the request itself
holds locked (a lookup in it, a listing of it: a trigger that reaps there) are pushed after the
answer instead, and the entries of a reaped pid's nodes again later (``_due_again``).
"""

from __future__ import annotations

import errno
import heapq
import itertools
import logging
import time
from dataclasses import dataclass, field

import pyfuse3
import trio

from ..kernel import Event, EventKind
from .inodes import DERIVED_BASE, InodeTable

log = logging.getLogger(__name__)

_FREED, _REAPED = EventKind.FREED, EventKind.REAPED

#: seconds after a reap when the entries naming the pid are invalidated again (``_due_again``)
AGAIN_AFTER = 1.0
AGAIN_MAX = 64.0


@dataclass(slots=True)
class Changes:
    """What changed since the last ``settle``, and an event set on every change."""

    table: InodeTable
    stale_inodes: set[int] = field(default_factory=set)
    stale_entries: set[tuple[int, bytes]] = field(default_factory=set)
    #: the event behind ``any_change``, made when first asked for after a change (a bulk
    #: clone's million events then make no million trio.Events nobody waits on)
    _change: trio.Event | None = None
    #: entries of the nodes of reaped pids, invalidated again while the kernel still holds
    #: them: (when, node, parent inode, name, delay)
    again: list = field(default_factory=list)  # a heap
    again_seq: itertools.count = field(default_factory=itertools.count)  # heap tie-breaker
    reaped_nodes: list = field(default_factory=list)

    @property
    def any_change(self) -> trio.Event:
        """Set at the next model change but a pid's final release: commands that wait
        (``control_file.finish``) take it, then re-run when it fires."""
        if self._change is None:
            self._change = trio.Event()
        return self._change

    def on_event(self, ev: Event) -> None:
        # runs once per task a bulk clone makes: no allocation on the common path
        kind, task = ev.kind, ev.task
        if kind is not _FREED and self._change is not None:
            self._change.set()
            self._change = None
        if task is None:
            return
        by_group = self.table.by_group
        group = task.group
        nodes = by_group.get(group)
        if nodes:
            self.stale_inodes.update(nodes)
        parent = group.parent
        if parent is not None:
            nodes = by_group.get(parent.group)
            if nodes:
                self.stale_inodes.update(nodes)
        if kind is _REAPED:
            self._reaped(ev)

    def _reaped(self, ev: Event) -> None:
        pid, table = ev.pid, self.table
        assert ev.task is not None
        for ino in list(table.group_nodes(ev.task.group)):
            node = table.get(ino)
            if node is not None and node.pid is pid:
                self.reaped_nodes.append(node)
                if node.ops.dies_with_pid:
                    self.stale_entries.add((node.parent, node.name))
        handle = table.find(("pidfd", pid.ino))  # a handle file outlives its pid
        if handle is not None:
            self.reaped_nodes.append(handle)

    def _due_again(self, now: float) -> None:
        """Move the later invalidations that are due into ``stale_entries``.

        A reap invalidates the dentry ``/<pid>``, which drops its subtree, except the children
        in use at that moment (a ``status`` being read, a ``pidfd`` a reader waits on): those
        stay hashed under the dropped parent, and once closed they sit in the kernel's cache,
        pinning the parent, until memory runs short, and the server keeps their nodes and
        through them the dead task. (A lookup answered just before the reap and linked just
        after its invalidation leaves the same.) So every node of a reaped pid has its own
        entry invalidated ``AGAIN_AFTER`` seconds later, then again at doubling delays (up to
        ``AGAIN_MAX``) while the kernel still holds it."""
        again, seq = self.again, self.again_seq
        for node in self.reaped_nodes:
            heapq.heappush(again, (now + AGAIN_AFTER, next(seq), node, node.parent, node.name,
                                   AGAIN_AFTER))
        self.reaped_nodes.clear()
        later = []
        while again and again[0][0] <= now:
            _when, _seq, node, parent, name, delay = heapq.heappop(again)
            if self.table.nodes.get(node.ino) is node:  # (get would make a derived one)
                self.stale_entries.add((parent, name))
                if delay < AGAIN_MAX:
                    later.append((now + 2 * delay, next(seq), node, parent, name, 2 * delay))
        for item in later:
            heapq.heappush(again, item)

    async def settle(self, held: int = 0) -> bool:
        """Push pending invalidations into the kernel (see the module note). ``held``: a
        directory the kernel keeps locked until this request is answered (a lookup in it, a
        listing of it); invalidating an entry in it would wait for that lock forever, so those
        entries stay pending. True when some did (the caller pushes them after answering)."""
        if self.reaped_nodes or self.again:
            self._due_again(time.monotonic())
        if not self.stale_inodes and not self.stale_entries:
            return False
        inodes, self.stale_inodes = self.stale_inodes, set()
        entries, self.stale_entries = self.stale_entries, set()
        kept = {e for e in entries if e[0] == held} if held else set()
        if kept:
            entries -= kept
            self.stale_entries |= kept
        work_inodes = []
        for ino in inodes:
            node = self.table.nodes.get(ino)
            if node is not None:
                node.content = None
            elif ino < DERIVED_BASE:
                continue  # forgotten: the kernel holds nothing of it
            work_inodes.append(ino)  # (a derived inode without node: a listing may have given it)

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
        return bool(kept)
