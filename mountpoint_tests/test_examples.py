"""The programs in examples/ run against a real mount, as a user would run them.

Each waiting example is started before the process it waits for ends and is seen blocked (in
read(2) on the handle, or in epoll_wait) before the control command that ends it, so the tests
cover the waking path, not only the answer for a process that had already ended.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .waiting import (
    SYS_EPOLL,
    blocked_reading,
    in_syscall,
    wait_until,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
WAIT_FOR_EXIT = str(EXAMPLES / "wait-for-exit.sh")
WAIT_MANY = [sys.executable, str(EXAMPLES / "wait_many.py")]


def run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


# -- examples/wait-for-exit.sh ----------------------------------------------------------------

@pytest.mark.parametrize(("end", "said"), [(("exit_group", "3"), "exited 3"),
                                           (("kill", "KILL"), "was killed by signal 9 (KILL)"),
                                           (("kill", "SEGV"),
                                            "was killed by signal 11 (SEGV) and dumped core")],
                         ids=["exit-3", "kill-9", "segv"])
def test_wait_for_exit_reports_how_the_process_ended(mnt, procs, end, said):
    p = mnt.new(1)
    sh = procs.popen(["timeout", "60", "bash", WAIT_FOR_EXIT, mnt.path, str(p)],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: any(blocked_reading(c, 3, f"{mnt.path}/{p}/pidfd") for c in _tree(sh.pid)),
               "the script sleeps reading the handle")
    mnt.ctl(end[0], str(p), end[1])
    out, err = sh.communicate(timeout=60)
    assert (sh.returncode, out, err) == (0, f"{p} {said}\n", "")


def test_wait_for_exit_answers_at_once_for_an_ended_process(mnt):
    p = mnt.new(1)
    mnt.ctl("exit_group", str(p), "0")
    r = run([WAIT_FOR_EXIT, mnt.path, str(p)])
    assert (r.returncode, r.stdout) == (0, f"{p} exited 0\n")


def test_wait_for_exit_usage_and_bad_input(mnt):
    p = mnt.new(1)
    t = int(mnt.ctl("clone", str(p), "thread").split()[0])
    r = run([WAIT_FOR_EXIT, "--help"])
    assert r.returncode == 0 and r.stdout.startswith("usage: wait-for-exit.sh MOUNT PID\n")
    cases = [
        ([], 2, "usage: wait-for-exit.sh MOUNT PID"),
        ([mnt.path], 2, "usage: wait-for-exit.sh MOUNT PID"),
        ([mnt.path, "x1"], 2, "PID must be a positive number, not 'x1'"),
        ([mnt.path, "0"], 2, "PID must be a positive number, not '0'"),
        (["/", "1"], 1, "/ is not a pidfs-fuse mount"),
        ([mnt.path, "99999"], 1, f"no process 99999 in {mnt.path}"),
        ([mnt.path, str(t)], 1, f"{t} is a thread of process {p}; wait for {p}, "
                                f"or read {mnt.path}/{p}/task/{t}/pidfd"),
    ]
    for args, status, message in cases:
        r = run([WAIT_FOR_EXIT, *args])
        assert (r.returncode, r.stdout) == (status, ""), args
        assert message in r.stderr, (args, r.stderr)


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``timeout`` runs the script as its child)."""
    from .waiting import children

    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


# -- examples/wait_many.py ------------------------------------------------------------------------

def test_wait_many_prints_each_end_as_it_happens(mnt, procs):
    pids = [mnt.new(1) for _ in range(3)]
    pr = procs.popen([*WAIT_MANY, mnt.path, *map(str, pids)], stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True)
    for p, end, said in [(pids[1], ("exit_group", "0"), "exited 0"),
                         (pids[2], ("kill", "TERM"), "killed by signal 15 (SIGTERM)"),
                         (pids[0], ("kill", "SEGV"), "killed by signal 11 (SIGSEGV) and dumped core")]:
        wait_until(lambda: in_syscall(pr.pid, SYS_EPOLL), "wait_many sleeps in epoll_wait")
        mnt.ctl(end[0], str(p), end[1])
        assert pr.stdout.readline() == f"{p} {said}\n"
    assert pr.wait(timeout=30) == 0
    assert pr.stdout.read() == "" and pr.stderr.read() == ""


def test_wait_many_verbose_first_and_timeout(mnt, procs):
    a, b = mnt.new(1), mnt.new(1)
    mnt.ctl("exit_group", str(b), "4")
    r = run([*WAIT_MANY, "--first", "-v", mnt.path, str(a), str(b)])
    assert r.returncode == 0
    ino = os.stat(f"{mnt.path}/{b}/pidfd").st_ino
    assert r.stdout == f"{b} exited 4\n    Pid:\t{b}\n    NSpid:\t{b}\n    Ino:\t{ino}\n"
    r = run([*WAIT_MANY, "--timeout", "0.2", mnt.path, str(a)])
    assert (r.returncode, r.stdout) == (3, "")
    assert r.stderr.endswith(f"timed out; still running: {a}\n")


def test_wait_many_help_and_bad_input(mnt):
    p = mnt.new(1)
    t = int(mnt.ctl("clone", str(p), "thread").split()[0])
    r = run([*WAIT_MANY, "--help"])
    assert r.returncode == 0
    for taught in ("MOUNT/PID/pidfd", "select.epoll", "EPOLLHUP", "exited N", "--timeout SECONDS",
                   "exit status"):
        assert taught in r.stdout, taught
    r = run([*WAIT_MANY, mnt.path])
    assert r.returncode == 2 and "the following arguments are required: PID" in r.stderr
    r = run([*WAIT_MANY, mnt.path, "-3"])
    assert r.returncode == 2
    r = run([*WAIT_MANY, mnt.path, "abc"])
    assert r.returncode == 2 and "not a process id: 'abc'" in r.stderr
    r = run([*WAIT_MANY, "/", "1"])
    assert (r.returncode, r.stderr.strip()) == (1, f"{WAIT_MANY[1]}: / is not a pidfs-fuse mount")
    for bad in ("99999", str(t)):
        r = run([*WAIT_MANY, mnt.path, str(p), bad])
        assert r.returncode == 1 and f": {bad}: no such process" in r.stderr, r.stderr
