"""The scenario files in ``examples/scenarios/`` load and have the shapes their comments promise
(nested namespaces, 100,000 threads, a namespace about to wrap, daemon false positives, a zombie
storm); and the two schema keys they introduced, ``count`` on a process and ``ns_last_pid_ns``,
reach the model and fail with errors naming the entry."""

from __future__ import annotations

import errno
import itertools
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pidfs_fuse.control import Control
from pidfs_fuse.kernel import ExitState, Kernel, PidNamespace, Task
from pidfs_fuse.scenario import Scenario, ScenarioError, load, loads

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"


def clock() -> Any:
    return itertools.count(0, 1000).__next__


def leaders(k: Kernel, ns: PidNamespace | None = None) -> list[Task]:
    return [t for _, t in k.iter_tgids(ns or k.root_ns)]


def tagged_ghosts(ns: PidNamespace) -> list[int]:
    """Tagged thread-group pids that no TGID task holds: the tagged scan's false positives."""
    idr = ns.idr
    return [nr for nr, pid in idr.items() if idr.is_tagged(nr) and pid.tgid_task is None]


# -- what each example promises ---------------------------------------------------------------


def check_container_host(sc: Scenario) -> None:
    k, t = sc.kernel, sc.tasks
    levels = {ns.level for ns in k.namespaces()}
    assert levels == {0, 1, 2}
    web, ci, build = (t[n].active_ns for n in ("web-init", "ci-init", "build-init"))
    assert web.parent is ci.parent is k.root_ns and build.parent is ci
    # each namespace has its own init and its own pid_max
    assert [ns.child_reaper for ns in (web, ci, build)] == [t["web-init"], t["ci-init"], t["build-init"]]
    assert (k.root_ns.pid_max, web.pid_max, ci.pid_max, build.pid_max) == (4194304, 4096, 32768, 1024)
    assert t["build-init"].pid.numbers == (7001, 60, 1)
    assert t["build-make"].pid.numbers[1:] == (30, 2)
    # the zombie two levels down, and the inner view sees only its own namespace
    assert t["build-ld"].exit_state is ExitState.ZOMBIE
    assert [nr for nr, _ in k.iter_tgids(build)] == [1, 2, 3, 4]
    assert len([x for x in leaders(k, web) if x.comm == "nginx"]) == 5
    assert t["shim-web"].group.is_child_subreaper and t["ci-shim"].group.is_child_subreaper


def check_threads_100k(sc: Scenario) -> None:
    server = sc.tasks["server"]
    assert len(server.group.threads) == 100_000
    comms = [th.comm for th in server.group.threads]
    assert comms[0] == "server" and comms.count("worker") == 99_924 and comms.count("gc") == 8
    assert sc.kernel.root_ns.pid_max == 4194304
    reply = Control(sc.kernel).execute("ps")
    nlwp = {line.split()[7]: int(line.split()[6]) for line in reply.splitlines()[1:]}
    assert nlwp["server"] == 100_000 and nlwp["sshd"] == 1


def check_pid_wrap(sc: Scenario) -> None:
    k, t = sc.kernel, sc.tasks
    batch = t["batch"].active_ns
    assert batch.pid_max == 400 and t["job-b"].pid.numbers == (32762, 399)
    assert k.root_ns.last_pid == 32766 and batch.last_pid == 399
    c = Control(k)
    # the next clone in the batch namespace wraps there (300) and takes the root's last number
    first = c.execute("clone 32760").split()
    assert first == ["32767"] and k.find_task(k.root_ns, 32767).pid.numbers == (32767, 300)
    # then the root namespace wraps too: 300, never 1..299
    assert c.execute("clone 1").split() == ["300"]
    assert Control(k, batch).execute("clone 1").split() == ["301"]


def check_daemons(sc: Scenario) -> None:
    k, t = sc.kernel, sc.tasks
    daemons = ["rsyslogd", "cron", "atd", "ntpd", "dnsmasq", "legacy"]
    ghosts = tagged_ghosts(k.root_ns)
    assert len(ghosts) == 6
    # each daemon's session id is one of them: a pid no task holds
    assert sorted(t[d].group.session.nr for d in daemons) == ghosts
    assert all(t[d].group.parent is k.init for d in daemons)
    assert t["sshd"].group.session is t["sshd"].pid  # -D: a session leader of its own
    # the tagged and the linear scan list the same processes
    assert leaders(k) == [x for _, x in k.iter_tgids(k.root_ns, linear=True)]
    workers = [x for x in leaders(k) if x.group.argv[-1:] == ("--worker",)]
    assert len(workers) == 2 and all(w.group.session is t["legacy"].group.session for w in workers)


def check_zombie_storm(sc: Scenario) -> None:
    k, t = sc.kernel, sc.tasks
    sup = t["supervisor"]
    kids = list(sup.children or ())
    zombies = [c for c in kids if c.exit_state is ExitState.ZOMBIE]
    assert len(kids) == 2001 and len(zombies) == 2000
    codes = sorted({c.exit_code for c in zombies})  # raw wait statuses
    assert codes == [0, 139, 1 << 8]  # exit 0, SIGSEGV | core dumped, exit 1
    assert t["tidy"].children in (None, {})  # ignored SIGCHLD: its children autoreaped
    c = Control(k)
    sup_nr = sup.pid.nr
    assert c.execute(f"wait {sup_nr}").split()[1:] == ["exited", "0"]
    statuses = [c.execute(f"wait {sup_nr} nohang").split()[1] for _ in range(1999)]
    assert statuses.count("dumped") == 100 and statuses.count("exited") == 1899


def check_timeline(sc: Scenario) -> None:
    """The spinner appears at 5 s, runs at 80% of a cpu, and is gone (reaped) at 10 s."""
    k = sc.kernel
    c = Control(k)
    assert k.sched.default_mode == "frozen" and k.find_task(k.root_ns, 3) is None
    k.sched.freeze()  # loaded here with a test clock; a mount freezes it as the key asks
    c.execute("tick 7s")
    spinner = k.get_task(k.root_ns, 3)
    assert (spinner.comm, spinner.state, spinner.utime, spinner.start_time) == ("spinner", "R", 160, 5 * 10**9)
    c.execute("tick 3s")
    assert k.find_task(k.root_ns, 3) is None and k.timeline == []
    assert k.get_task(k.root_ns, 2).group.cutime == 400  # 5 s at 80%, counted at the reap


CHECKS: dict[str, Callable[[Scenario], None]] = {
    "timeline.toml": check_timeline,
    "container-host.toml": check_container_host,
    "threads-100k.toml": check_threads_100k,
    "pid-wrap.toml": check_pid_wrap,
    "daemons.toml": check_daemons,
    "zombie-storm.toml": check_zombie_storm,
}


def test_every_example_has_a_shape_check() -> None:
    files = sorted(p.name for p in EXAMPLES.glob("*.toml"))
    assert files and set(CHECKS) <= set(files)
    assert not set(files) - set(CHECKS), "a new example needs a check in CHECKS"


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example_loads_with_its_promised_shape_and_both_scans_agree(name: str) -> None:
    """And the tagged scan agrees with the linear one in every namespace of it (checked first:
    some checks go on to run the example's timeline). One load serves both: threads-100k
    alone takes a second to load."""
    sc = load(EXAMPLES / name, clock=clock())
    assert sc.name == name.removesuffix(".toml") and sc.description
    k = sc.kernel
    for ns in k.namespaces():
        assert list(k.iter_tgids(ns)) == list(k.iter_tgids(ns, linear=True))
    CHECKS[name](sc)


# -- the keys the examples introduced --------------------------------------------------------


def build(text: str) -> Scenario:
    return loads(textwrap.dedent(text), source="t.toml", clock=clock())


def test_count_repeats_a_process_and_the_name_is_the_first() -> None:
    sc = build("""
        [[process]]
        name = "p"
        [[process]]
        name = "kid"
        parent = "p"
        count = 3
        threads = 1
        exit = 2
    """)
    kids = list(sc.tasks["p"].children or ())
    assert [c.pid.nr for c in kids] == [3, 5, 7]  # each with its thread
    assert sc.tasks["kid"] is kids[0]
    assert all(c.exit_state is ExitState.ZOMBIE and c.exit_code == 2 << 8 for c in kids)


def test_ns_last_pid_ns_sets_the_new_namespace_cursor() -> None:
    sc = build("""
        [[process]]
        name = "c"
        newpid = true
        pid_max_ns = 310
        ns_last_pid_ns = 308
        [[process]]
        name = "a"
        parent = "c"
        count = 2
    """)
    ns = sc.tasks["c"].active_ns
    assert sorted(nr for nr, _ in sc.kernel.iter_tgids(ns)) == [1, 300, 309]


@pytest.mark.parametrize(("text", "message", "err"), [
    ('[[process]]\nname = "a"\nns_last_pid_ns = 5', "t.toml: process[0].ns_last_pid_ns: needs newpid = true",
     errno.EINVAL),
    ('[[process]]\nname = "a"\nnewpid = true\npid_max_ns = 400\nns_last_pid_ns = 500',
     "t.toml: process[0].ns_last_pid_ns: ns_last_pid: EINVAL: ns_last_pid 500 is outside 0..400",
     errno.EINVAL),
    ('[[process]]\nname = "a"\ncount = 0', "t.toml: process[0].count: expected an integer in 1..4194304",
     errno.EINVAL),
    ('[[process]]\nname = "a"\ncount = 2\nset_tid = [50]',
     "t.toml: process[0].count: cannot be combined with set_tid", errno.EINVAL),
    ('[kernel]\npid_max = 400\n[[process]]\nname = "a"\ncount = 500',
     "t.toml: process[0] (a, copy 399 of 500): clone:", errno.EAGAIN),
], ids=["ns_last_pid_ns-without-newpid", "ns_last_pid_ns-range", "count-zero", "count-set_tid",
        "count-too-many"])
def test_new_keys_fail_naming_the_entry(text: str, message: str, err: int) -> None:
    with pytest.raises(ScenarioError) as info:
        build(text)
    assert str(info.value).startswith(message) and info.value.errno == err


def test_readme_scenario_example_loads_as_its_comments_say() -> None:
    import re

    readme = (EXAMPLES.parents[1] / "README.md").read_text()
    text = re.search(r"```toml\n(.*?)```", readme.split("## Scenarios", 1)[1], re.S).group(1)
    sc = loads(text, source="README.md", clock=clock())
    app, shim = sc.tasks["app"], sc.tasks["shim"]
    assert app.pid.numbers == (900, 1) and app.active_ns.pid_max == 4096
    assert len(shim.group.threads) == 9 and shim.group.is_child_subreaper
    jobs = list(app.children or ())
    assert len(jobs) == 100 and all(j.exit_state is ExitState.ZOMBIE for j in jobs)


def test_progress_total_counts_repeated_processes() -> None:
    seen: list[tuple[int, int]] = []
    load(EXAMPLES / "zombie-storm.toml", clock=clock(), progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (2206, 2206)
