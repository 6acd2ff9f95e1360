"""Argument checks shared by the model's system calls.

Every entry point of ``Kernel`` validates what it is given before it changes anything, and a
value of the wrong type or range is EINVAL naming the value (a Python caller's mistake is the
model's bad input, never a TypeError from deep inside it).
"""

from __future__ import annotations

import errno

from .errors import KernelError
from .pid import PidNamespace
from .task import Task

U32_MAX = 2**32 - 1
#: The largest uid or gid: (uid_t)-1 means "no change" to setresuid() and is never an id.
ID_MAX = U32_MAX - 1


def einval(what: str) -> KernelError:
    return KernelError(errno.EINVAL, what)


def check_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise einval(f"{name} {value!r} is not an integer")
    return value


def check_task(name: str, value: object) -> Task:
    if not isinstance(value, Task):
        raise einval(f"{name} {value!r} is not a task")
    return value


def check_uid(value: object) -> int:
    uid = check_int("uid", value)
    if not 0 <= uid <= ID_MAX:
        raise einval(f"uid {uid} is outside 0..{ID_MAX}")
    return uid


def check_ns(value: object) -> PidNamespace:
    if not isinstance(value, PidNamespace):
        raise einval(f"{value!r} is not a pid namespace")
    return value
