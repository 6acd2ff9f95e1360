"""Models ``struct task_struct`` and the per-process part (``struct signal_struct``, plus what
procfs shows of ``mm``, creds and ``fs``) as ``Task`` and ``ThreadGroup``.

Per-thread state lives on ``Task`` and per-process state on ``ThreadGroup``, as in Linux: a
thread costs one ``Task`` and one ``Pid`` (the model must hold a million of them), everything the
threads share is stored once. Times are nanoseconds of the model's clock (since its boot).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .namespaces import INIT_NAMESPACES, Namespaces
from .signals import SIGCHLD

if TYPE_CHECKING:
    from .pid import Pid, PidNamespace
    from .pidfs import PidFd


class ExitState(enum.IntEnum):
    RUNNING = 0
    ZOMBIE = 1  # EXIT_ZOMBIE
    DEAD = 2  # EXIT_DEAD: released


class TaskFlag(enum.IntFlag):
    NONE = 0
    WAIT_PID = 1  # CLONE_WAIT_PID: only a wait aimed at this child reaps it
    AUTOREAP = 2  # CLONE_AUTOREAP: released at exit, the parent is not told
    FORKNOEXEC = 4  # PF_FORKNOEXEC: forked and has not exec'd (setpgid's EACCES)
    EXITING = 8  # PF_EXITING
    NO_NEW_PRIVS = 16  # task_no_new_privs(): CLONE_NNP or inherited; never cleared


#: TaskFlag's bits as plain ints. ``Task.flags`` holds a plain int made of them: IntFlag
#: arithmetic costs about a microsecond per operation, and clone/exit/wait test flags many times
#: (``task.flags & TaskFlag.X`` still works for readers; measured by bench/model.py clone_cycle).
TF_WAIT_PID, TF_AUTOREAP, TF_FORKNOEXEC, TF_EXITING, TF_NO_NEW_PRIVS = (
    TaskFlag.WAIT_PID.value, TaskFlag.AUTOREAP.value, TaskFlag.FORKNOEXEC.value,
    TaskFlag.EXITING.value, TaskFlag.NO_NEW_PRIVS.value)
#: ExitState's members under the kernel's names, as module globals: reading one is ten times
#: faster than the enum class attribute, and exit/wait paths test states many times
#: (bench/model.py clone_cycle).
EXIT_RUNNING, EXIT_ZOMBIE, EXIT_DEAD = ExitState.RUNNING, ExitState.ZOMBIE, ExitState.DEAD


#: include/linux/sched.h: ``comm`` is a char[TASK_COMM_LEN], so a name keeps at most 15 bytes.
TASK_COMM_LEN = 16


def comm_cut(name: str) -> str:
    """What ``__set_task_comm()`` keeps of ``name``: at most TASK_COMM_LEN - 1 bytes of its
    UTF-8 (a strscpy into the char[16]). A character the cut would split is dropped whole: the
    model keeps text, where Linux would keep that character's first bytes."""
    if name.isascii():  # one byte per character
        return name[: TASK_COMM_LEN - 1]
    size = kept = 0
    for ch in name:
        size += len(ch.encode("utf-8", "surrogatepass"))
        if size > TASK_COMM_LEN - 1:
            break
        kept += 1
    return name[:kept]

#: Letters procfs prints for a running task's scheduler state (fs/proc/array.c task_state_array).
RUN_STATES = {
    "R": "R (running)",
    "S": "S (sleeping)",
    "D": "D (disk sleep)",
    "T": "T (stopped)",
    "t": "t (tracing stop)",
    "X": "X (dead)",
    "Z": "Z (zombie)",
    "P": "P (parked)",
    "I": "I (idle)",
}


@dataclass(slots=True, eq=False)
class ThreadGroup:
    """signal_struct and the shared process state (mm, creds, fs, files) of one thread group."""

    leader: Task
    #: real_parent: the thread (of another group) that forked this process
    parent: Task | None = None
    pgrp: Pid | None = None  # signal->pids[PIDTYPE_PGID]
    session: Pid | None = None  # signal->pids[PIDTYPE_SID]
    threads: dict[Task, None] = field(default_factory=dict)  # creation order, leader first
    live: int = 0  # signal->live: threads that have not exited
    group_exit: bool = False  # SIGNAL_GROUP_EXIT
    group_exit_code: int = 0
    stopped: bool = False  # SIGNAL_STOP_STOPPED
    stop_code: int = 0  # the stop signal reported by WSTOPPED, 0 once consumed
    continued: bool = False  # SIGNAL_STOP_CONTINUED, cleared when reported
    pending: int = 0  # bitmask of default-action signals waiting for SIGCONT
    unkillable: bool = False  # SIGNAL_UNKILLABLE: a namespace init
    session_leader: bool = False  # signal->leader
    is_child_subreaper: bool = False
    has_child_subreaper: bool = False
    sigign: int = 0  # bitmask: signals set to SIG_IGN
    # process state shown by procfs
    argv: tuple[str, ...] = ()
    environ: tuple[str, ...] = ()
    uid: int = 0
    gid: int = 0
    cwd: str = "/"
    exe: str = ""
    root: str = "/"
    vsize: int = 0  # bytes
    rss: int = 0  # pages
    tty_nr: int = 0
    cutime: int = 0
    cstime: int = 0
    #: emulated descriptors: fd -> object (pidfds the process holds)
    files: dict[int, PidFd] | None = None
    #: free-form extra fields set through ``set`` that have no slot of their own
    extra: dict[str, str] | None = None

    def ignores(self, sig: int) -> bool:
        return bool(self.sigign >> sig & 1)


@dataclass(slots=True, eq=False)
class Task:
    pid: Pid
    group: ThreadGroup
    comm: str
    start_time: int
    exit_signal: int = SIGCHLD  # -1 for threads
    state: str = "S"
    exit_state: ExitState = ExitState.RUNNING
    exit_code: int = 0  # raw wait status of this task
    flags: int = 0  # TF_* bits (TaskFlag values as plain ints)
    nice: int = 0
    utime: int = 0  # clock ticks
    stime: int = 0
    children: dict[Task, None] | None = None  # thread-group leaders whose real_parent is self
    pid_ns_for_children: PidNamespace | None = None  # None: the active namespace
    nsproxy: Namespaces = INIT_NAMESPACES  # the other namespaces (namespaces.py)

    def __repr__(self) -> str:
        return f"<Task {'/'.join(map(str, self.pid.numbers))} {self.comm!r}>"

    @property
    def leader(self) -> Task:
        return self.group.leader

    @property
    def is_leader(self) -> bool:
        return self.group.leader is self

    @property
    def alive(self) -> bool:
        return self.exit_state is EXIT_RUNNING and not self.flags & TF_EXITING

    @property
    def active_ns(self) -> PidNamespace:
        """task_active_pid_ns(): the namespace the task's own pid lives in."""
        return self.pid.ns

    @property
    def ns_for_children(self) -> PidNamespace:
        return self.pid_ns_for_children or self.pid.ns

    def tid_in(self, ns: PidNamespace) -> int:
        return self.pid.nr_in(ns)

    def tgid_in(self, ns: PidNamespace) -> int:
        return self.group.leader.pid.nr_in(ns)

    @property
    def real_parent(self) -> Task | None:
        return self.group.parent

    @property
    def display_state(self) -> str:
        """The letter procfs shows: Z for zombies, X for released, else the run state."""
        if self.exit_state is ExitState.ZOMBIE:
            return "Z"
        if self.exit_state is ExitState.DEAD:
            return "X"
        if self.group.stopped:
            return "T"
        return self.state
