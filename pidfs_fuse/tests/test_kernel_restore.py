"""The restore primitives (kernel/restore.py), one by one: exact numbers and pidfs inodes, the
pidfs index kept sorted when inodes come out of order, process-group/session placement,
namespaces with chosen inums, zombie state, fd tables and the global counters, each with its
errnos and with the model unchanged after a refused call. The snapshot round trips
(test_snapshot.py) exercise them together."""

from __future__ import annotations

import errno

import pytest

from pidfs_fuse.kernel import CLONE_NEWPID, PID_MAX_LIMIT, ExitState, Kernel
from pidfs_fuse.kernel import restore as R
from pidfs_fuse.kernel.events import Event, EventKind
from pidfs_fuse.kernel.pid import ExitInfo, PidAttr
from pidfs_fuse.kernel.task import TF_EXITING, Task
from pidfs_fuse.tests.conftest import expect_error, new_kernel, raises


def test_exactpids_clone_gives_the_numbers_and_inode_asked_for() -> None:
    k = new_kernel()
    x = R.ExactPids(k)
    p = x.clone(k.init, (40,), 100)
    th = x.clone(p, (41,), 50, thread=True)
    assert (p.pid.numbers, p.pid.ino, p.group.parent) == ((40,), 100, k.init)
    assert (th.pid.numbers, th.pid.ino, th.group) == ((41,), 50, p.group)
    assert list(p.group.threads) == [p, th]
    # /proc/stat's processes is never below a pid handed out (finish() sets the saved count)
    assert k.find_task(k.root_ns, 41) is th and k.nr_threads == 3 and k.total_forks == 41


def test_inodes_out_of_order_are_indexed_by_finish_and_the_counter_never_goes_back() -> None:
    k = new_kernel()
    x = R.ExactPids(k)
    a = x.clone(k.init, (10,), 30)
    b = x.clone(k.init, (11,), 7)  # below a's: appended out of order
    c = x.alloc_pid(k.root_ns, (12,), 20, tagged=False)
    assert R.counters(k).next_ino == 31
    x.finish(R.Counters(40, R.counters(k).next_ns_inum, 2))
    assert [k.find_pidfs(i) for i in (2, 7, 20, 30)] == [k.init.pid, b.pid, c, a.pid]
    d = k.clone(k.init).task  # takes the inode counter; set_tid left the pid cursor alone
    assert (d.pid.ino, d.pid.numbers, k.total_forks) == (40, (2,), 3)


def test_one_inode_given_twice_in_a_restore_is_eexist_at_finish() -> None:
    k = new_kernel()
    x = R.ExactPids(k)
    x.clone(k.init, (10,), 30)
    x.clone(k.init, (11,), 30)  # only pids from before the restore are checked as they come
    with pytest.raises(OSError) as e:
        x.finish(R.Counters(40, R.counters(k).next_ns_inum, 2))
    assert e.value.errno == errno.EEXIST and "pidfs inode 30 was given to two pids" in str(e.value)


def test_exactpids_clone_places_every_level_of_a_nested_namespace() -> None:
    k = new_kernel()
    init2 = k.clone(k.init, CLONE_NEWPID).task
    child = R.ExactPids(k).clone(init2, (700, 9), 60)
    assert child.pid.numbers == (700, 9) and child.pid.ns is init2.active_ns
    assert k.find_task(init2.active_ns, 9) is child and k.find_task(k.root_ns, 700) is child


@pytest.mark.parametrize(("numbers", "ino", "err"), [
    ((5,), 1, errno.EINVAL),  # inodes start at 2
    ((5, 6), 40, errno.EINVAL),  # two numbers for a one-level namespace
    ((1,), 40, errno.EEXIST),  # init's number
    ((5,), 2, errno.EEXIST),  # init's inode
    ((PID_MAX_LIMIT,), 40, errno.EINVAL),  # outside 1..pid_max-1
], ids=["ino 1", "too many numbers", "number taken", "inode taken", "number out of range"])
def test_exactpids_clone_refuses_and_changes_nothing(numbers: tuple[int, ...], ino: int, err: int) -> None:
    k = new_kernel()
    x = R.ExactPids(k)
    expect_error(k, err, x.clone, k.init, numbers, ino)
    expect_error(k, err, x.alloc_pid, k.root_ns, numbers, ino, tagged=True)


def test_exactpids_clone_needs_a_privileged_parent() -> None:
    k = new_kernel()
    p = k.clone(k.init, uid=1000).task
    e = expect_error(k, errno.EPERM, R.ExactPids(k).clone, p, (50,), 40)
    assert "set_tid[0]=50 needs privilege" in str(e)


def test_alloc_pid_exact_makes_a_pid_without_a_task_with_its_tag() -> None:
    k = new_kernel()
    x = R.ExactPids(k)
    tagged = x.alloc_pid(k.root_ns, (77,), 9, tagged=True)
    plain = x.alloc_pid(k.root_ns, (78,), 10, tagged=False)
    assert (tagged.task, tagged.numbers, tagged.ino, tagged.allocated) == (None, (77,), 9, True)
    assert k.root_ns.idr.is_tagged(77) and not k.root_ns.idr.is_tagged(78)
    assert plain.ino == 10 and k.find_pid(k.root_ns, 78) is plain
    assert sorted(p.ino for p in R.allocated_pids(k)) == [2, 9, 10]


def test_set_pgrp_session_joins_and_frees_what_nobody_holds() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    sid = R.ExactPids(k).alloc_pid(k.root_ns, (50,), 40, tagged=True)
    R.set_pgrp_session(k, p.group, sid, sid)
    assert p.group.pgrp is sid and p.group.session is sid
    assert list(sid.pgrp_tasks or ()) == [p] and list(sid.session_tasks or ()) == [p]
    assert k.init.pid.pgrp_tasks is not None and p not in k.init.pid.pgrp_tasks
    R.set_pgrp_session(k, p.group, p.pid, p.pid)  # leaves sid: nothing holds it any more
    assert not sid.allocated and k.find_pid(k.root_ns, 50) is None


def test_set_pgrp_session_refuses_a_freed_pid() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    gone = R.ExactPids(k).alloc_pid(k.root_ns, (50,), 40, tagged=True)
    R.set_pgrp_session(k, p.group, gone, gone)
    R.set_pgrp_session(k, p.group, p.pid, p.pid)
    expect_error(k, errno.ESRCH, R.set_pgrp_session, k, p.group, gone, p.pid)


def test_create_pid_ns_admits_members_before_its_init() -> None:
    k = new_kernel()
    ns = R.create_pid_ns(k, k.root_ns, 0xF0000010)
    assert (ns.level, ns.parent, ns.inum, ns.pid_max) == (1, k.root_ns, 0xF0000010, PID_MAX_LIMIT)
    assert k.root_ns.children == [ns] and ns.child_reaper is R.RESTORING
    k.setns_pid(k.init, ns)
    member = R.ExactPids(k).clone(k.init, (60, 5), 30)  # number 5 with no init in the namespace
    assert member.pid.numbers == (60, 5) and member.pid.ns is ns


def test_create_pid_ns_refuses_a_33rd_level_and_the_root_inum() -> None:
    k = new_kernel()
    ns = k.root_ns
    for i in range(32):
        ns = R.create_pid_ns(k, ns, 0xF0000100 + i)
    assert ns.level == 32
    with pytest.raises(OSError) as e:
        R.create_pid_ns(k, ns, 0xF0000200)
    assert e.value.errno == errno.ENOSPC and ns.children == []
    with pytest.raises(OSError) as e:
        R.create_pid_ns(k, k.root_ns, k.root_ns.inum)
    assert e.value.errno == errno.EINVAL


def test_set_pid_ns_state_puts_back_every_value() -> None:
    k = new_kernel()
    ns = R.create_pid_ns(k, k.root_ns, 0xF0000010)
    p = k.clone(k.init).task
    R.set_pid_ns_state(k, ns, pid_max=1000, cursor=1001, adding=False, child_reaper=p, creator=k.init)
    assert (ns.pid_max, ns.idr.cursor, ns.last_pid, ns.adding) == (1000, 1001, 1000, False)
    assert ns.child_reaper is p and ns.creator is k.init


@pytest.mark.parametrize(("pid_max", "cursor"), [(300, 5), (1000, -1), (1000, PID_MAX_LIMIT + 2)],
                         ids=["pid_max below 301", "negative cursor", "cursor past the limit"])
def test_set_pid_ns_state_refuses_and_changes_nothing(pid_max: int, cursor: int) -> None:
    k = new_kernel()
    expect_error(k, errno.EINVAL, R.set_pid_ns_state, k, k.root_ns, pid_max=pid_max,
                 cursor=cursor, adding=False, child_reaper=None, creator=None)


def test_set_exit_state_keeps_the_live_count() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    th = R.ExactPids(k).clone(p, (9,), 20, thread=True)
    assert p.group.live == 2
    R.set_exit_state(k, p, ExitState.ZOMBIE, 3 << 8)
    assert (p.exit_state, p.exit_code, p.group.live) == (ExitState.ZOMBIE, 0x300, 1)
    R.set_exit_state(k, p, ExitState.ZOMBIE, 9)  # already a zombie: the count stays
    assert (p.exit_code, p.group.live) == (9, 1)
    R.set_exit_state(k, p, ExitState.RUNNING, 0)
    assert p.group.live == 2
    expect_error(k, errno.EINVAL, R.set_exit_state, k, th, ExitState.DEAD, 0)
    expect_error(k, errno.EINVAL, R.set_exit_state, k, th, ExitState.ZOMBIE, 0x10000)


def test_set_fd_table_keeps_numbers_and_order_and_counts_handles() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    c = k.clone(p).task
    c.pid.attr = PidAttr(exit=ExitInfo(0))
    R.set_fd_table(k, p.group, [R.FdEntry(9, c.pid, nonblock=True), R.FdEntry(4, c.pid, autokill=True)])
    files = p.group.files
    assert files is not None and list(files) == [9, 4]
    assert [(f.pid, f.thread, f.nonblock, f.autokill) for f in files.values()] == [
        (c.pid, False, True, False), (c.pid, False, False, True)]
    assert c.pid.handles == 2
    R.set_fd_table(k, c.group, [])
    assert c.group.files == {}


def test_set_fd_table_refuses_and_changes_nothing() -> None:
    k = new_kernel()
    p = k.clone(k.init).task
    c = k.clone(p).task
    expect_error(k, errno.EINVAL, R.set_fd_table, k, p.group, [R.FdEntry(3, c.pid)])  # no attr
    c.pid.attr = PidAttr()
    expect_error(k, errno.EBADF, R.set_fd_table, k, p.group, [R.FdEntry(3, c.pid), R.FdEntry(3, c.pid)])
    expect_error(k, errno.EBADF, R.set_fd_table, k, p.group, [R.FdEntry(-1, c.pid)])
    assert c.pid.handles == 0 and p.group.files is None


def test_counters_round_trip_and_refuse_going_below_what_is_used() -> None:
    k = Kernel(clock=lambda: 0)
    k.clone(k.init, CLONE_NEWPID)
    # one fork, but pid 2 was handed out (init's own fork counts): processes is 2
    assert R.counters(k) == R.Counters(next_ino=4, next_ns_inum=0xF0000000 - 4 + 0x101, total_forks=2)
    R.set_counters(k, R.Counters(next_ino=500, next_ns_inum=0xF0000200, total_forks=77))
    assert R.counters(k) == R.Counters(500, 0xF0000200, 77)
    assert k.clone(k.init).task.pid.ino == 500 and k.total_forks == 78
    for bad in (R.Counters(500, 0xF0000200, 0), R.Counters(600, 0xEFFFFFFC + 0x100, 0),
                R.Counters(600, 0xF0000200, -1)):
        with pytest.raises(OSError) as e:
            R.set_counters(k, bad)
        assert e.value.errno == errno.EINVAL
    assert R.counters(k) == R.Counters(501, 0xF0000200, 78)


def _row(nums: tuple[int, ...], ino: int, comm: str = "th") -> list[object]:
    # THREAD_ROW: ino, numbers, then the fields (and anything after them is ignored)
    return [ino, list(nums), comm, "R", 5000, -3, 7, 8, -1, 16, "ignored"]


def test_threads_makes_each_row_with_its_fields_as_clone_and_the_fields_would() -> None:
    k = new_kernel()
    x = R.ExactPids(k)
    p = x.clone(k.init, (40,), 100)
    made: list[Task] = []
    x.threads(p, [_row((41,), 101), _row((43,), 90, "b")], made)
    a, b = made
    assert [t.pid.numbers for t in made] == [(41,), (43,)] and list(p.group.threads) == [p, a, b]
    assert (b.comm, b.state, b.start_time, b.nice, b.utime, b.stime, b.exit_signal, b.flags) == (
        "b", "R", 5000, -3, 7, 8, -1, 16)
    assert (a.group, a.pid.task, k.find_task(k.root_ns, 43), p.group.live) == (p.group, a, b, 3)
    assert (k.nr_threads, k.total_forks, R.counters(k).next_ino) == (4, 43, 102)
    x.finish(R.Counters(200, R.counters(k).next_ns_inum, 43))  # 90 came out of order
    assert [k.find_pidfs(i) for i in (90, 100, 101)] == [b.pid, p.pid, a.pid]


def test_threads_goes_through_clone_for_a_row_it_cannot_make_directly_and_stops_at_its_error() -> None:
    k = new_kernel()
    x = R.ExactPids(k)
    p = x.clone(k.init, (40,), 100)
    # 41 is fine, 40 is taken (clone's EEXIST), 45 is never reached
    made: list[Task] = []
    # 41 is fine, 40 is taken (clone's EEXIST), 45 is never reached; 41 stays made
    e = raises(errno.EEXIST, x.threads, p, [_row((41,), 101), _row((40,), 102), _row((45,), 103)],
               made)
    assert "40" in str(e) and [t.pid.numbers for t in made] == [(41,)]
    assert k.find_task(k.root_ns, 45) is None and k.nr_threads == 3 and p.group.live == 2
    # through clone (where a listener is told of each task) the fields are the row's too
    seen: list[Event] = []
    k.listener = seen.append
    x.threads(p, [_row((46,), 104, "c")], made)
    t = made[-1]
    assert (t.comm, t.state, t.start_time, t.flags, t.pid.numbers) == ("c", "R", 5000, 16, (46,))
    assert [ev.kind for ev in seen] == [EventKind.CREATED]


def _array(nr: int, ino: int, levels: int = 1) -> list[object]:
    # THREAD_ARRAY of an ordinary running thread (numbers nr, nr - 30 with two levels)
    return [ino, [nr, nr - 30][:levels], "th", "S", 5000, 0, 7, 8, -1, 0, 0, 0, 0, None]


#: one entry changed at a time (column, value): None where ordinary() refuses it
_VARIANTS: list[tuple[int, object]] = [
    (0, True), (0, 1.0), (0, 1), (0, 10**6), (1, []), (1, [1, 2]), (1, [True]), (1, [0]),
    (1, [PID_MAX_LIMIT]), (1, (50,)), (2, ""), (2, "x" * 16), (2, "x" * 15), (2, b"th"),
    (3, "Q"), (3, "Z"), (3, "R"), (4, -1), (4, 2**63), (4, 2**63 - 1), (5, 20), (5, -20),
    (5, False), (6, -1), (6, 2**64), (7, 2**64 - 1), (8, 65), (8, 64), (8, -2), (8, 17.0),
    (9, R.TF_RESTORABLE & ~TF_EXITING), (9, TF_EXITING), (9, 1 << 12), (9, -1),
    (10, 1), (10, False), (11, 0xFFFF), (11, 0x10000), (12, 4026531836), (13, {}),
    (13, {"exit": None, "xattrs": {}}), (14, "one too many"),
]


@pytest.mark.parametrize("levels", [1, 2])
@pytest.mark.parametrize(("col", "value"), _VARIANTS)
def test_threads_with_ino_below_makes_exactly_the_rows_ordinary_accepts(
        col: int, value: object, levels: int) -> None:
    """threads(ino_below=) checks each row inline, as ordinary() does (one loop for a
    one-level namespace, another for deeper ones): it makes the rows before the first that
    ordinary() refuses, and stops there."""
    k = new_kernel()
    x = R.ExactPids(k)
    if levels == 2:  # the leader: init of a child namespace
        k.setns_pid(k.init, R.create_pid_ns(k, k.root_ns, 7000))
        p = x.clone(k.init, (40, 1), 100)
    else:
        p = x.clone(k.init, (40,), 100)
    index = {100: p.pid}
    row = _array(50, 200, levels)
    if col == 1 and type(value) is list and levels == 2:
        value = [*value, 10]  # the same change (or length), with one more level
    if col < 14:
        row[col] = value
    else:
        row.append(value)
    want = R.ordinary(row, levels, 1000, index)
    made: list[Task] = []
    x.threads(p, [_array(41, 101, levels), row, _array(42, 102, levels)], made, index,
              ino_below=1000)
    assert [t.pid.ino for t in made] == ([101, row[0], 102] if want else [101])
    assert R.ordinary(_array(43, 101, levels), levels, 1000, index) is False  # in the index now
    assert sorted(index) == sorted([100, *(t.pid.ino for t in made)])


def test_process_makes_a_child_with_the_rows_fields_directly_or_through_clone() -> None:
    k = new_kernel()
    x = R.ExactPids(k)
    parent = x.clone(k.init, (40,), 100)
    p = x.process(parent, [110, [50], "w", "R", 5000, -3, 7, 8, 17, 0, "ignored"])
    assert (p.pid.numbers, p.pid.ino, p.group.parent, p.group.leader, p.pid.tgid_task) == (
        (50,), 110, parent, p, p)
    assert (p.comm, p.state, p.start_time, p.nice, p.utime, p.stime, p.exit_signal, p.flags) == (
        "w", "R", 5000, -3, 7, 8, 17, 0)
    assert k.root_ns.idr.is_tagged(50) and k.nr_threads == 3 and k.total_forks == 50
    assert list(parent.children or ()) == [p] and p.group.pgrp is parent.group.pgrp
    # through clone (a listener is told of each task): the same, with the row's fields
    seen: list[Event] = []
    k.listener = seen.append
    q = x.process(parent, [111, [51], "v", "S", 6000, 2, 0, 1, 17, 4])
    assert (q.comm, q.state, q.start_time, q.nice, q.utime, q.stime, q.exit_signal, q.flags) == (
        "v", "S", 6000, 2, 0, 1, 17, 4)
    assert [ev.kind for ev in seen] == [EventKind.CREATED] and q.pid.numbers == (51,)
    k.listener = None
    # clone's errors, and nothing changed: a number taken, an exit signal clone refuses
    raises(errno.EEXIST, x.process, parent, [112, [50], "u", "S", 0, 0, 0, 0, 17, 0])
    raises(errno.EINVAL, x.process, parent, [112, [52], "u", "S", 0, 0, 0, 0, 65, 0])
    assert k.nr_threads == 4 and k.find_task(k.root_ns, 52) is None and 112 not in {
        t.pid.ino for t in parent.children or ()}


@pytest.mark.parametrize("levels", [1, 2])
def test_threads_named_as_their_leader_share_its_name(levels: int) -> None:
    """As clone shares the leader's comm: a row's comm equal to the leader's is the leader's
    string (a restored million threads do not keep a million copies of a few names)."""
    k = new_kernel()
    x = R.ExactPids(k)
    if levels == 2:
        k.setns_pid(k.init, R.create_pid_ns(k, k.root_ns, 7000))
        p = x.clone(k.init, (40, 1), 100)
    else:
        p = x.clone(k.init, (40,), 100)
    p.comm = "worker"
    rows = [_array(41, 101, levels), _array(42, 102, levels), _array(43, 103, levels)]
    rows[0][2] = "".join(["wor", "ker"])  # equal, another object
    rows[1][2] = "other"
    made: list[Task] = []
    x.threads(p, rows, made, {100: p.pid}, ino_below=1000)
    assert [t.comm for t in made] == ["worker", "other", "th"]
    assert made[0].comm is p.comm and made[1].comm is rows[1][2]
    made2: list[Task] = []
    x.threads(p, [_row((44, 14)[:levels], 104, "".join(["wor", "ker"]))], made2)
    assert made2[0].comm is p.comm
