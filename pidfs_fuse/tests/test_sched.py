"""kernel/sched.py and timed.py without a mount: the frozen clock, cpu accounting by share,
calc_load, timelines and triggers through the control plane."""

from __future__ import annotations

import errno

import pytest

from pidfs_fuse import scenario
from pidfs_fuse.control import Control
from pidfs_fuse.kernel import Kernel, KernelError
from pidfs_fuse.kernel.sched import (
    EXP_1,
    EXP_5,
    EXP_15,
    FIXED_1,
    FSHIFT,
    NR_CPUS,
    calc_load,
    calc_load_n,
    format_load,
    parse_duration,
)
from pidfs_fuse.procfs import View, show_loadavg, show_proc_stat, show_uptime

SEC = 1_000_000_000


def err(c: Control, line: str) -> KernelError:
    with pytest.raises(KernelError) as ei:
        c.execute(line)
    return ei.value


def stat_fields(k: Kernel, pid: int) -> list[str]:
    from pidfs_fuse.procfs.files import show_tgid_stat
    task = k.get_task(k.root_ns, pid)
    text = show_tgid_stat(View(kernel=k, ns=k.root_ns), task).decode()
    return text[text.rindex(")") + 2:].split()


@pytest.fixture
def k() -> Kernel:
    return Kernel()


@pytest.fixture
def c(k: Kernel) -> Control:
    return Control(k)


@pytest.mark.parametrize(("text", "ns"), [
    ("1.5s", 1_500_000_000), ("250ms", 250_000_000), ("100j", SEC), ("2", 2 * SEC), ("1m", 60 * SEC),
    ("1h", 3600 * SEC), ("10us", 10_000), ("7ns", 7), ("0.001s", 1_000_000), ("1j", 10_000_000),
], ids=str)
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "s", "-1s", "1.5.5s", "1 s", "1x", "1e3s", ".s", "\u0661s"], ids=repr)
def test_parse_duration_refuses_with_a_sentence(text: str) -> None:
    with pytest.raises(KernelError) as ei:
        parse_duration(text)
    assert ei.value.errno == errno.EINVAL and "expected a number with a unit" in ei.value.strerror


def test_a_new_kernel_is_frozen_at_zero_and_tick_moves_it(k: Kernel, c: Control) -> None:
    assert (k.sched.mode, k.clock()) == ("frozen", 0)
    assert c.execute("tick 1.5s") == "" and k.clock() == 1_500_000_000
    assert c.execute("tick 250ms") == "" and c.execute("tick 100j") == ""
    assert c.execute("clock") == "frozen 2.750000000\n"
    assert show_uptime(View(kernel=k, ns=k.root_ns)).decode() == "2.75 5.50\n"  # idle: 2 cpus


def test_bad_tick_fails_with_a_sentence_and_changes_nothing(k: Kernel, c: Control) -> None:
    e = err(c, "tick soon")
    assert e.errno == errno.EINVAL and "duration 'soon'" in e.strerror and "usage: tick" in e.strerror
    assert k.clock() == 0


def test_tick_on_a_real_clock_is_refused(c: Control) -> None:
    t = [0]
    k = Kernel(clock=lambda: t[0])
    c = Control(k)
    e = err(c, "tick 1s")
    assert e.errno == errno.EINVAL and "the clock is real" in e.strerror
    t[0] = 3 * SEC
    assert k.clock() == 3 * SEC and k.sched.mode == "real"


def test_a_running_task_accrues_its_share_split_user_system(k: Kernel, c: Control) -> None:
    c.execute("clone 1 comm=spin")
    c.execute("set 2 state=R cpu=75% user=0.8")
    c.execute("clone 1 comm=sleeper")  # S: accrues nothing
    c.execute("tick 10s")
    f = stat_fields(k, 2)
    assert (f[11], f[12]) == ("600", "150")  # utime, stime in ticks: 7.5 s * 0.8 / 0.2
    assert stat_fields(k, 3)[11:13] == ["0", "0"]
    # many small ticks add up exactly as one big one (the remainder is kept in ns)
    for _ in range(1000):
        c.execute("tick 1ms")
    assert stat_fields(k, 2)[11:13] == ["660", "165"]


def test_proc_stat_cpu_lines_add_up_to_elapsed_times_cpus(k: Kernel, c: Control) -> None:
    c.execute("clone 1")
    c.execute("set 2 state=R cpu=80% user=0.5")
    c.execute("clone 1")
    c.execute("set 3 state=D")
    c.execute("tick 20s")
    lines = show_proc_stat(View(kernel=k, ns=k.root_ns)).decode().splitlines()
    total = [int(x) for x in lines[0].split()[1:]]
    assert sum(total) == 20 * 100 * NR_CPUS
    # user 8 s, system 8 s of 40 cpu-seconds; one D task: one cpu's idle time is iowait
    assert total[:5] == [800, 0, 800, 1200, 1200]
    per = [[int(x) for x in ln.split()[1:]] for ln in lines[1:1 + NR_CPUS]]
    assert [sum(p) for p in per] == [2000] * NR_CPUS


def test_more_running_than_cpus_share_the_cpus(k: Kernel, c: Control) -> None:
    for pid in (2, 3, 4, 5):
        c.execute("clone 1")
        c.execute(f"set {pid} state=R")
    c.execute("tick 4s")
    assert [stat_fields(k, p)[11] for p in (2, 3, 4, 5)] == ["200"] * 4  # 2 cpus / 4 tasks


def test_stopped_and_zombie_tasks_accrue_nothing(k: Kernel, c: Control) -> None:
    c.execute("clone 1")
    c.execute("set 2 state=R")
    c.execute("kill 2 STOP")
    c.execute("tick 1s")
    assert stat_fields(k, 2)[11] == "0"


def test_reaped_childs_times_go_to_the_parents_cutime(k: Kernel, c: Control) -> None:
    c.execute("clone 1 comm=parent")
    c.execute("clone 2 comm=child")
    c.execute("clone 3 thread")
    c.execute("set 3 state=R user=0.5")
    c.execute("set 4 state=R")
    c.execute("tick 2s")
    c.execute("exit 4")  # the thread is released: its 200 ticks stay with the group
    assert stat_fields(k, 3)[11:13] == ["300", "100"]
    c.execute("exit_group 3 0")
    assert c.execute("wait 2") == "3 exited 0\n"
    assert stat_fields(k, 2)[13:15] == ["300", "100"]  # cutime, cstime


def test_loadavg_follows_calc_load_every_5s(k: Kernel, c: Control) -> None:
    c.execute("clone 1")
    c.execute("set 2 state=R")
    c.execute("tick 4.99s")
    assert show_loadavg(View(kernel=k, ns=k.root_ns)).decode().startswith("0.00 0.00 0.00 ")
    c.execute("tick 10ms")
    a = [calc_load(0, e, FIXED_1) for e in (EXP_1, EXP_5, EXP_15)]
    assert a == [164, 34, 11]
    assert show_loadavg(View(kernel=k, ns=k.root_ns)).decode() == (
        f"{format_load(a[0])} {format_load(a[1])} {format_load(a[2])} 1/2 2\n")
    c.execute("tick 60s")  # 12 folds at once: calc_load_n, as Linux's NO_HZ catch-up
    b = [calc_load_n(x, e, FIXED_1, 12) for x, e in zip(a, (EXP_1, EXP_5, EXP_15), strict=True)]
    assert k.sched.avenrun == b
    assert show_loadavg(View(kernel=k, ns=k.root_ns)).decode().split()[:3] == ["0.66", "0.19", "0.07"]


def test_format_load_matches_fs_proc_loadavg() -> None:
    assert format_load(FIXED_1) == "1.00" and format_load(0) == "0.00"
    assert format_load(3 * FIXED_1 + FIXED_1 // 2) == "3.50"
    assert FSHIFT == 11


def test_cpu_share_rejects_bad_values_and_changes_nothing(k: Kernel, c: Control) -> None:
    c.execute("clone 1")
    for bad in ("cpu=150%", "cpu=-1", "user=2", "cpu=x", "cpu=1e-3"):
        e = err(c, f"set 2 state=R {bad}")
        assert e.errno == errno.EINVAL and "share of one cpu" in e.strerror, e.strerror
    assert k.get_task(k.root_ns, 2).state == "S" and k.sched.shares == {}


def test_timeline_events_apply_as_the_clock_passes() -> None:
    sc = scenario.loads("""
[[at]]
time = 5
do = ["clone 1 comm=spinner", "set 2 state=R cpu=80%"]
[[at]]
time = 10
do = "exit_group 2 0"
""")
    k = sc.kernel
    c = Control(k)
    c.execute("tick 4s")
    assert k.find_task(k.root_ns, 2) is None
    c.execute("tick 3s")
    t = k.get_task(k.root_ns, 2)
    assert t.comm == "spinner" and t.start_time == 5 * SEC and t.utime == 160  # 2 s at 80%
    c.execute("tick 10s")
    assert t.utime == 400 and t.exit_state.name == "ZOMBIE" and k.timeline == []


def test_scenario_timeline_before_uptime_is_refused() -> None:
    with pytest.raises(scenario.ScenarioError) as ei:
        scenario.loads("[kernel]\nuptime = 10\n[[at]]\ntime = 5\ndo = 'clone 1'\n")
    assert "before the table's uptime" in str(ei.value)


def test_scenario_clock_key() -> None:
    assert scenario.loads("[kernel]\nclock = 'real'\n").kernel.sched.default_mode == "real"
    with pytest.raises(scenario.ScenarioError):
        scenario.loads("[kernel]\nclock = 'fast'\n")


def test_triggers_are_armed_listed_and_cancelled(k: Kernel, c: Control) -> None:
    from pidfs_fuse import timed
    c.execute("clone 1")
    assert c.execute("on open 2/status times=2 do exec 2 comm=new") == "1\n"
    assert c.execute("on read /2/stat/ do exit_group 2 0") == "2\n"
    assert c.execute("triggers") == ("1 open 2/status times=2 fired=0 errors=0 do exec 2 comm=new\n"
                                     "2 read 2/stat times=1 fired=0 errors=0 do exit_group 2 0\n")
    assert timed.fire(c, "open", "2/status") and k.get_task(k.root_ns, 2).comm == "new"
    assert not timed.fire(c, "open", "2/stat")
    assert c.execute("cancel 2") == ""
    assert c.execute("triggers") == "1 open 2/status times=1 fired=1 errors=0 do exec 2 comm=new\n"
    e = err(c, "cancel 2")
    assert e.errno == errno.ENOENT
    c.execute("cancel all")
    assert k.triggers == {}


@pytest.mark.parametrize(("line", "fragment"), [
    ("on open 2/status", "expected 'do COMMAND'"),
    ("on write 2/status do exit 2", "unknown request 'write'"),
    ("on open 2/status times=0 do exit 2", "times="),
    ("on open 2/status do frobnicate 2", "unknown command 'frobnicate'"),
], ids=str)
def test_bad_trigger_fails_with_a_sentence_and_arms_nothing(k: Kernel, c: Control, line: str,
                                                             fragment: str) -> None:
    e = err(c, line)
    assert e.errno == errno.EINVAL and fragment in e.strerror, e.strerror
    assert k.triggers == {}


def test_reap_command(k: Kernel, c: Control) -> None:
    c.execute("clone 1")
    e = err(c, "reap 2")
    assert e.errno == errno.EINVAL and "not a zombie" in e.strerror
    c.execute("exit_group 2 3")
    assert c.execute("reap 2") == ""
    assert k.find_task(k.root_ns, 2) is None


def test_snapshot_keeps_clock_shares_timeline_and_triggers(k: Kernel, c: Control) -> None:
    from pidfs_fuse import snapshot
    c.execute("clone 1")
    c.execute("set 2 state=R cpu=33% user=0.7")
    c.execute("tick 7.777s")
    c.execute("on open 2/status times=3 do exec 2 comm=x")
    k.timeline.append((20 * SEC, ("exit_group 2 0",)))
    d = snapshot.dump(k)
    k2 = snapshot.restore(d)
    assert snapshot.dump(k2) == d  # snapshot -> restore -> snapshot is identical
    assert k2.clock() == 7_777_000_000 and k2.sched.avenrun == k.sched.avenrun
    c2 = Control(k2)
    assert c2.execute("triggers") == "1 open 2/status times=3 fired=0 errors=0 do exec 2 comm=x\n"
    c.execute("tick 3s")
    c2.execute("tick 3s")
    assert snapshot.dump(k2) == snapshot.dump(k)  # the restored table goes on exactly alike


def test_a_fresh_table_snapshot_has_no_time_key(k: Kernel) -> None:
    from pidfs_fuse import snapshot
    assert "time" not in snapshot.dump(k)


def test_snapshot_file_round_trip_of_triggers_is_exact(k: Kernel, c: Control, tmp_path) -> None:
    """Every trigger field (ids with a gap, counts, a fired-and-failed one, the root path, a
    quoted command) comes back, and the file written again is byte for byte the same."""
    from pidfs_fuse import snapshot, timed
    c.execute("clone 1")
    c.execute("clone 1")
    c.execute("on open 2/status times=3 do exec 2 \"comm=a b\"")
    c.execute("on lookup 3 do exit_group 3 0")
    c.execute("on readdir / times=2 do reap 3")  # fails when it fires: 3 is no zombie
    c.execute("on read 3/task/3/stat times=1000000 do kill 3 STOP")
    c.execute("cancel 2")
    assert timed.fire(c, "readdir", "")
    before = c.execute("triggers")
    assert before == ("1 open 2/status times=3 fired=0 errors=0 do exec 2 'comm=a b'\n"
                      "3 readdir / times=1 fired=1 errors=1 do reap 3\n"
                      "4 read 3/task/3/stat times=1000000 fired=0 errors=0 do kill 3 STOP\n")
    snapshot.write_snapshot(k, tmp_path / "a")
    k2 = snapshot.restore_file(tmp_path / "a")
    snapshot.write_snapshot(k2, tmp_path / "b")
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    c2 = Control(k2)
    assert c2.execute("triggers") == before
    assert c2.execute("on open 2/stat do exit 2") == "5\n"  # ids go on after the saved ones


def _armed_dump(k: Kernel, c: Control) -> dict:
    from pidfs_fuse import snapshot
    c.execute("clone 1")
    c.execute("on open 2/status do exit_group 2 0")
    return snapshot.dump(k)


@pytest.mark.parametrize(("index", "value", "message"), [
    (0, 2, "time.triggers[0][0]: expected an integer in 1..1, got 2"),
    (1, "write", 'time.triggers[0][1]: expected one of "lookup", "open", "read", "readdir"'),
    (2, "/2/status", 'time.triggers[0][2]: "/2/status" is not a path as \'triggers\' writes it'),
    (3, "frobnicate 2", "time.triggers[0][3]: unknown command 'frobnicate'"),
    (3, 7, "time.triggers[0][3]: expected a string, got 7"),
    (4, 0, "time.triggers[0][4]: expected an integer in 1..1000000, got 0"),
    (4, 1_000_001, "time.triggers[0][4]: expected an integer in 1..1000000, got 1000001"),
    (5, -1, "time.triggers[0][5]: expected an integer in 0..9223372036854775807, got -1"),
    (6, True, "time.triggers[0][6]: expected an integer in 0..9223372036854775807, got true"),
], ids=str)
def test_snapshot_trigger_out_of_range_is_refused_with_its_path(k: Kernel, c: Control, index: int,
                                                               value: object, message: str) -> None:
    from pidfs_fuse import snapshot
    d = _armed_dump(k, c)
    d["time"]["triggers"][0][index] = value
    with pytest.raises(snapshot.SnapshotError) as ei:
        snapshot.restore(d)
    assert ei.value.errno == errno.EINVAL
    assert str(ei.value).startswith(f"<snapshot>: {message}"), str(ei.value)


def test_snapshot_triggers_with_one_id_twice_are_refused(k: Kernel, c: Control) -> None:
    from pidfs_fuse import snapshot
    d = _armed_dump(k, c)
    d["time"]["triggers"].append(list(d["time"]["triggers"][0]))
    with pytest.raises(snapshot.SnapshotError) as ei:
        snapshot.restore(d)
    assert str(ei.value) == "<snapshot>: time.triggers: ids must rise and differ, got [1, 1]"


def test_a_saved_trigger_whose_pid_is_gone_is_restored(k: Kernel, c: Control) -> None:
    """The command's syntax is checked, not its pids (they may be gone, as when it fires)."""
    from pidfs_fuse import snapshot
    d = _armed_dump(k, c)
    d["time"]["triggers"][0][3] = "exit_group 77 0"
    assert Control(snapshot.restore(d)).execute("triggers") == (
        "1 open 2/status times=1 fired=0 errors=0 do exit_group 77 0\n")


@pytest.mark.parametrize(("key", "value", "fragment"), [
    ("avenrun", [1, "x", 3], "time.avenrun"), ("mode", "fast", "time.mode"),
    ("shares", [[999, 1, 1]], "names neither a task"), ("triggers", [[1, "write", "2", "x", 1, 0, 0]],
                                                         "time.triggers[0]"),
    ("timeline", [[5, ["a"]], [1, ["b"]]], "out of time order"),
], ids=str)
def test_snapshot_time_refuses_bad_input_with_a_sentence(k: Kernel, c: Control, key: str, value: object,
                                                         fragment: str) -> None:
    from pidfs_fuse import snapshot
    c.execute("clone 1")
    c.execute("set 2 state=R cpu=50%")
    c.execute("tick 1s")
    d = snapshot.dump(k)
    d["time"][key] = value
    with pytest.raises(snapshot.SnapshotError) as ei:
        snapshot.restore(d)
    assert fragment in str(ei.value), str(ei.value)
