"""The listener: what the model tells the outside world, synchronously, as the kernel's wait
queues would (CREATED, EXITED = do_notify_pidfd, REAPED = release_task, FREED = free_pid,
CHANGED, CHILD = __wake_up_parent). The model never imports trio or pyfuse3.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from pidfs_fuse.kernel import CLONE_AUTOREAP, CLONE_THREAD, P_PID, Event, EventKind, ExitState, Kernel
from pidfs_fuse.kernel.signals import SIGCHLD, SIGCONT, SIGSTOP
from pidfs_fuse.tests.conftest import new_kernel

C, X, R, F, CH, K = (EventKind.CREATED, EventKind.EXITED, EventKind.REAPED, EventKind.FREED,
                     EventKind.CHANGED, EventKind.CHILD)


def log(rec) -> list[tuple[EventKind, tuple[int, ...]]]:
    out = [(e.kind, e.pid.numbers) for e in rec.events]
    rec.clear()
    return out


def test_process_life_in_events() -> None:
    k, rec = new_kernel(events=True)
    assert log(rec) == [(C, (1,))]  # the boot creates init
    c = k.clone(k.init).task
    assert log(rec) == [(C, (2,))]
    k.exit(c, 1)
    assert log(rec) == [(X, (2,)), (K, (1,)), (CH, (2,))]
    k.waitid(k.init)
    assert log(rec) == [(R, (2,)), (F, (2,))]


def test_thread_exit_is_exited_reaped_freed_and_wakes_no_parent() -> None:
    k, rec = new_kernel(events=True)
    rec.clear()
    p = k.clone(k.init).task
    th = k.clone(p, CLONE_THREAD).task
    assert log(rec) == [(C, (2,)), (C, (3,))]
    k.exit(th)
    assert log(rec) == [(X, (3,)), (R, (3,)), (F, (3,))]
    assert th.exit_state is ExitState.DEAD


def test_leader_exiting_early_is_silent_until_the_group_is_empty() -> None:
    k, rec = new_kernel(events=True)
    p = k.clone(k.init).task
    th = k.clone(p, CLONE_THREAD).task
    rec.clear()
    k.exit(p, 5)
    assert log(rec) == [(CH, (2,))]  # no EXITED, no CHILD
    k.exit(th)
    assert log(rec) == [(X, (3,)), (R, (3,)), (F, (3,)), (X, (2,)), (K, (1,))]


@pytest.mark.parametrize("how", ["autoreap", "sigchld-ignored"])
def test_autoreaped_child_wakes_the_parent_then_is_released(how: str) -> None:
    k, rec = new_kernel(events=True)
    if how == "autoreap":
        c = k.clone(k.init, CLONE_AUTOREAP, exit_signal=0).task
    else:
        p = k.clone(k.init).task
        p.group.sigign |= 1 << SIGCHLD
        c = k.clone(p).task
    parent = c.group.parent
    rec.clear()
    k.exit(c)
    assert log(rec) == [(X, c.pid.numbers), (K, parent.pid.numbers), (R, c.pid.numbers),
                        (F, c.pid.numbers)]


def test_stop_and_continue_change_the_leader_and_wake_the_parent() -> None:
    k, rec = new_kernel(events=True)
    c = k.clone(k.init).task
    rec.clear()
    k.kill(c, SIGSTOP)
    assert log(rec) == [(CH, (2,)), (K, (1,))]
    k.kill(c, SIGSTOP)
    assert log(rec) == []
    k.kill(c, SIGCONT)
    assert log(rec) == [(CH, (2,)), (K, (1,))]


def test_reparenting_a_zombie_notifies_the_new_parent() -> None:
    k, rec = new_kernel(events=True)
    father = k.clone(k.init).task  # 2
    alive = k.clone(father).task  # 3
    z = k.clone(father).task  # 4
    k.exit(z)
    rec.clear()
    k.exit(father)
    events = log(rec)
    assert (CH, (3,)) in events  # moved to init
    assert events.index((X, (4,))) < events.index((X, (2,)))  # the zombie is re-announced first
    assert events.count((K, (1,))) == 2  # for the zombie and for father
    assert alive.group.parent is k.init


def test_session_id_freed_with_its_last_user() -> None:
    k, rec = new_kernel(events=True)
    d = k.clone(k.init).task
    k.setsid(d)
    daemon = k.clone(d).task
    k.exit(d)
    k.waitid(k.init, P_PID, 2)
    assert (R, (2,)) in log(rec)
    k.exit(daemon)
    k.waitid(k.init, P_PID, 3)
    assert log(rec)[-3:] == [(R, (3,)), (F, (3,)), (F, (2,))]


def test_exec_setsid_setpgid_report_changed() -> None:
    k, rec = new_kernel(events=True)
    p = k.clone(k.init).task
    c = k.clone(p).task
    rec.clear()
    k.setsid(p)
    k.setpgid(c, 0, 0)
    k.execve(c, "x")
    assert log(rec) == [(CH, (2,)), (CH, (3,)), (CH, (3,))]


def test_listener_sees_the_state_the_event_announces() -> None:
    seen = []

    def listener(ev: Event) -> None:
        t = ev.task
        seen.append((ev.kind, t.exit_state if t else None, ev.pid.task is not None,
                     ev.pid.allocated))

    k = Kernel(listener=listener)
    c = k.clone(k.init).task
    k.exit(c)
    k.waitid(k.init)
    assert seen[0] == (C, ExitState.RUNNING, True, True)
    exited = next(s for s in seen if s[0] is X)
    assert exited == (X, ExitState.ZOMBIE, True, True)
    reaped = next(s for s in seen if s[0] is R)
    assert reaped == (R, ExitState.DEAD, False, True)
    assert seen[-1] == (F, None, False, False)


def test_events_are_frozen_records() -> None:
    k, rec = new_kernel(events=True)
    k.clone(k.init)
    ev = rec.events[-1]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.kind = EventKind.FREED


def test_the_model_runs_without_trio_or_pyfuse3() -> None:
    code = (
        "import sys\n"
        "from pidfs_fuse.kernel import Kernel\n"
        "events = []\n"
        "k = Kernel(listener=events.append)\n"
        "c = k.clone(k.init).task\n"
        "k.exit(c, 3)\n"
        "k.waitid(k.init)\n"
        "assert len(events) >= 5, events\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('trio', 'pyfuse3'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
