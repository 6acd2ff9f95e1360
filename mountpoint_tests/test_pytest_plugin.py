"""The pytest plugin (``pidfs_fuse.pytest_plugin``), run the way its users run it: inner test
files under ``pytester`` that use the ``pidfs`` fixtures. Each inner test records the mounts it
used (path and server pid) in a file, and the outer test checks that none is left behind, in
/proc/self/mountinfo or as a process, whatever the inner outcome was: pass, fail, error,
KeyboardInterrupt, SIGTERM or SIGKILL of the test run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parents[1] / "README.md"

#: inner conftest: ``record(m)`` appends the mount's path and server pid to RECORD
CONFTEST = """
import json, os
RECORD = {record!r}

def record(m):
    with open(RECORD, "a") as f:
        f.write(json.dumps({{"path": str(m.path), "pid": m.server_pid}}) + "\\n")
"""


def mounted_paths() -> set[str]:
    paths = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        paths.add(line.split()[4].replace("\\040", " "))
    return paths


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def inner(pytester: pytest.Pytester, tmp_path: Path):
    """The inner project: conftest with ``record``, trio_mode on; yields a helper that lists the
    recorded mounts."""
    record = tmp_path / "mounts.jsonl"
    pytester.makeconftest(CONFTEST.format(record=str(record)))
    pytester.makeini("[pytest]\ntrio_mode = true\n")

    class Inner:
        def mounts(self) -> list[dict]:
            if not record.exists():
                return []
            return [json.loads(line) for line in record.read_text().splitlines()]

        def assert_clean(self, expected: int, wait: float = 0.0) -> None:
            ms = self.mounts()
            assert len(ms) == expected, ms
            deadline = time.monotonic() + wait
            while True:
                left = [m for m in ms if m["path"] in mounted_paths() or alive(m["pid"])]
                if not left or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert not left, f"left behind: {left}"
            assert not any(os.path.exists(m["path"]) for m in ms)

    yield Inner()
    for m in Inner().mounts():  # never leave anything, even when an assertion above failed
        if m["path"] in mounted_paths():
            subprocess.run(["fusermount3", "-u", "-z", m["path"]], capture_output=True)
        if alive(m["pid"]):
            os.kill(m["pid"], signal.SIGKILL)
        if os.path.isdir(m["path"]) and m["path"] not in mounted_paths():
            os.rmdir(m["path"])


def test_passing_test_gets_a_live_table_and_typed_results(pytester, inner):
    pytester.makepyfile(textwrap.dedent("""
        import concurrent.futures, errno, os, pytest
        from conftest import record
        from pidfs_fuse.pytest_plugin import WaitStatus

        def test_drive_the_table(pidfs):
            record(pidfs)
            assert pidfs.client is pidfs and os.path.ismount(pidfs.path)
            pid = pidfs.clone(1, comm="worker", argv=["worker", "--id", "a b"])
            assert isinstance(pid, int)
            assert (pidfs.path / str(pid) / "comm").read_text() == "worker\\n"
            assert (pidfs.path / str(pid) / "cmdline").read_bytes() == b"worker\\0--id\\0a b\\0"
            tids = pidfs.clone(pid, thread=True, count=3)
            assert len(tids) == 3 and all(isinstance(t, int) for t in tids)
            assert pidfs.show(pid)["Threads"] == "4"
            pidfs.exec(tids[1], "newname")              # de_thread: takes over the leader's pid
            assert pidfs.show(pid)["Name"] == "newname" and pidfs.show(pid)["Threads"] == "1"
            assert pidfs.setsid(pid) == pid
            pidfs.set(pid, nice=5, sigign=["PIPE", "HUP"], environ=["A=1", "B=two words"])
            assert "A=1\\0B=two words\\0" == (pidfs.path / str(pid) / "environ").read_text()
            assert pidfs.wait(1, pid=pid, nohang=True) is None
            # a wait blocked in another thread holds up no other command
            with concurrent.futures.ThreadPoolExecutor() as pool:
                waiting = pool.submit(pidfs.wait, 1, pid=pid)
                assert not waiting.done()
                pidfs.kill(pid, "TERM")
                assert waiting.result(timeout=30) == WaitStatus(pid, "killed", 15)
            with pytest.raises(ProcessLookupError, match=r"kill: no task with pid 99999"):
                pidfs.kill(99999, 9)
            with pytest.raises(OSError) as e:
                pidfs.clone(1, set_tid=[1])
            assert e.value.errno == errno.EEXIST and str(e.value).startswith("[Errno 17] clone: ")
            with pytest.raises(OSError) as e:
                pidfs.raw("frobnicate 1")
            assert e.value.errno == errno.EINVAL and "unknown command" in e.value.strerror
            assert pidfs.raw("help wait").startswith("wait PARENT")
            ns = pidfs.unshare(pid2 := pidfs.clone(1))
            assert ns > 0 and pidfs.clone(pid2) and pidfs.ps()[0].comm == "systemd"
    """))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    inner.assert_clean(1)


def test_failing_test_still_unmounts(pytester, inner):
    pytester.makepyfile(textwrap.dedent("""
        from conftest import record

        def test_fails(pidfs):
            record(pidfs)
            fd = os.open(pidfs.path / "1" / "status", os.O_RDONLY)  # an open file: umount is busy
            assert pidfs.clone(1) == 0

        import os
    """))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    inner.assert_clean(1)


def test_trio_test_waits_without_blocking_the_event_loop(pytester, inner):
    pytester.makepyfile(textwrap.dedent("""
        import pytest, trio, trio.testing
        from conftest import record

        async def test_wait_in_a_worker_thread(pidfs):
            record(pidfs)
            pid = await pidfs.aio.clone(1, comm="sleeper")
            got = []

            async def waiter():
                got.append(await pidfs.aio.wait(1, pid=pid))   # blocks a thread, not trio

            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(waiter)
                    await trio.testing.wait_all_tasks_blocked()
                    assert got == []
                    await pidfs.aio.kill(pid, "KILL")
            assert [(s.pid, s.kind, s.code, s.status) for s in got] == [(pid, "killed", 9, 9)]
    """))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    inner.assert_clean(1)


def test_two_mounts_in_one_test_are_independent(pytester, inner):
    pytester.makefile(".toml", small=textwrap.dedent("""
        [[process]]
        name = "only"
        comm = "only-one"
        set_tid = [4242]
    """))
    pytester.makepyfile(textwrap.dedent("""
        import os
        from conftest import record

        def test_two(pidfs, pidfs_factory):
            other = pidfs_factory("small.toml", tgid_scan="linear")
            record(pidfs); record(other)
            assert pidfs.path != other.path and pidfs.server_pid != other.server_pid
            pid = pidfs.clone(1, comm="here")
            assert not os.path.exists(other.path / str(pid))
            assert [r.comm for r in other.ps()] == ["init", "only-one"]
            assert other.clone(1) == 2 and pidfs.show(pid)["Name"] == "here"
    """))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    inner.assert_clean(2)


def test_snapshot_then_restore_through_the_factory(pytester, inner):
    pytester.makepyfile(textwrap.dedent("""
        from conftest import record

        def test_copy(pidfs, pidfs_factory, tmp_path):
            record(pidfs)
            pid = pidfs.clone(1, comm="kept", pidfd=True)
            pidfs.exit_group(pid, 4)
            pidfs.snapshot(tmp_path / "table.snap")
            copy = pidfs_factory(restore=tmp_path / "table.snap")
            record(copy)
            assert copy.ps() == pidfs.ps() and copy.show(pid)["Exited"] == "zombie"
            assert copy.clone(1) == pidfs.clone(1)  # the same cursor
            assert copy.wait(1, pid=pid).code == 4
    """))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    inner.assert_clean(2)


def test_marker_and_indirect_parametrization_choose_the_table(pytester, inner):
    pytester.makefile(".toml", wrap=textwrap.dedent("""
        [kernel]
        pid_max = 400
        ns_last_pid = 398
    """))
    pytester.makepyfile(textwrap.dedent("""
        import pytest
        from conftest import record

        @pytest.mark.pidfs_scenario("wrap.toml", options="hidepid=2")
        def test_marker(pidfs):
            record(pidfs)
            assert pidfs.clone(1, count=2) == [399, 300]
            assert (pidfs.path / "sys/kernel/pid_max").read_text() == "400\\n"

        @pytest.mark.parametrize("pidfs", [None, "wrap.toml", {"scenario": "wrap.toml"}],
                                 indirect=True, ids=["default", "path", "dict"])
        def test_indirect(pidfs, request):
            record(pidfs)
            want = "32768\\n" if request.node.callspec.id == "default" else "400\\n"
            assert (pidfs.path / "sys/kernel/pid_max").read_text() == want
    """))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    inner.assert_clean(4)


def test_a_large_scenario_mounts_past_its_progress_reports(pytester, inner):
    big = Path(__file__).resolve().parents[1] / "examples" / "scenarios" / "threads-100k.toml"
    pytester.makepyfile(textwrap.dedent(f"""
        import pytest
        from conftest import record

        @pytest.mark.pidfs_scenario({str(big)!r})
        def test_big(pidfs):
            record(pidfs)
            server = next(r for r in pidfs.ps() if r.comm == "server")
            assert server.nlwp == 100_000
            assert "Threads:\\t100000\\n" in (pidfs.path / str(server.pid) / "status").read_text()
    """))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    inner.assert_clean(1)


def test_bad_scenario_is_a_setup_error_naming_the_entry(pytester, inner):
    pytester.makefile(".toml", bad='[[process]]\nname = "a"\nthreads = "x"\n')
    pytester.makepyfile(textwrap.dedent("""
        import pytest

        @pytest.mark.pidfs_scenario("bad.toml")
        def test_never_runs(pidfs):
            pass
    """))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*MountError: could not mount *bad.toml: line 1: process[[]0[]].threads: "
                                 "expected an integer >= 0 or an array of tables, got \"x\""])
    assert not [p for p in mounted_paths() if "pidfs-pytest-" in p and str(pytester.path) in p]


def test_readme_example_tests_a_toy_proc_parser(pytester, inner):
    section = README.read_text().split("## Testing a /proc parser with pytest", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "def test_" in code and "pidfs" in code
    pytester.makepyfile(test_readme=code)
    pytester.makepyfile(test_record="from conftest import record\n"
                                    "def test_one(pidfs):\n    record(pidfs)\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_parser_sees_odd_names_zombies_and_reaping PASSED*"])
    inner.assert_clean(1)


# -- interruptions: the run is a subprocess that we stop ------------------------------------


def run_inner(pytester, code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    pytester.makepyfile(textwrap.dedent(code))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                          cwd=pytester.path, capture_output=True, text=True, timeout=timeout)


def test_keyboard_interrupt_unmounts(pytester, inner):
    r = run_inner(pytester, """
        from conftest import record

        def test_interrupted(pidfs, pidfs_factory):
            record(pidfs); record(pidfs_factory())
            raise KeyboardInterrupt
    """)
    assert r.returncode == 2 and "KeyboardInterrupt" in r.stdout, r.stdout + r.stderr
    inner.assert_clean(2)


def test_sigterm_of_the_test_run_unmounts(pytester, inner):
    r = run_inner(pytester, """
        import os, signal, time
        from conftest import record

        def test_terminated(pidfs):
            record(pidfs)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
    """)
    assert r.returncode == -signal.SIGTERM, r.stdout + r.stderr
    inner.assert_clean(1)


def test_sigkill_of_the_test_run_lets_the_server_unmount_itself(pytester, inner):
    r = run_inner(pytester, """
        import os, signal
        from conftest import record

        def test_killed(pidfs):
            record(pidfs)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert r.returncode == -signal.SIGKILL, r.stdout + r.stderr
    # nobody ran a finalizer: the server saw its parent die (PR_SET_PDEATHSIG) and unmounted
    path = inner.mounts()[0]["path"]
    deadline = time.monotonic() + 20
    while path in mounted_paths():
        assert time.monotonic() < deadline, "the server outlived the killed test run"
        time.sleep(0.05)
    os.rmdir(path)  # the empty directory is the one thing a killed run leaves
    inner.assert_clean(1, wait=10)


def test_parallel_runs_do_not_share_mounts(pytester, inner):
    pytester.makepyfile(textwrap.dedent("""
        import os, time
        from conftest import record

        def test_hold(pidfs):
            record(pidfs)
            pids = pidfs.clone(1, count=50)
            time.sleep(1)  # overlap with the other run
            assert [os.path.isdir(pidfs.path / str(p)) for p in pids] == [True] * 50
    """))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    procs = [subprocess.Popen(cmd, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(3)]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    ms = inner.mounts()
    assert len({m["path"] for m in ms}) == 3
    inner.assert_clean(3)
