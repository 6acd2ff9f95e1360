"""pidfs_fuse.client against a real mount: sessions on one open ``.control``, a blocking wait that
really sleeps in a read of ``.control`` (no polling), and waits given up on (a signal, a trio
cancel scope) that consume nothing."""

from __future__ import annotations

import errno
import os
import signal
import threading

import pytest
import trio

from pidfs_fuse.client import ControlFile, WaitStatus

from .waiting import threads_reading, wait_until


def _control(mnt) -> str:
    return os.path.join(os.path.realpath(mnt.path), ".control")


def test_one_session_runs_commands_one_after_another(mnt):
    with ControlFile(mnt.path) as cf:
        a = int(cf.run("clone 1 comm=first"))
        b = int(cf.run("clone 1 comm=second"))
        assert b > a
        # one write of several lines: one reply each, in order
        assert cf.exchange(f"exit_group {a} 1\nexit_group {b} 2\nwait 1 pid={a}\n") == \
            (0, f"{a} exited 1\n")
        with pytest.raises(ChildProcessError, match=r"^\[Errno 10\] wait: "):
            cf.run("wait 1 pid=99999")
        assert cf.run(f"wait 1 pid={b}") == f"{b} exited 2\n"  # the session still works


def test_a_wait_that_blocked_then_failed_reports_its_errno_and_why(mnt):
    pid = mnt.client.clone(1, comm="contested")
    with ControlFile(mnt.path) as one, ControlFile(mnt.path) as two:
        # both writes are accepted at once: a blocking wait finishes in the server's background
        assert one.send(f"wait 1 pid={pid}\n") == 0 and two.send(f"wait 1 pid={pid}\n") == 0
        mnt.client.exit_group(pid, 5)
        got = sorted([one.reply(), two.reply()])
    assert got[0] == (0, f"{pid} exited 5\n")
    assert got[1][0] == errno.ECHILD and got[1][1].startswith("error: ECHILD: ")


def test_a_blocking_wait_sleeps_in_a_read_of_control_until_the_child_changes_state(mnt):
    c = mnt.client
    pid = c.clone(1, comm="victim")
    control = _control(mnt)
    seen: list[object] = []

    def kill_once_the_wait_sleeps() -> None:
        try:
            wait_until(lambda: threads_reading(control), "a thread sleeps in a read of .control")
            seen.append("asleep")
        except AssertionError as e:
            seen.append(e)
        finally:
            c.kill(pid, "KILL")  # whatever happened, so the wait below returns

    t = threading.Thread(target=kill_once_the_wait_sleeps, daemon=True)
    t.start()
    assert c.wait(1, pid=pid) == WaitStatus(pid, "killed", 9)
    t.join(timeout=30)
    assert seen == ["asleep"]
    assert not threads_reading(control)


class Interrupted(Exception):
    pass


def test_a_signal_interrupts_a_blocking_wait_which_then_consumes_nothing(mnt):
    c = mnt.client
    pid = c.clone(1, comm="sleeper")
    control = _control(mnt)

    def interrupt(signum, frame):
        raise Interrupted

    seen: list[object] = []

    def signal_once_the_wait_sleeps() -> None:
        try:
            wait_until(lambda: threads_reading(control), "a thread sleeps in a read of .control")
            seen.append("asleep")
        except AssertionError as e:
            seen.append(e)
        finally:
            os.kill(os.getpid(), signal.SIGUSR1)  # whatever happened, so the wait below ends

    old = signal.signal(signal.SIGUSR1, interrupt)
    try:
        t = threading.Thread(target=signal_once_the_wait_sleeps, daemon=True)
        t.start()
        with pytest.raises(Interrupted):  # the main thread is not stuck in the FUSE read
            c.wait(1, pid=pid)
        t.join(timeout=30)
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert seen == ["asleep"]
    assert threads_reading(control)  # the abandoned read still sleeps in the server
    c.kill(pid, "TERM")
    wait_until(lambda: not threads_reading(control), "the abandoned read returns")
    # it reaped nothing: the child is still there to be collected
    assert c.wait(1, pid=pid, nohang=True) == WaitStatus(pid, "killed", 15)


async def test_a_cancelled_aio_wait_consumes_nothing(mnt):
    c = mnt.client
    pid = await c.aio.clone(1, comm="sleeper")
    control = _control(mnt)
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(c.aio.wait, 1, pid)
            await trio.to_thread.run_sync(
                wait_until, lambda: threads_reading(control), "a worker sleeps in a read of .control")
            scope.cancel()
    assert scope.cancelled_caught
    await c.aio.exit_group(pid, 7)
    with trio.fail_after(30):
        assert await c.aio.wait(1, pid=pid) == WaitStatus(pid, "exited", 7)
    await trio.to_thread.run_sync(
        wait_until, lambda: not threads_reading(control), "the abandoned read returns")
