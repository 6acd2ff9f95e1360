"""The model of Linux's pid machinery: pure, synchronous, standard library only.

``Kernel`` is the entry point; see ``core`` for the system calls and ``pid``/``task`` for the
objects they act on.
"""

from .core import (CLONE_AUTOREAP, CLONE_NEWPID, CLONE_NNP, CLONE_PARENT, CLONE_PIDFD,
                   CLONE_PIDFD_AUTOKILL, CLONE_THREAD, CLONE_WAIT_PID, P_ALL, P_PGID, P_PID,
                   P_PIDFD, PIDFD_NONBLOCK, PIDFD_THREAD, POLLHUP, POLLIN, POLLRDNORM, WCONTINUED,
                   WEXITED, WNOHANG, WNOWAIT, WSTOPPED, CloneResult, Kernel, PidFd, WaitResult,
                   WALL, WCLONE, WNOTHREAD, describe_status)
from .errors import KernelError, ModelBug
from .events import Event, EventKind
from .pid import (MAX_PID_NS_LEVEL, PID_MAX_DEFAULT, PID_MAX_MIN, RESERVED_PIDS, ExitInfo, Pid,
                  PidNamespace, UPid)
from .idr import PID_MAX_LIMIT
from .task import ExitState, Task, TaskFlag, ThreadGroup

__all__ = [n for n in dir() if not n.startswith("_")]
