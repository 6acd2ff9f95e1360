"""``pidfs_fuse.capture`` against real tables: this machine's /proc captured, mounted and read
by procps through a private /proc; a pidfs-fuse mount captured and mounted again (the capture of
the mount of a capture is that capture)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from pidfs_fuse import capture as C

from .conftest import in_private_proc, run_cli

PS = "ps -eo pid=,ppid=,pgid=,sid=,nlwp=,comm="
COLUMNS = ("pid", "ppid", "pgid", "sid", "nlwp", "comm")


def rows(text: str) -> dict[int, tuple]:
    out = {}
    for line in text.splitlines():
        pid, ppid, pgid, sid, nlwp, comm = line.split(None, 5)
        out[int(pid)] = (int(pid), int(ppid), int(pgid), int(sid), int(nlwp), comm)
    return out


def host_ps() -> dict[int, tuple]:
    return rows(subprocess.run(PS.split(), capture_output=True, text=True, check=True).stdout)


def mount_ps(mount) -> dict[int, tuple]:
    r = in_private_proc(mount, PS)
    assert r.returncode == 0, r.stderr
    return rows(r.stdout)


def data(text: str) -> dict:
    """The scenario without what changes while a mount runs (its clock: uptime)."""
    d = tomllib.loads(text)
    del d["kernel"]["uptime"]
    return d


def mount_capture(mount_table, tmp_path, cap: C.Capture, name: str):
    f = tmp_path / name
    f.write_text(cap.text)
    # frozen: on a real clock the captured R tasks accrue cpu time while the test reads them
    return mount_table("--scenario", str(f), "--clock", "frozen")


def test_capture_of_this_machine_shows_the_same_ps_rows_except_what_the_model_cannot_carry(
        mount_table, tmp_path):
    before = host_ps()
    cap = C.capture("/proc")
    after = host_ps()
    assert cap.unexpected == []
    m = mount_capture(mount_table, tmp_path, cap, "machine.toml")
    shown = mount_ps(m)
    # every captured process is listed, and nothing else
    assert set(shown) == set(cap.machine.procs)
    # processes that did not change while captured: each column is the host's, or exactly what
    # the capture said the model shows instead (and why)
    stable = {pid: row for pid, row in before.items() if after.get(pid) == row and pid in shown}
    assert 1 in stable
    differ: dict[str, int] = {}
    for pid, row in stable.items():
        devs = {d.field: d for d in cap.deviations if d.pid == pid}
        want = tuple(devs[c].model if c in devs else v for c, v in zip(COLUMNS, row, strict=True))
        assert shown[pid] == want, (pid, row, devs)
        for c in devs.keys() & set(COLUMNS):
            differ[devs[c].reason] = differ.get(devs[c].reason, 0) + 1
    equal = sum(1 for pid, row in stable.items() if shown[pid] == row)
    print(f"\ncapture of /proc: {len(stable)} stable processes, {equal} rows equal, "
          f"{len(stable) - equal} differ")
    for reason, n in sorted(differ.items(), key=lambda x: -x[1]):
        print(f"  {n:4d} x {reason}")


def test_capture_of_the_mount_of_a_machine_capture_is_that_capture(mount_table, tmp_path):
    cap = C.capture("/proc")
    m = mount_capture(mount_table, tmp_path, cap, "machine.toml")
    again = C.capture(str(m))
    # the mount answers sys/kernel/hostname (procfs/system.py's "pidfs"): the capture of the
    # mount is named after it; everything else is the first capture
    assert data(again.text) == {**data(cap.text), "name": "capture of pidfs"}
    # what the first capture could not carry is now what the table holds exactly
    assert again.deviations == []


def test_default_table_round_trips_through_capture_with_every_ps_row_equal(mount_table, tmp_path):
    first = mount_table()
    cap = C.capture(str(first))
    # the default table's non-root parents (postgres, java, alice's shell...) load as uid 0
    assert {(d.field, d.reason) for d in cap.deviations} == {
        ("uid", "a process that creates threads or processes with set_tid is loaded as uid 0")}
    assert "session-405" in cap.text  # cron's double fork: its session's leader is gone
    second = mount_capture(mount_table, tmp_path, cap, "default-capture.toml")
    cols = "ps -eo pid=,ppid=,pgid=,sid=,nlwp=,stat=,tty=,comm="
    a, b = in_private_proc(first, cols), in_private_proc(second, cols)
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    assert b.stdout == a.stdout
    assert len(a.stdout.splitlines()) == 33
    assert data(C.capture(str(second)).text) == data(cap.text)


EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "scenarios"


def namespace_limits(mount) -> dict[int, tuple[str, ...]]:
    """namespace init (root number) -> its namespace's pid_max and ns_last_pid, read through the
    mount's /.pidns/<inum>/ view (inode numbers differ between tables; init numbers do not)."""
    out = {}
    for d in Path(str(mount)).iterdir():
        if not d.name.isdigit():
            continue
        nspid = next(line.split()[1:] for line in (d / "status").read_text().splitlines()
                     if line.startswith("NSpid:"))
        if len(nspid) > 1 and nspid[-1] == "1":
            view = Path(str(mount)) / ".pidns" / (d / "ns/pid").readlink().name[5:-1]
            out[int(d.name)] = tuple((view / "sys/kernel" / f).read_text() for f in ("pid_max", "ns_last_pid"))
    return out


@pytest.mark.parametrize(("scenario", "namespaces"), [("container-host", 3), ("daemons", 0), ("pid-wrap", 1)])
def test_example_tables_round_trip_through_capture_with_every_task_row_equal(
        mount_table, tmp_path, scenario, namespaces):
    # nested namespaces with subreapers and zombies; daemonized sessions and groups whose
    # leaders are gone; numbers about to wrap at a small pid_max
    first = mount_table("--scenario", str(EXAMPLES / f"{scenario}.toml"))
    cap = C.capture(str(first))
    assert cap.deviations == []
    second = mount_capture(mount_table, tmp_path, cap, f"{scenario}-capture.toml")
    cols = "ps -eLo pid=,lwp=,ppid=,pgid=,sid=,nlwp=,stat=,tty=,uid=,comm="
    a, b = in_private_proc(first, cols), in_private_proc(second, cols)
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    assert b.stdout == a.stdout
    for name in ("loadavg", "sys/kernel/ns_last_pid", "sys/kernel/pid_max"):
        assert (second / name).read_text() == (first / name).read_text(), name
    limits = namespace_limits(first)
    assert len(limits) == namespaces
    assert namespace_limits(second) == limits
    assert data(C.capture(str(second)).text) == data(cap.text)


def test_a_real_pid_namespace_is_captured_with_its_numbers_at_both_levels(mount_table, tmp_path):
    outer = subprocess.Popen(["unshare", "--pid", "--fork", "sh", "-c", "sleep 60 & sleep 60 & wait"])
    init = None
    try:
        deadline = time.monotonic() + 10
        members: list[int] = []
        while time.monotonic() < deadline:
            kids = Path(f"/proc/{outer.pid}/task/{outer.pid}/children").read_text().split()
            if kids:
                init = int(kids[0])
                members = [init, *map(int, Path(f"/proc/{init}/task/{init}/children").read_text().split())]
                if len(members) == 3:
                    break
            time.sleep(0.02)
        assert len(members) == 3

        def nspid(root: str, pid: int) -> str:
            lines = Path(f"{root}/{pid}/status").read_text().splitlines()
            return next(line for line in lines if line.startswith("NSpid:"))

        host = {pid: nspid("/proc", pid) for pid in members}
        assert host[init].split()[1:] == [str(init), "1"]
        cap = C.capture("/proc")
        assert cap.unexpected == []
        assert {pid: cap.machine.procs[pid].leader.nspid for pid in members} == {
            pid: (pid, int(host[pid].split()[2])) for pid in members}
        m = mount_capture(mount_table, tmp_path, cap, "machine.toml")
        assert {pid: nspid(str(m), pid) for pid in members} == host
        shown = mount_ps(m)
        assert [shown[pid][1] for pid in members] == [outer.pid, init, init]
    finally:
        if init is not None:
            os.kill(init, signal.SIGKILL)  # the namespace's init: its members die with it
        outer.kill()
        outer.wait(timeout=10)


def test_capture_command_writes_the_scenario_and_says_what_differs(mnt, tmp_path):
    out = tmp_path / "table.toml"
    r = run_cli("capture", str(mnt), "-o", str(out))
    assert r.stdout == ""
    assert r.stderr == ("pidfs-fuse capture: 33 processes, 74 tasks; 7 shown differently by the model "
                        "(see the header)\n")
    assert data(out.read_text()) == data(C.capture(str(mnt)).text)
    r = run_cli("capture", str(tmp_path / "nothing"), check=False)
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == f"pidfs-fuse capture: {tmp_path / 'nothing'}: No such file or directory\n"
    assert not (tmp_path / "nothing").exists()
