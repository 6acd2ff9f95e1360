"""Helpers for tests that block real clients on handle files and then end the process.

A test must not trigger an exit before the client really waits, or it only tests the easy path;
and it must not sleep and hope. So it looks at the client from outside: ``/proc/<tid>/syscall``
names the system call a task sleeps in (read = 0, poll = 7, epoll_wait = 232, ...), and
``/proc/<tid>/wchan`` is ``request_wait_answer`` while the task waits for the FUSE server. A
client known to have the handle open and to sleep there is blocked on it.

``procs`` starts client processes in their own session and kills each one (its process group,
by pid) at teardown, also when the test failed. A client killed while blocked in a FUSE read
stays in the kernel until the server answers; the mount fixture's teardown aborts the connection
when it has to, which frees it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable

# x86_64 system call numbers, as /proc/<tid>/syscall shows them
SYS_READ = {0}
SYS_PREAD = {17}  # pread64
SYS_POLL = {7, 271}  # poll, ppoll
SYS_SELECT = {23, 270}  # select, pselect6
SYS_EPOLL = {232, 281, 441}  # epoll_wait, epoll_pwait, epoll_pwait2


def wait_until(pred: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    """Poll ``pred`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting until {what}")
        time.sleep(0.002)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def in_syscall(tid: int, numbers: Iterable[int]) -> bool:
    """True while task ``tid`` sleeps in one of the system calls ``numbers``."""
    first = _read(f"/proc/{tid}/syscall").split(" ", 1)[0]
    return first.isdigit() and int(first) in set(numbers)


def waits_for_fuse(pid: int) -> bool:
    return _read(f"/proc/{pid}/wchan") == "request_wait_answer"


def has_open(pid: int, fd: int, path: str) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}") == path
    except OSError:
        return False


def blocked_reading(pid: int, fd: int, path: str) -> bool:
    """The process has ``path`` open as ``fd`` and sleeps in read(2) waiting for the server."""
    return has_open(pid, fd, path) and in_syscall(pid, SYS_READ) and waits_for_fuse(pid)


def threads_reading(path: str) -> list[int]:
    """Threads of this process that sleep in read(2)/pread(2) of ``path`` waiting for the FUSE
    server (``/proc/self/task/<tid>/syscall`` shows the call and its fd)."""
    found = []
    for tid in os.listdir("/proc/self/task"):
        call = _read(f"/proc/self/task/{tid}/syscall").split()
        if (len(call) > 1 and call[0].isdigit() and int(call[0]) in SYS_READ | SYS_PREAD
                and waits_for_fuse(int(tid)) and has_open(os.getpid(), int(call[1], 16), path)):
            found.append(int(tid))
    return found


def children(pid: int) -> list[int]:
    return [int(x) for x in _read(f"/proc/{pid}/task/{pid}/children").split()]


def when_blocked(tid: int, numbers: Iterable[int], action: Callable[[], object]) -> threading.Thread:
    """Run ``action`` in a thread as soon as task ``tid`` sleeps in one of ``numbers`` (the
    caller then makes that call). The thread's ``result`` is the monotonic time when ``action``
    returned, or the exception it raised."""
    numbers = set(numbers)

    def run() -> None:
        try:
            wait_until(lambda: in_syscall(tid, numbers), f"task {tid} sleeps in {sorted(numbers)}")
            action()
            t.result = time.monotonic()  # type: ignore[attr-defined]
        except BaseException as e:  # reported by the test that reads .result
            t.result = e  # type: ignore[attr-defined]

    t = threading.Thread(target=run, daemon=True)
    t.result = None  # type: ignore[attr-defined]
    t.start()
    return t


class Procs:
    """Processes a test started; ``cleanup`` kills whatever is left, by pid."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def popen(self, argv: list[str], **kw) -> subprocess.Popen:
        kw.setdefault("start_new_session", True)
        p = subprocess.Popen(argv, **kw)
        self.started.append(p)
        return p

    def cleanup(self) -> None:
        for p in self.started:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)  # its own session: p and its children
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for p in self.started:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass  # stuck in a FUSE read: freed when the mount goes away
            for f in (p.stdin, p.stdout, p.stderr):
                if f is not None:
                    f.close()
