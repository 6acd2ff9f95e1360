"""The shared kernel test helpers (``conftest.py``) can fail: a snapshot that does not see a
change, or a scan comparison that accepts a difference, would make every test using them vacuous.
"""

from __future__ import annotations

import errno

import pytest

from pidfs_fuse.kernel import EventKind, KernelError
from pidfs_fuse.tests import conftest
from pidfs_fuse.tests.conftest import assert_scans_agree, expect_error, new_kernel, raises, snapshot, spawn

# -- the helpers can fail ----------------------------------------------------------------------


def test_snapshot_sees_a_new_task_and_a_moved_cursor() -> None:
    k = new_kernel()
    before = snapshot(k)
    k.clone(k.init)
    after = snapshot(k)
    assert after != before
    assert after[f"ns {k.root_ns.inum}"][2] == before[f"ns {k.root_ns.inum}"][2] + 1


def test_snapshot_sees_a_cursor_write_alone() -> None:
    k = new_kernel()
    before = snapshot(k)
    k.set_last_pid(k.root_ns, 100)
    assert snapshot(k) != before


def test_expect_error_rejects_a_call_that_changes_the_model() -> None:
    k = new_kernel()

    def clone_then_fail() -> None:
        k.clone(k.init)
        raise KernelError(errno.EINVAL, "after a change")

    with pytest.raises(AssertionError, match="changed the model"):
        expect_error(k, errno.EINVAL, clone_then_fail)


def test_raises_rejects_the_wrong_errno() -> None:
    k = new_kernel()
    with pytest.raises(AssertionError, match="expected EPERM, got EINVAL"):
        raises(errno.EPERM, k.set_pid_max, k.root_ns, 5)


def test_assert_scans_agree_catches_a_missing_leader(monkeypatch: pytest.MonkeyPatch) -> None:
    from pidfs_fuse.kernel.idr import Idr

    k = new_kernel()
    spawn(k, k.init, 3)
    assert_scans_agree(k)
    real = Idr.next_tagged
    monkeypatch.setattr(Idr, "next_tagged", lambda self, nr: real(self, nr + 1 if nr == 3 else nr))
    with pytest.raises(AssertionError, match="tagged"):
        assert_scans_agree(k)


def test_recorder_keeps_events_per_struct_pid() -> None:
    k, rec = new_kernel(events=True)
    t = k.clone(k.init).task
    assert rec.kinds(t.pid) == [EventKind.CREATED]
    assert rec.kinds(k.init.pid) == [EventKind.CREATED]  # the boot created init


def test_kernels_made_by_new_kernel_are_checked_after_the_test(request: pytest.FixtureRequest) -> None:
    assert "scans_agree_after_each_test" in request.fixturenames
    k = new_kernel()
    assert conftest._made == [k]
