"""The model backend: ``Op``s applied to a ``Kernel``, snapshots rendered by ``procfs``.

The model's root namespace stands for the host, its init for the host's init, and the
namespace the real side gets from ``unshare --pid --fork`` is the model's first child
namespace, whose init is cloned from the model's init with CLONE_NEWPID and calls setsid()
exactly as the real agent does. Everything is then viewed from that child namespace
(``View(kernel, ns)``), so "outside every namespace" (a kill from the host) and "the global
init" mean on both sides what they mean in Linux.
"""

from __future__ import annotations

import errno

from ..kernel import (
    CLONE_NEWPID,
    CLONE_PARENT,
    CLONE_PIDFD,
    CLONE_THREAD,
    P_PIDFD,
    PIDFD_NONBLOCK,
    PIDFD_THREAD,
    WNOHANG,
    WNOWAIT,
    ExitState,
    Kernel,
    KernelError,
    PidFd,
    Task,
)
from ..procfs import View, readlink_ns_pid, readlink_ns_pid_for_children, show_status, show_tgid_stat, show_tid_stat
from ..procfs.files import pidfd_pid_lines
from . import compare as C
from .ops import Op

SIGNALS_IGNORABLE = frozenset(range(1, 65)) - {9, 19}


class ModelSide:
    def __init__(self, pid_max: int | None = None, workarounds: frozenset[str] = frozenset()) -> None:
        #: names of driver.KNOWN entries this side works around until the model is fixed
        self.workarounds = workarounds
        self.worked_around: list[str] = []
        t = 0

        def clock() -> int:  # frozen: nothing compared depends on time
            return t

        self.k = k = Kernel(clock=clock)
        r = k.clone(k.init, CLONE_NEWPID, comm="init")
        self.init: Task = r.task
        self.ns = self.init.pid.ns
        if pid_max is not None:
            self.ns.pid_max = pid_max
        k.setsid(self.init)
        self.view = View(k, self.ns)
        #: handle -> (owning process's leader at open time, descriptor in its fd table, pidfd)
        self.handles: dict[int, tuple[Task, int, PidFd]] = {}

    # -- lookups -------------------------------------------------------------------------------

    def task(self, tid: int) -> Task | None:
        return self.k.find_task(self.ns, tid)

    def nr(self, task: Task) -> int:
        return task.pid.nr_in(self.ns)

    def tasks(self) -> list[Task]:
        """Every task not yet released, in listing order (tgid, then task/ order)."""
        out: list[Task] = []
        for _nr, leader in self.k.iter_tgids(self.ns):
            out.extend(leader.group.threads)
        return out

    def can_act(self, task: Task | None) -> bool:
        """An agent thread that can run a command now: alive, its process neither stopped nor
        exiting."""
        return (task is not None and task.alive and not task.group.stopped
                and not task.group.group_exit)

    def handle_open(self, h: int) -> bool:
        _owner, _fd, pidfd = self.handles[h]
        return not pidfd.closed

    def handle_owner(self, h: int) -> Task | None:
        """A thread of the process holding handle ``h`` that can act, or None."""
        owner, _fd, pidfd = self.handles[h]
        if pidfd.closed:
            return None
        for t in owner.group.threads:
            if self.can_act(t):
                return t
        return None

    def departure(self) -> str | None:
        """A documented departure of the model that this state has reached, or None.

        Linux's dying namespace init waits in zap_pid_ns_processes() until every other pid of
        its namespace is freed, i.e. until the parents outside the namespace (setns/unshare +
        fork, CLONE_PARENT) reap their zombie children there; it shows 'S' meanwhile and its
        parent cannot reap it. The model lets that init become a zombie at once (model
        docstring, README "What is not modelled"). From there the two sides legitimately
        diverge, so the sequence ends."""
        for ns in self.k.namespaces():
            init = ns.child_reaper
            if ns.level <= self.ns.level or init is None or init.exit_state is ExitState.RUNNING:
                continue
            others = [pid for _nr, pid in ns.idr.items()
                      if pid is not None and pid.task is not None and pid.task.group is not init.group]
            if others:
                return "a dying namespace init waits for zombies whose parent is outside its namespace"
        return None

    # -- operations ----------------------------------------------------------------------------

    def apply(self, op: Op) -> tuple:
        """Perform ``op``; the result as the real side reports it: ("ok", value) or
        ("errno", name)."""
        try:
            return ("ok", getattr(self, "op_" + op.name)(op))
        except KernelError as e:
            return ("errno", errno.errorcode.get(e.errno or 0, str(e.errno)))

    def _who(self, op: Op) -> Task:
        t = self.task(op.who)  # type: ignore[arg-type]
        if t is None:
            raise AssertionError(f"{op}: no task {op.who} in the model")
        return t

    def op_clone(self, op: Op) -> int:
        who = self._who(op)
        flags = ((CLONE_PARENT if op.flag("parent") else 0) | (CLONE_NEWPID if op.flag("newpid") else 0)
                 | (CLONE_PIDFD if "pidfd" in op.opts else 0))
        set_tid = tuple(int(x) for x in op.opts["set_tid"].split(",")) if op.opts.get("set_tid") else ()
        r = self.k.clone(who, flags, exit_signal=op.num("exit_signal", 17), set_tid=set_tid)
        if r.pidfd is not None:
            self.handles[op.num("pidfd")] = (who.group.leader, r.fd, r.pidfd)  # type: ignore[assignment]
        return r.task.pid.nr_in(who.pid.ns)

    def op_thread(self, op: Op) -> int:
        self.k.clone(self._who(op), CLONE_THREAD)
        return 0

    def op_exit(self, op: Op) -> None:
        self.k.exit(self._who(op), op.pos[1])

    def op_exit_group(self, op: Op) -> None:
        self.k.exit_group(self._who(op), op.pos[1])

    def op_kill(self, op: Op) -> int:
        nr, sig = op.pos
        if op.who is None:
            target = self.task(nr)
            assert target is not None, f"{op}: the host kills a task that exists"
            self.k.kill(target, sig, sender=None)
            return 0
        who = self._who(op)
        target = self.k.find_task(who.pid.ns, nr)
        if target is None:
            raise KernelError(errno.ESRCH, f"no process {nr}")
        self.k.kill(target, sig, sender=who)
        return 0

    def op_sigaction(self, op: Op) -> int:
        who = self._who(op)
        sig = op.pos[1]
        g = who.group
        g.sigign = g.sigign | (1 << sig) if op.flag("ign") else g.sigign & ~(1 << sig)
        self.k.notify_changed(who)
        return 0

    def op_setsid(self, op: Op) -> int:
        return self.k.setsid(self._who(op))

    def op_setpgid(self, op: Op) -> int:
        self.k.setpgid(self._who(op), op.pos[1], op.pos[2])
        return 0

    def op_subreaper(self, op: Op) -> int:
        self.k.set_child_subreaper(self._who(op), op.flag("on"))
        return 0

    def op_unshare(self, op: Op) -> int:
        self.k.unshare_pid_ns(self._who(op))
        return 0

    def op_setns(self, op: Op) -> int:
        target = self.task(op.pos[1])
        assert target is not None and target.alive
        self.k.setns_pid(self._who(op), target.active_ns)
        return 0

    def op_ns_last_pid(self, op: Op) -> int:
        who = self._who(op)
        self.k.set_last_pid(who.active_ns, op.pos[1], uid=who.group.uid)
        return 0

    def op_pidfd_open(self, op: Op) -> int:
        who = self._who(op)
        flags = (PIDFD_THREAD if op.flag("thread") else 0) | (PIDFD_NONBLOCK if op.flag("nonblock") else 0)
        pidfd = self.k.pidfd_open(who.pid.ns, op.pos[1], flags)
        fd = self.k.fd_install(who, pidfd)
        self.handles[op.num("handle")] = (who.group.leader, fd, pidfd)
        return 0

    def op_pidfd_close(self, op: Op) -> int:
        _owner, fd, _pidfd = self.handles[op.pos[1]]
        self.k.fd_close(self._who(op), fd)
        return 0

    def op_pidfd_kill(self, op: Op) -> int:
        _owner, _fd, pidfd = self.handles[op.pos[1]]
        self.k.pidfd_send_signal(pidfd, op.pos[2], sender=self._who(op))
        return 0

    def op_exec(self, op: Op) -> int:
        who = self._who(op)
        self.k.execve(who, op.opts["comm"])
        return self.nr(who)

    def _wait_args(self, op: Op) -> tuple[int, int, PidFd | None]:
        if "pidfd" in op.opts:
            _owner, fd, pidfd = self.handles[op.num("pidfd")]
            return P_PIDFD, fd, pidfd
        if "pid" in op.opts:
            return 1, op.num("pid"), None
        if "pgid" in op.opts:
            return 2, op.num("pgid"), None
        return 0, 0, None

    def op_wait(self, op: Op):
        who = self._who(op)
        idtype, id_, pidfd = self._wait_args(op)
        r = self.k.waitid(who, idtype, id_, op.num("options"), pidfd=pidfd)
        if r is None:
            return None
        return [r.pid, r.kind, r.code]

    def wait_would_block(self, op: Op) -> bool:
        """Whether ``op`` (a wait without WNOHANG) would block: asked without side effects."""
        who = self._who(op)
        idtype, id_, pidfd = self._wait_args(op)
        try:
            r = self.k.waitid(who, idtype, id_, op.num("options") | WNOHANG | WNOWAIT, pidfd=pidfd)
        except KernelError:
            return False
        return r is None and not (pidfd is not None and pidfd.nonblock)

    # -- what is compared ----------------------------------------------------------------------

    def snapshot(self, askers: dict[int, int]) -> dict:
        """The compared fields; ``askers`` (tgid -> a tid that can answer) are the processes
        whose handles are compared."""
        v, ns = self.view, self.ns
        snap: dict = {}
        labels = C.Labels()
        tgids = []
        for tgid, leader in self.k.iter_tgids(ns):
            tgids.append(tgid)
            g = leader.group
            C.add_group_stat(snap, tgid, show_tgid_stat(v, leader).decode())
            tids = []
            for t in g.threads:
                tid = t.pid.nr_in(ns)
                tids.append(tid)
                C.add_task_files(snap, tgid, tid, show_status(v, t).decode(), show_tid_stat(v, t).decode())
                for link, fn in (("pid", readlink_ns_pid), ("pid_for_children", readlink_ns_pid_for_children)):
                    try:
                        snap[f"{tgid}/{tid}/ns:{link}"] = labels(fn(v, t))
                    except KernelError as e:
                        snap[f"{tgid}/{tid}/ns:{link}"] = errno.errorcode.get(e.errno or 0, "?")
            snap[f"{tgid}/task"] = " ".join(map(str, tids))
        snap["ls"] = " ".join(map(str, tgids))
        for tgid, tid in askers.items():
            g = self.task(tid).group  # type: ignore[union-attr]
            hs = sorted(h for h, (owner, _fd, pidfd) in self.handles.items()
                        if owner.group is g and not pidfd.closed)
            snap[f"fds:{tgid}"] = " ".join(map(str, hs))
            for h in hs:
                pidfd = self.handles[h][2]
                info = self.k.exit_info(pidfd.pid)
                snap[f"pidfd:{h}:poll"] = self.k.pidfd_poll(pidfd)
                snap[f"pidfd:{h}:exit"] = info.exit_code if info is not None else None
                snap[f"pidfd:{h}:fdinfo_pid"] = pidfd_pid_lines(v, pidfd.pid).split()[1]
        return snap
