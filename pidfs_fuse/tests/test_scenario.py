"""Scenario files (``pidfs_fuse.scenario``): the embedded default table has the shapes it
promises, every key of the schema reaches the model, and every error names the file and the
entry."""

from __future__ import annotations

import errno
import itertools
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pidfs_fuse.control import Control
from pidfs_fuse.kernel import ExitState, Kernel, KernelError, Task
from pidfs_fuse.scenario import Scenario, ScenarioError, load, load_default, loads


def clock() -> Any:
    return itertools.count(0, 1000).__next__


def build(text: str, **kw: Any) -> Scenario:
    return loads(textwrap.dedent(text), source="t.toml", clock=clock(), **kw)


def failure(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        build(text)
    return info.value


def all_tasks(k: Kernel) -> list[Task]:
    return [pid.task for _, pid in k.root_ns.idr.items() if pid.task is not None]


# -- the default table ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default() -> Scenario:
    return load_default()


def test_default_loads_with_metadata(default: Scenario) -> None:
    assert default.source == "default.toml" and default.name == "default" and default.description
    assert default.kernel.init.comm == "systemd"
    assert default.kernel.init.group.argv == ("/sbin/init", "splash")
    assert default.kernel.listener is None


def test_default_has_a_zombie_in_each_namespace(default: Scenario) -> None:
    sh, convert = default.tasks["java-sh"], default.tasks["convert"]
    assert sh.exit_state is ExitState.ZOMBIE and sh.exit_code == 0
    assert convert.exit_state is ExitState.ZOMBIE and convert.group.group_exit_code == 9
    assert convert.active_ns is not default.kernel.root_ns


def test_default_has_a_second_namespace_with_its_own_init(default: Scenario) -> None:
    k = default.kernel
    tini = default.tasks["tini"]
    ns = tini.active_ns
    assert ns.level == 1 and ns.child_reaper is tini and tini.pid.nr == 1
    inside = sorted(nr for nr, _ in k.iter_tgids(ns))
    assert inside[:1] == [1] and len(inside) >= 4
    assert Control(k, ns).execute("show 1").startswith("Name:\ttini\n")


def test_default_has_the_tagged_false_positive(default: Scenario) -> None:
    """A pid in the root id map that is tagged, still allocated, and has no TGID task: the
    daemonized cron's session id."""
    k = default.kernel
    idr = k.root_ns.idr
    ghosts = [nr for nr, pid in idr.items() if idr.is_tagged(nr) and pid.tgid_task is None]
    cron = default.tasks["cron"]
    assert ghosts == [cron.group.session.nr]
    ghost = idr.find(ghosts[0])
    assert ghost.task is None and cron in (ghost.session_tasks or {})
    listed = [nr for nr, _ in k.iter_tgids(k.root_ns)]
    assert ghosts[0] not in listed and cron.pid.nr in listed
    assert listed == [nr for nr, _ in k.iter_tgids(k.root_ns, linear=True)]


def test_default_start_times_never_precede_the_parent(default: Scenario) -> None:
    for t in all_tasks(default.kernel):
        g = t.group
        if t.is_leader and g.parent is not None:
            assert t.start_time >= g.parent.start_time, (t, g.parent)
        if not t.is_leader:
            assert t.start_time >= g.leader.start_time, t
    assert default.tasks["journald"].start_time == 1_210_000_000


def test_default_shapes(default: Scenario) -> None:
    k, tasks = default.kernel, default.tasks
    uids = {t.group.uid for t in all_tasks(k)}
    assert {0, 1000} <= uids and len(uids) >= 5
    java = tasks["java"].group
    comms = [t.comm for t in java.threads]
    assert len(comms) >= 20 and len(set(comms)) >= 20
    assert [t.comm for t in java.threads if t.state == "R"] == ["http-nio-8080-e"]
    assert len(tasks["containerd"].group.threads) == 9
    bash = tasks["bash"]
    assert bash.group.session_leader and bash.group.tty_nr == 34816
    assert tasks["vim"].display_state == "T" and tasks["vim"].group.pgrp is tasks["vim"].pid
    assert tasks["less"].group.pgrp is tasks["grep"].pid
    assert tasks["grep"].group.session is bash.pid
    assert tasks["sshd"].pid.nr == 812
    assert tasks["shim"].group.is_child_subreaper and tasks["systemd-user"].group.is_child_subreaper
    assert tasks["nginx-worker-0"].group.parent is tasks["nginx"] and tasks["nginx-worker-0"].group.uid == 33
    assert tasks["postgres"].group.cwd == "/var/lib/postgresql/16/main"
    assert tasks["app"].group.root == "/var/lib/docker/overlay2/3f1c9e0a7b52/merged"


def test_default_is_a_live_table_the_control_plane_can_drive(default: Scenario) -> None:
    sc = load_default()
    c = Control(sc.kernel)
    bash, vim = sc.tasks["bash"].pid.nr, sc.tasks["vim"].pid.nr
    assert c.execute(f"wait {bash} stopped nohang") == f"{vim} stopped 20\n"
    java, sh = sc.tasks["java"].pid.nr, sc.tasks["java-sh"].pid.nr
    assert c.execute(f"wait {java}") == f"{sh} exited 0\n"


# -- the schema reaches the model -------------------------------------------------------------


def test_a_minimal_file_is_just_init() -> None:
    sc = build("")
    assert sc.kernel.nr_threads == 1 and sc.tasks == {"init": sc.kernel.init}
    assert sc.kernel.init.comm == "init"


def test_kernel_and_init_tables() -> None:
    sc = build("""
        [kernel]
        pid_max = 5000
        uptime = 10
        ns_last_pid = 99
        [init]
        comm = "systemd"
        argv = ["/sbin/init", "quiet"]
        exe = "/lib/systemd/systemd"
        threads = 2
        rss = 5
        [[process]]
        name = "a"
        start = 2.5
    """)
    k = sc.kernel
    assert k.root_ns.pid_max == 5000 and k.clock() >= 10_000_000_000
    assert (k.init.comm, k.init.group.argv, k.init.group.exe, k.init.group.rss) == (
        "systemd", ("/sbin/init", "quiet"), "/lib/systemd/systemd", 5)
    assert len(k.init.group.threads) == 3
    a = sc.tasks["a"]
    assert a.pid.nr == 102 and a.start_time == 2_500_000_000  # 100 and 101 are init's threads


def test_process_keys_reach_the_model() -> None:
    sc = build("""
        [[process]]
        name = "svc"
        argv = ["/usr/sbin/svc", "-d"]
        uid = 1000
        gid = 100
        setsid = true
        environ = ["A=1"]
        cwd = "/srv"
        root = "/chroot"
        state = "D"
        nice = 5
        rss = 10
        vsize = 4096
        utime = 7
        stime = 8
        cutime = 1
        cstime = 2
        tty_nr = 1025
        sigign = ["PIPE", 1]
        set_tid = [700]
        threads = [{ comm = "w", count = 2, nice = -1 }, { comm = "io", state = "R" }]
        [[process]]
        name = "root-svc"
        threads = [{ comm = "exact", set_tid = [900] }]
    """)
    svc = sc.tasks["svc"]
    g = svc.group
    assert (svc.pid.nr, svc.comm, g.argv, g.exe, g.uid, g.gid) == (700, "svc", ("/usr/sbin/svc", "-d"),
                                                                   "/usr/sbin/svc", 1000, 100)
    assert g.session_leader and g.session is svc.pid
    assert (g.environ, g.cwd, g.root, svc.state, svc.nice, g.rss, g.vsize) == (
        ("A=1",), "/srv", "/chroot", "D", 5, 10, 4096)
    assert (svc.utime, svc.stime, g.cutime, g.cstime, g.tty_nr, g.sigign) == (7, 8, 1, 2, 1025, (1 << 13) | 2)
    threads = [(t.comm, t.nice, t.state, t.pid.nr) for t in g.threads][1:]
    # set_tid does not move the cursor: the threads are numbered from 2
    assert threads == [("w", -1, "D", 2), ("w", -1, "D", 3), ("io", 0, "R", 4)]
    assert [t.pid.nr for t in sc.tasks["root-svc"].group.threads] == [5, 900]


def test_comm_and_exe_defaults() -> None:
    sc = build("""
        [[process]]
        name = "plain"
        [[process]]
        name = "byargv"
        argv = ["/opt/bin/tool", "x"]
        [[process]]
        name = "relative"
        argv = ["python3", "app.py"]
    """)
    t = sc.tasks
    assert (t["plain"].comm, t["plain"].group.argv, t["plain"].group.exe) == ("plain", ("plain",), "/usr/bin/plain")
    assert (t["byargv"].comm, t["byargv"].group.exe) == ("tool", "/opt/bin/tool")
    assert (t["relative"].comm, t["relative"].group.exe) == ("python3", "/usr/bin/python3")


def test_parents_groups_and_endings() -> None:
    sc = build("""
        [[process]]
        name = "sh"
        setsid = true
        [[process]]
        name = "a"
        parent = "sh"
        pgid = "a"
        [[process]]
        name = "b"
        parent = "sh"
        pgid = "a"
        exit = 3
        [[process]]
        name = "c"
        parent = "sh"
        killed = "SEGV"
        [[process]]
        name = "d"
        parent = "sh"
        stopped = "STOP"
    """)
    t = sc.tasks
    assert t["b"].group.pgrp is t["a"].pid and t["a"].group.session is t["sh"].pid
    c = Control(sc.kernel)
    sh = t["sh"].pid.nr
    replies = {c.execute(f"wait {sh} stopped nohang") for _ in range(3)}
    assert replies == {f"{t['b'].pid.nr} exited 3\n", f"{t['c'].pid.nr} dumped 11\n",
                       f"{t['d'].pid.nr} stopped 19\n"}


def test_exits_run_last_so_orphans_are_reparented() -> None:
    sc = build("""
        [[process]]
        name = "reaper"
        subreaper = true
        [[process]]
        name = "mid"
        parent = "reaper"
        exit = 0
        [[process]]
        name = "leaf"
        parent = "mid"
    """)
    t = sc.tasks
    assert t["mid"].exit_state is ExitState.ZOMBIE
    assert t["leaf"].real_parent is t["reaper"]


def test_sigign_chld_parent_leaves_no_zombie() -> None:
    sc = build("""
        [[process]]
        name = "p"
        sigign = ["CHLD"]
        [[process]]
        name = "kid"
        parent = "p"
        exit = 1
    """)
    assert sc.tasks["kid"].exit_state is ExitState.DEAD


def test_newpid_makes_a_namespace_init_with_its_own_pid_max() -> None:
    sc = build("""
        [[process]]
        name = "c"
        newpid = true
        pid_max_ns = 1000
        set_tid = [1, 4000]
        [[process]]
        name = "app"
        parent = "c"
        [[process]]
        name = "nested"
        parent = "app"
        newpid = true
    """)
    c, app, nested = sc.tasks["c"], sc.tasks["app"], sc.tasks["nested"]
    assert c.pid.numbers == (4000, 1) and c.active_ns.pid_max == 1000
    assert app.pid.numbers[1] == 2 and nested.pid.numbers[1:] == (3, 1)


def test_daemonize_leaves_the_session_id_as_a_tagged_ghost() -> None:
    sc = build("""
        [[process]]
        name = "d"
        daemonize = true
        rss = 9
    """)
    k, d = sc.kernel, sc.tasks["d"]
    assert d.pid.nr == 4 and d.group.session.nr == 3 and d.group.pgrp.nr == 3
    assert d.real_parent is k.init and d.group.rss == 9 and not d.group.session_leader
    assert k.find_pid(k.root_ns, 2) is None  # the launcher was reaped and its pid freed
    ghost = k.find_pid(k.root_ns, 3)
    assert ghost.task is None and ghost.tgid_task is None and k.root_ns.idr.is_tagged(3)
    assert [nr for nr, _ in k.iter_tgids(k.root_ns)] == [1, 4]


def test_wait_pid_and_autoreap_flags() -> None:
    sc = build("""
        [[process]]
        name = "w"
        wait_pid = true
        exit = 0
        [[process]]
        name = "a"
        autoreap = true
        exit = 0
    """)
    k = sc.kernel
    assert sorted(k.init.group.files or {}) == [3]  # wait_pid implies pidfd: the handle is init's
    assert sc.tasks["w"].exit_state is ExitState.ZOMBIE
    assert sc.tasks["a"].exit_state is ExitState.DEAD
    c = Control(k)
    with pytest.raises(KernelError) as info:
        c.execute("wait 1 nohang")  # a wait_pid child is skipped by wait-for-any
    assert info.value.errno == errno.ECHILD


def test_listener_is_attached_after_loading() -> None:
    events: list[Any] = []
    sc = build("""
        [[process]]
        name = "a"
    """, listener=events.append)
    assert events == []
    Control(sc.kernel).execute("exit 2")
    assert events


def test_load_reads_a_file_and_names_it(tmp_path: Path) -> None:
    f = tmp_path / "mine.toml"
    f.write_text('[[process]]\nname = "a"\n')
    assert load(f, clock=clock()).tasks["a"].pid.nr == 2
    f.write_text('[[process]]\nname = "a"\nthreads = "x"\n')
    with pytest.raises(ScenarioError) as info:
        load(f)
    assert str(info.value) == (f'{f}: line 1: process[0].threads: expected an integer >= 0 or an array '
                               'of tables, got "x"')
    with pytest.raises(ScenarioError) as info:
        load(tmp_path / "missing.toml")
    assert info.value.errno == errno.ENOENT and "missing.toml" in str(info.value)
    f.write_bytes(b"\xff\xfe")
    with pytest.raises(ScenarioError, match="not UTF-8"):
        load(f)


# -- errors name the file and the entry ------------------------------------------------------


@pytest.mark.parametrize(("text", "message"), [
    ('[[process]]\nname = "a"\nthreads = "x"',
     't.toml: process[0].threads: expected an integer >= 0 or an array of tables, got "x"'),
    ("colour = 1", "t.toml: colour: unknown key; valid keys: at, description, init, kernel, name, process"),
    ('[[process]]\nname = "a"\ncolour = "red"', "t.toml: process[0].colour: unknown key; valid keys: "),
    ("[kernel]\npid = 5", "t.toml: kernel.pid: unknown key"),
    ('[init]\nexit = 1', "t.toml: init.exit: unknown key"),
    ("[[process]]\ncomm = 'x'", "t.toml: process[0]: missing key 'name'"),
    ('[[process]]\nname = "a"\n[[process]]\nname = "a"',
     't.toml: process[1].name: "a" is empty, \'init\', or already used by an earlier entry'),
    ('[[process]]\nname = "init"', "t.toml: process[0].name: \"init\" is empty"),
    ('[[process]]\nname = "a"\nparent = "b"\n[[process]]\nname = "b"',
     't.toml: process[0].parent: no earlier process named "b"'),
    ('[[process]]\nname = "a"\npgid = "zz"', 't.toml: process[0].pgid: no earlier process named "zz"'),
    ('[[process]]\nname = "a"\nnice = "5"', 't.toml: process[0].nice: expected an integer, got "5"'),
    ('[[process]]\nname = "a"\nnice = 50', "t.toml: process[0].nice: nice 50 is outside -20..19"),
    ('[[process]]\nname = "a"\nstate = "Z"', "t.toml: process[0].state: state 'Z' is not one of R S D T t I"),
    ('[[process]]\nname = "a"\nargv = "sleep 1"',
     't.toml: process[0].argv: expected an array of strings, got "sleep 1"'),
    ('[[process]]\nname = "a"\nsigign = ["KILL"]', "t.toml: process[0].sigign: sigign: SIGKILL cannot be ignored"),
    ('[[process]]\nname = "a"\nenviron = ["PATH"]',
     "t.toml: process[0].environ: environ word 'PATH' is not NAME=VALUE"),
    ('[[process]]\nname = "a"\nsetsid = 1', "t.toml: process[0].setsid: expected true or false, got 1 (an integer)"),
    ('[[process]]\nname = "a"\nuid = -1', "t.toml: process[0].uid: expected an integer in 0..4294967294, got -1"),
    ('[[process]]\nname = "a"\nset_tid = []', "t.toml: process[0].set_tid: expected a non-empty array of integers"),
    ('[[process]]\nname = "a"\nthreads = [{ comm = "x", colour = 1 }]',
     "t.toml: process[0].threads[0].colour: unknown key"),
    ('[[process]]\nname = "a"\nthreads = [{ nice = "1" }]',
     't.toml: process[0].threads[0].nice: expected an integer, got "1"'),
    ('[[process]]\nname = "a"\nthreads = [{ set_tid = [50], count = 2 }]',
     "t.toml: process[0].threads[0].set_tid: names one thread"),
    ('[[process]]\nname = "a"\nthreads = -1',
     "t.toml: process[0].threads: expected an integer >= 0 or an array of tables, got -1"),
    ('[[process]]\nname = "a"\nthreads = true', "t.toml: process[0].threads: expected an integer >= 0"),
    ('[[process]]\nname = "a"\nstart = 5',
     "t.toml: process[0].start: set start: EINVAL: start_time 5000000000 is in the future"),
    ('[[process]]\nname = "a"\nstart = -1', "t.toml: process[0].start: expected a number of seconds >= 0, got -1"),
    ('[[process]]\nname = "a"\npid_max_ns = 500', "t.toml: process[0].pid_max_ns: needs newpid = true"),
    ('[[process]]\nname = "a"\ndaemonize = true\nsetsid = true',
     "t.toml: process[0].daemonize: cannot be combined with setsid"),
    ('[[process]]\nname = "a"\nexit = 1\nkilled = "TERM"', "t.toml: process[0].killed: cannot be combined with exit"),
    ('[[process]]\nname = "a"\nexit = 256', "t.toml: process[0].exit: expected an integer in 0..255, got 256"),
    ('[[process]]\nname = "a"\nkilled = "CHLD"', "t.toml: process[0].killed: SIGCHLD did not end the process"),
    ('[[process]]\nname = "a"\nkilled = "LOUD"', "t.toml: process[0].killed: unknown signal 'LOUD'"),
    ('[[process]]\nname = "a"\nstopped = "TERM"', "t.toml: process[0].stopped: SIGTERM is not a stop signal"),
    ("process = 3", "t.toml: process: expected an array of tables ([[process]]), got 3 (an integer)"),
    ("[[process]]\nname = 'a'\n[[process]]\nname = 'b'\nparent = 'a'\nuid = 1000\n"
     "[[process]]\nname = 'c'\nparent = 'b'\nuid = 0",
     "t.toml: process[2] (c): clone: EPERM: only uid 0 may give a child uid 0"),
    ("[[process]]\nname = 'a'\nset_tid = [1]", "t.toml: process[0] (a): clone: EEXIST: set_tid[0]=1 is already in use"),
    ("[kernel]\npid_max = 5", "t.toml: kernel.pid_max: boot: EINVAL: pid_max 5 is outside 301..4194304"),
    ("[kernel]\nns_last_pid = 99999", "t.toml: kernel.ns_last_pid: ns_last_pid: EINVAL: ns_last_pid 99999 is outside"),
    ("name = [", "t.toml: invalid TOML: "),
], ids=lambda v: v.splitlines()[-1][:40] if "\n" in v or "=" in v else None)
def test_errors_name_the_file_and_the_entry(text: str, message: str) -> None:
    e = failure(text)
    assert str(e).startswith(message), str(e)
    assert isinstance(e, KernelError) and isinstance(e, OSError) and e.errno


def test_model_errors_keep_their_errno() -> None:
    assert failure("[[process]]\nname = 'a'\nset_tid = [1]").errno == errno.EEXIST
    assert failure("[[process]]\nname = 'a'\nnice = 99").errno == errno.EINVAL


# -- fuzz: any mutation of a good file loads or fails with a ScenarioError -------------------

_ODD_VALUES: list[Any] = [None, True, False, 0, -1, 1, 7, 2**63, 2**64, 1.5, float("nan"), float("inf"),
                          "", "x", "init", "java", "KILL", "STOP", "R", "Z", "/", "relative", "\0",
                          "a=b", [], [1], ["x"], ["A=1"], [1, "CHLD"], [{}], [{"comm": "t"}],
                          [{"count": 3}], [{"colour": 1}], {}, {"a": 1}]


def _mutate(rng: Any, data: dict[str, Any]) -> dict[str, Any]:
    import copy

    data = copy.deepcopy(data)
    tables: list[dict[str, Any]] = [data, data.setdefault("kernel", {}), data.setdefault("init", {})]
    tables += data.get("process", [])
    for _ in range(rng.randint(1, 3)):
        table = rng.choice(tables)
        keys = list(table) + ["threads", "exit", "parent", "pgid", "set_tid", "newpid", "daemonize",
                              "start", "colour", "pid_max_ns", "stopped", "killed", "sigign"]
        key = rng.choice(keys)
        if rng.random() < 0.15 and key in table:
            del table[key]
        else:
            table[key] = rng.choice(_ODD_VALUES)
    return data


def test_fuzz_mutated_scenarios_load_or_fail_with_a_scenario_error() -> None:
    import importlib.resources
    import random
    import tomllib

    from pidfs_fuse.scenario import load_data

    text = importlib.resources.files("pidfs_fuse.scenarios").joinpath("default.toml").read_text()
    good = tomllib.loads(text)
    rng = random.Random(7)
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(300):
        data = _mutate(rng, good)
        try:
            load_data(data, source="fuzz.toml")
        except ScenarioError as e:
            outcomes["refused"] += 1
            assert str(e).startswith("fuzz.toml: "), e
        except Exception as e:  # anything else is a bug in the loader
            raise AssertionError(f"mutation {i} raised {type(e).__name__}: {e}") from e
        else:
            outcomes["loaded"] += 1
    assert outcomes["loaded"] > 10 and outcomes["refused"] > 100, outcomes


def test_threads_start_with_their_process_unless_given(tmp_path) -> None:
    """Issue 10 point 7: a scenario's thread starts when its process did, not at load time."""
    f = tmp_path / "t.toml"
    f.write_text('[kernel]\nuptime = 100\n[[process]]\nname = "app"\nstart = 10\nthreads = 2\n'
                 '[[process]]\nname = "db"\nstart = 20\n'
                 'threads = [{ comm = "w" }, { comm = "late", start = 30 }]\n')
    k = load(str(f)).kernel
    starts = {t.comm: [th.start_time for th in t.group.threads] for _, t in k.iter_tgids(k.root_ns)
              if t.comm in ("app", "db")}
    assert starts == {"app": [10 * 10**9] * 3, "db": [20 * 10**9, 20 * 10**9, 30 * 10**9]}


# -- the table's cap: [kernel] max_tasks and the mount's --max-tasks (issue 9 point 4) --------

_FIVE = "[[process]]\nname = 'a'\ncount = 4\n"  # init and four processes


def test_max_tasks_key_caps_the_table_as_threads_max() -> None:
    sc = loads("[kernel]\nmax_tasks = 5\n" + _FIVE)
    assert sc.kernel.max_threads == 5
    with pytest.raises(KernelError) as e:
        sc.kernel.clone(sc.kernel.init)
    assert e.value.errno == errno.EAGAIN


@pytest.mark.parametrize(("key", "arg", "cap", "by"), [
    (4, None, 4, "its [kernel] max_tasks"),
    (None, 4, 4, "this mount's --max-tasks"),
    (4, 100, 4, "its [kernel] max_tasks"),
    (100, 4, 4, "this mount's --max-tasks"),
], ids=["key", "mount", "key-below-mount", "mount-below-key"])
def test_a_scenario_over_its_cap_fails_before_building_naming_the_file(
        tmp_path: Path, key: int | None, arg: int | None, cap: int, by: str) -> None:
    f = tmp_path / "big.toml"
    f.write_text(("" if key is None else f"[kernel]\nmax_tasks = {key}\n") + _FIVE)
    with pytest.raises(ScenarioError) as e:
        load(f, max_tasks=arg)
    assert e.value.errno == errno.EAGAIN
    assert str(e.value) == f"{f}: makes 5 tasks, more than {by} allows ({cap}); nothing was built"


def test_the_smaller_of_key_and_mount_cap_wins() -> None:
    assert loads("[kernel]\nmax_tasks = 50\n", max_tasks=20).kernel.max_threads == 20
    assert loads("[kernel]\nmax_tasks = 20\n", max_tasks=50).kernel.max_threads == 20
    assert loads("", max_tasks=5).kernel.max_threads == 5
    assert loads("").kernel.max_threads is None


@pytest.mark.parametrize("bad", ["0", "-1", "'many'", "4194304"])
def test_a_bad_max_tasks_key_is_refused(bad: str) -> None:
    with pytest.raises(ScenarioError) as e:
        loads(f"[kernel]\nmax_tasks = {bad}\n", source="s.toml")
    assert e.value.errno == errno.EINVAL
    assert str(e.value).startswith("s.toml: kernel.max_tasks: ")
