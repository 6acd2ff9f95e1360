"""Controlling terminals and their foreground process group (drivers/tty/tty_jobctrl.c:
``tiocsctty``, ``tiocspgrp``; ``tty->pgrp`` is what ``/proc/<pid>/stat`` field 8, tpgid, shows).

A terminal is its device number (``tty_nr``, new_encode_dev of major/minor: ``pts/3`` is
``136 << 8 | 3``). A process's terminal is ``ThreadGroup.tty_nr`` (signal->tty, inherited at
fork, cleared by setsid). ``Kernel.ttys`` maps a device to a ``Terminal`` holding the session it
controls and its foreground group; a device no ``Terminal`` describes (a table that only sets
``tty_nr``) has the session's own group in the foreground, as right after the session leader
acquired it.

The functions are methods of ``Kernel`` (core.py binds them); ``self`` is the kernel.
Not modelled: SIGTTOU for a background tcsetpgrp, hangup when the session leader exits.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .checks import check_int
from .errors import KernelError

if TYPE_CHECKING:
    from .core import Kernel
    from .pid import Pid, PidNamespace
    from .task import Task, ThreadGroup

#: the largest device number stat shows (u32)
DEV_MAX = 2**32 - 1
_MAJORS = {"pts": 136, "tty": 4, "ttyS": 4}


@dataclass(slots=True, eq=False)
class Terminal:
    """struct tty_struct's job-control half."""

    dev: int
    session: Pid  # tty->session
    pgrp: Pid  # tty->pgrp: the foreground process group


def parse_tty(text: str) -> int:
    """A device number from ``pts/N``, ``ttyN``, ``ttySN`` or a number (1..2**32-1); EINVAL
    with a sentence otherwise."""
    m = re.fullmatch(r"(pts/|ttyS|tty)([0-9]{1,6})", text)
    if m is not None:
        major, minor = _MAJORS[m.group(1).rstrip("/")], int(m.group(2))
        if m.group(1) == "ttyS":
            minor += 64
        if minor > 0xFFFFF:
            raise KernelError(errno.EINVAL, f"terminal {text!r}: minor {minor} is above {0xFFFFF}")
        return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)
    if text.isascii() and text.isdigit() and len(text) <= 10 and 0 < int(text) <= DEV_MAX:
        return int(text)
    raise KernelError(errno.EINVAL, f"{text!r} is not a terminal: expected pts/N, ttyN, ttySN or a "
                      f"device number 1..{DEV_MAX}")


def _session_groups(self: Kernel, sid: Pid) -> list[ThreadGroup]:
    return [t.group for t in (sid.session_tasks or ())]


def set_ctty(self: Kernel, task: Task, dev: int) -> None:
    """TIOCSCTTY by the session leader ``task``: ``dev`` becomes its session's controlling
    terminal with the leader's group in the foreground; every process of the session gets it
    (as if forked after, which is how a table describes a login shell and its jobs). EPERM for a
    process that leads no session or a terminal that controls another live session; EINVAL for
    a bad device number."""
    self._check_alive(task)
    dev = check_int("terminal", dev)
    if not 0 < dev <= DEV_MAX:
        raise KernelError(errno.EINVAL, f"terminal device {dev} is outside 1..{DEV_MAX}")
    g = task.group
    if not g.session_leader or g.session is None:
        raise KernelError(errno.EPERM, f"{task.pid.nr} leads no session (setsid first)")
    old = self.ttys.get(dev)
    if old is not None and old.session is not g.session and old.session.session_tasks:
        raise KernelError(errno.EPERM, f"terminal {dev} controls session {old.session.nr} already")
    sid = g.session
    for t in list(self.ttys.values()):  # the session's previous terminal, if any
        if t.session is sid:
            del self.ttys[t.dev]
    assert g.pgrp is not None
    self.ttys[dev] = Terminal(dev, sid, g.pgrp)
    for member in _session_groups(self, sid):
        member.tty_nr = dev
        self.notify_changed(member.leader)


def tcsetpgrp(self: Kernel, task: Task, pgid: int) -> None:
    """tcsetpgrp(fd of its terminal, PGID) by ``task`` (PGID in its namespace): the group
    becomes the terminal's foreground. ENOTTY without a controlling terminal or when it is not
    the session's; ESRCH for no such group; EPERM for a group of another session."""
    self._check_alive(task)
    pgid = check_int("pgid", pgid)
    g = task.group
    if not g.tty_nr:
        raise KernelError(errno.ENOTTY, f"{task.pid.nr} has no controlling terminal")
    tty = self.ttys.get(g.tty_nr)
    if tty is None:  # a table that set tty_nr only: the session's own group is in front
        if g.session is None:
            raise KernelError(errno.ENOTTY, f"{task.pid.nr} has no session")
        tty = Terminal(g.tty_nr, g.session, g.session)
    if tty.session is not g.session:
        raise KernelError(errno.ENOTTY, f"terminal {g.tty_nr} is not the controlling terminal of "
                          f"{task.pid.nr}'s session")
    if pgid < 0:
        raise KernelError(errno.EINVAL, f"process group {pgid} is negative")
    pid = self.find_pid(task.pid.ns, pgid)
    leaders = pid.pgrp_tasks if pid is not None else None
    if pid is None or not leaders:
        raise KernelError(errno.ESRCH, f"no process group {pgid}")
    if next(iter(leaders)).group.session is not g.session:
        raise KernelError(errno.EPERM, f"process group {pgid} is in another session")
    tty.pgrp = pid
    self.ttys[tty.dev] = tty
    for member in _session_groups(self, g.session):
        if member.tty_nr == tty.dev:
            self.notify_changed(member.leader)


def foreground(self: Kernel, g: ThreadGroup) -> Pid | None:
    """tty->pgrp of the group's terminal (None without one): the Terminal's, else the session's
    own group."""
    if not g.tty_nr:
        return None
    tty = self.ttys.get(g.tty_nr)
    if tty is not None and tty.session is g.session:
        return tty.pgrp
    return g.session


def tpgid_in(self: Kernel, g: ThreadGroup, ns: PidNamespace) -> int:
    """stat field 8: the foreground group's number in ``ns``; -1 without a terminal, 0 when the
    group is not visible from ``ns`` (pid_nr_ns)."""
    fg = foreground(self, g)
    return -1 if fg is None else fg.nr_in(ns)
