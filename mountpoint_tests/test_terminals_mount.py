"""Terminals on a real mount (issue 10 point 6): ``ps``'s TPGID is the terminal's foreground
group for every process on it and ``+`` marks that group only, set with the ``tty`` and
``tcsetpgrp`` control commands."""

from __future__ import annotations

from .conftest import in_private_proc

PTS3 = 136 << 8 | 3


def _ps(mnt, pids):
    """PID TPGID STAT rows (no TTY column: ps names a terminal from this machine's /dev/pts)."""
    r = in_private_proc(mnt, "ps -o pid=,tpgid=,stat= -p " + ",".join(map(str, pids)))
    assert r.returncode == 0, r.stderr
    return [line.split() for line in r.stdout.splitlines()]


def test_plus_marks_only_the_foreground_group(mnt):
    sh = mnt.new(1, "comm=bash")
    assert mnt.ctl("setsid", str(sh)) == f"{sh}\n"
    assert mnt.ctl("tty", str(sh), "pts/3") == ""
    vim = mnt.new(sh, "comm=vim")
    mnt.ctl("setpgid", str(vim), "0")
    mnt.ctl("kill", str(vim), "STOP")
    make = mnt.new(sh, "comm=make")
    mnt.ctl("setpgid", str(make), "0")
    lone = mnt.new(1, "comm=daemon")
    assert _ps(mnt, [sh, vim, make, lone]) == [
        [str(sh), str(sh), "Ss+"],
        [str(vim), str(sh), "T"],  # a stopped background job: no '+'
        [str(make), str(sh), "S"],
        [str(lone), "-1", "S"],
    ]
    assert mnt.ctl("tcsetpgrp", str(sh), str(make)) == ""
    assert _ps(mnt, [sh, vim, make]) == [
        [str(sh), str(make), "Ss"],
        [str(vim), str(make), "T"],
        [str(make), str(make), "S+"],
    ]
    stat = (mnt / f"{vim}/stat").read_text().rsplit(") ", 1)[1].split()
    assert stat[4:6] == [str(PTS3), str(make)]


def test_bad_terminal_commands_fail_and_change_nothing(mnt):
    sh = mnt.new(1, "comm=bash")
    mnt.ctl("setsid", str(sh))
    mnt.ctl("tty", str(sh), "pts/3")
    assert mnt.ctl("tcsetpgrp", str(sh), "1", check=False) == (
        "tcsetpgrp: process group 1 is in another session\n")
    assert mnt.ctl("tty", "1", "pts/3", check=False) == (
        "tty: terminal 34819 controls session " + str(sh) + " already\n")
    assert mnt.ctl("tty", str(sh), "pts/x", check=False).startswith(
        "tty: 'pts/x' is not a terminal: expected pts/N")
    stat = (mnt / f"{sh}/stat").read_text().rsplit(") ", 1)[1].split()
    assert stat[4:6] == [str(PTS3), str(sh)]
    assert (mnt / "1/stat").read_text().rsplit(") ", 1)[1].split()[4:6] == ["0", "-1"]
