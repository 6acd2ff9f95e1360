"""What the model tells the outside world, synchronously, as the kernel's wait queues would.

The mount wakes pollers and blocked readers on EXITED and REAPED, retries blocked waits on
CHILD, and drops cached pages and dentries on every kind. The model never imports trio: it calls
the injected listener and returns.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .pid import Pid
    from .task import Task


class EventKind(enum.Enum):
    CREATED = "created"  # a task was attached to a new pid
    EXITED = "exited"  # do_notify_pidfd(): a handle on this pid may have become readable
    REAPED = "reaped"  # the task left the pid (release_task): handles now see POLLHUP
    FREED = "freed"  # the pid's numbers went back to the id maps (free_pid)
    CHANGED = "changed"  # exec, stop/continue, setsid/setpgid, reparent, set: files changed
    CHILD = "child"  # __wake_up_parent(): a waiter in this task's group may now succeed


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    pid: Pid
    task: Task | None = None


Listener = Callable[[Event], None]
