"""The example scenarios mounted with ``pidfs-fuse mount DIR --scenario FILE`` and read by procps
through a private /proc; a bad scenario file is one clear line, a non-zero exit and no mount."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from .conftest import in_private_proc, run_cli, server_pid

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "scenarios"


def ps(mount, args: str, columns: int = 5) -> list[list[str]]:
    """``ps ARGS`` through a private /proc; rows split into at most ``columns`` fields."""
    r = in_private_proc(mount, f"ps {args}")
    assert r.returncode == 0, r.stderr
    return [line.split(None, columns - 1) for line in r.stdout.splitlines()]


def test_container_host_ps_eL_shows_every_thread_and_nested_numbers(mount_table):
    m = mount_table("--scenario", str(EXAMPLES / "container-host.toml"))
    rows = ps(m, "-eL -o pid=,lwp=,ppid=,stat=,comm=")
    # 91 tasks: every thread of every namespace, seen from the root namespace
    assert len(rows) == 91
    by_pid = {}
    for pid, lwp, ppid, stat, comm in rows:
        by_pid.setdefault(int(pid), []).append((int(lwp), int(ppid), stat, comm))
    assert len(by_pid[3]) == 13 and {r[3] for r in by_pid[3]} == {"containerd"}
    # the build container's init, two levels down, and its zombie
    assert by_pid[7001][0][:2] == (7001, 80) and by_pid[7001][0][3] == "sh"
    assert [r for r in by_pid[90]] == [(90, 88, "Z", "ld")]
    status = (m / "7001" / "status").read_text()
    assert "\nNSpid:\t7001\t60\t1\n" in status and "\nNSsid:\t7001\t60\t1\n" in status


def test_zombie_storm_ps_shows_two_thousand_defunct_children(mount_table):
    m = mount_table("--scenario", str(EXAMPLES / "zombie-storm.toml"))
    rows = ps(m, "-e -o pid=,ppid=,stat=,args=", columns=4)
    sup = next(int(r[0]) for r in rows if r[3:] == ["/usr/local/bin/jobrunner --no-reap"])
    zombies = [r for r in rows if r[2] == "Z"]
    assert len(zombies) == 2000
    assert all(int(r[1]) == sup and r[3] == "[job] <defunct>" for r in zombies)
    reply = m.ctl("wait", str(sup))
    assert reply.split()[1:] == ["exited", "0"]
    assert len([r for r in ps(m, "-e -o stat=") if r == ["Z"]]) == 1999


def test_pid_wrap_next_clones_wrap_to_300(mount_table):
    m = mount_table("--scenario", str(EXAMPLES / "pid-wrap.toml"))
    assert (m / "sys/kernel/ns_last_pid").read_text() == "32766\n"
    assert m.new(32760) == 32767
    assert m.new(1) == 300
    assert "\nNSpid:\t32767\t300\n" in (m / "32767" / "status").read_text()
    rows = ps(m, "-e -o pid=")
    assert [int(r[0]) for r in rows][-3:] == [32765, 32766, 32767]
    assert 300 in [int(r[0]) for r in rows]


BAD = {
    "schema": ("""
        [[process]]
        name = "a"
        [[process]]
        name = "b"
        [[process]]
        name = "c"
        [[process]]
        name = "d"
        threads = "many"
    """, 'process[3].threads: expected an integer >= 0 or an array of tables, got "many"'),
    "replayed-call": ("""
        [[process]]
        name = "a"
        set_tid = [50]
        [[process]]
        name = "b"
        set_tid = [50]
    """, "process[1] (b): clone: EEXIST"),
    "toml": ("[[process]\n", "invalid TOML"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_scenario_is_one_line_nonzero_and_nothing_mounted(tmp_path, case):
    text, expected = BAD[case]
    f = tmp_path / "bad.toml"
    f.write_text(textwrap.dedent(text))
    d = tmp_path / "mnt"
    d.mkdir()
    r = run_cli("mount", str(d), "--scenario", str(f), check=False)
    try:
        assert r.returncode != 0
        lines = r.stderr.splitlines()
        assert len(lines) == 1, r.stderr
        assert lines[0].startswith(f"pidfs-fuse: could not mount {d}: {f}: ") and expected in lines[0]
        assert r.stdout == ""
        assert not os.path.ismount(d) and os.listdir(d) == []
        assert str(d) not in Path("/proc/self/mountinfo").read_text()
        assert server_pid(str(d)) is None
    finally:
        if os.path.ismount(d):
            run_cli("unmount", str(d), check=False)


def test_tree_of_a_mount_draws_the_live_table(mount_table):
    f = str(EXAMPLES / "container-host.toml")
    m = mount_table("--scenario", f)
    for fmt in ("text", "dot"):
        live = run_cli("tree", m.path, "--format", fmt, "--color", "always").stdout
        offline = run_cli("tree", "--scenario", f, "--format", fmt, "--color", "always").stdout
        assert live == offline and live
    child = m.new(80, "pidfd", "comm=late")  # the build container's shim, holding a pidfd
    m.ctl("exit_group", str(child), "7")
    text = run_cli("tree", m.path).stdout  # not a terminal: no colour
    assert "\x1b[" not in text
    lines = text.splitlines()
    shim = next(i for i, ln in enumerate(lines) if "80/22 containerd-shim" in ln)
    assert lines[shim + 1].endswith(f"├─ fd 3 → pidfd {child}/33")
    assert any(ln.endswith(f"─ {child}/33 late Z · exited 7 · 1 open handle") for ln in lines)
    # the snapshot went to a temporary file that is gone again
    assert not [p for p in os.listdir("/tmp") if p.startswith("pidfs-tree-")]


def test_daemons_list_the_same_with_either_scan_and_keep_ghost_session_ids(mount_table):
    f = str(EXAMPLES / "daemons.toml")
    tagged, linear = mount_table("--scenario", f), mount_table("--scenario", f, "--tgid-scan", "linear")
    listing = sorted(int(n) for n in os.listdir(tagged.path) if n.isdigit())
    assert listing == sorted(int(n) for n in os.listdir(linear.path) if n.isdigit())
    assert listing == [1, 4, 10, 13, 16, 17, 20, 23, 24, 25]
    rows = {int(r[0]): (int(r[1]), r[2]) for r in ps(tagged, "-e -o pid=,sid=,comm=", columns=3)}
    ghosts = {sid for sid, _ in rows.values()} - set(rows)
    assert ghosts == {3, 9, 12, 15, 19, 22}  # session ids that no process has
    assert rows[24] == (22, "legacyd") and rows[17] == (17, "sshd")
