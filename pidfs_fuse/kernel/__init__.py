"""The model of Linux's pid machinery: pure, synchronous, standard library only.

``Kernel`` (core.py) is the entry point and holds the state; its system calls live in files
named after the Linux source they model (fork.py, exit.py, kill.py, exec.py, sessions.py,
pid_namespace.py, pidfs.py), and ``pid``/``task`` hold the objects they act on.
"""

from .core import Kernel
from .errors import KernelError, ModelBug
from .events import Event, EventKind
from .exit import (
                   P_ALL,
                   P_PGID,
                   P_PID,
                   P_PIDFD,
                   WALL,
                   WCLONE,
                   WCONTINUED,
                   WEXITED,
                   WNOHANG,
                   WNOTHREAD,
                   WNOWAIT,
                   WSTOPPED,
                   WaitResult,
                   describe_status,
)
from .fork import (
                   CLONE_AUTOREAP,
                   CLONE_NEWPID,
                   CLONE_NNP,
                   CLONE_PARENT,
                   CLONE_PIDFD,
                   CLONE_PIDFD_AUTOKILL,
                   CLONE_THREAD,
                   CLONE_WAIT_PID,
                   CloneResult,
)
from .idr import PID_MAX_LIMIT
from .namespaces import NS_TYPES, Namespaces
from .pid import MAX_PID_NS_LEVEL, PID_MAX_DEFAULT, PID_MAX_MIN, RESERVED_PIDS, ExitInfo, Pid, PidNamespace, UPid
from .pidfs import PIDFD_NONBLOCK, PIDFD_THREAD, POLLHUP, POLLIN, POLLRDNORM, PidFd
from .task import ExitState, Task, TaskFlag, ThreadGroup

__all__ = [
    "CLONE_AUTOREAP", "CLONE_NEWPID", "CLONE_NNP", "CLONE_PARENT", "CLONE_PIDFD",
    "CLONE_PIDFD_AUTOKILL", "CLONE_THREAD", "CLONE_WAIT_PID", "MAX_PID_NS_LEVEL", "NS_TYPES", "PIDFD_NONBLOCK",
    "PIDFD_THREAD", "PID_MAX_DEFAULT", "PID_MAX_LIMIT", "PID_MAX_MIN", "POLLHUP", "POLLIN",
    "POLLRDNORM", "P_ALL", "P_PGID", "P_PID", "P_PIDFD", "RESERVED_PIDS", "WALL", "WCLONE",
    "WCONTINUED", "WEXITED", "WNOHANG", "WNOTHREAD", "WNOWAIT", "WSTOPPED",
    "CloneResult", "Event", "EventKind", "ExitInfo", "ExitState", "Kernel", "KernelError",
    "ModelBug", "Namespaces", "Pid", "PidFd", "PidNamespace", "Task", "TaskFlag", "ThreadGroup", "UPid",
    "WaitResult", "describe_status",
]
