"""Controlling terminals and their foreground group (kernel/terminals.py): stat's tpgid is the
terminal's foreground group for every process on it, -1 without a terminal."""

from __future__ import annotations

import errno

import pytest

from pidfs_fuse import scenario
from pidfs_fuse.control import Control
from pidfs_fuse.kernel import Kernel, KernelError, Task
from pidfs_fuse.kernel.terminals import parse_tty
from pidfs_fuse.procfs import files as F
from pidfs_fuse.procfs.view import View

PTS3 = 136 << 8 | 3


def _stat(k: Kernel, t: Task) -> list[bytes]:
    """state, ppid, pgrp, session, tty_nr, tpgid."""
    return F.show_tgid_stat(View(k, k.root_ns), t).split(b") ")[1].split()[:6]


def shell() -> tuple[Kernel, Task, Task, Task]:
    k = Kernel()
    sh = k.clone(k.init).task
    k.setsid(sh)
    k.set_ctty(sh, PTS3)
    job = k.clone(sh).task
    k.setpgid(job, 0, 0)
    other = k.clone(k.init).task
    return k, sh, job, other


def test_parse_tty_encodes_as_new_encode_dev() -> None:
    assert parse_tty("pts/3") == PTS3
    assert parse_tty("pts/300") == (300 & 0xFF) | 136 << 8 | (300 & ~0xFF) << 12
    assert parse_tty("tty1") == 4 << 8 | 1
    assert parse_tty("ttyS0") == 4 << 8 | 64
    assert parse_tty("34816") == 34816
    for bad in ("", "pts/", "pts/x", "0", "4294967296", "/dev/pts/1"):
        with pytest.raises(KernelError) as e:
            parse_tty(bad)
        assert e.value.errno == errno.EINVAL and "is not a terminal" in str(e.value)


def test_every_process_on_the_terminal_shows_its_foreground_group() -> None:
    k, sh, job, other = shell()
    n = sh.pid.nr
    j = job.pid.nr
    assert _stat(k, sh)[4:] == [str(PTS3).encode(), str(n).encode()]
    assert _stat(k, job)[4:] == [str(PTS3).encode(), str(n).encode()]  # not its own group
    assert _stat(k, other)[4:] == [b"0", b"-1"]
    k.tcsetpgrp(sh, j)
    assert _stat(k, sh)[5] == _stat(k, job)[5] == str(j).encode()
    child = k.clone(job).task
    assert _stat(k, child)[4:] == [str(PTS3).encode(), str(j).encode()]
    k.setsid(child)  # a new session leaves the terminal
    assert _stat(k, child)[4:] == [b"0", b"-1"]


def test_tcsetpgrp_refuses_and_changes_nothing() -> None:
    k, sh, _job, other = shell()
    fg = k.foreground(sh.group)
    for who, pgid, err in ((other, 1, errno.ENOTTY), (sh, 999, errno.ESRCH), (sh, 1, errno.EPERM),
                           (sh, -1, errno.EINVAL)):
        with pytest.raises(KernelError) as e:
            k.tcsetpgrp(who, pgid)
        assert e.value.errno == err
    assert k.foreground(sh.group) is fg


def test_set_ctty_needs_a_session_leader_and_a_free_terminal() -> None:
    k, _sh, job, other = shell()
    with pytest.raises(KernelError) as e:
        k.set_ctty(job, 34816)
    assert e.value.errno == errno.EPERM and "leads no session" in str(e.value)
    k.setsid(other)
    with pytest.raises(KernelError) as e:
        k.set_ctty(other, PTS3)
    assert e.value.errno == errno.EPERM and "controls session" in str(e.value)
    assert other.group.tty_nr == 0


def test_a_table_that_only_sets_tty_nr_has_the_session_in_front() -> None:
    k = Kernel()
    sh = k.clone(k.init).task
    k.setsid(sh)
    sh.group.tty_nr = PTS3
    job = k.clone(sh).task
    k.setpgid(job, 0, 0)
    assert _stat(k, job)[5] == str(sh.pid.nr).encode()
    k.tcsetpgrp(job, job.pid.nr)
    assert _stat(k, sh)[5] == str(job.pid.nr).encode()


def test_control_commands() -> None:
    k = Kernel()
    c = Control(k, k.root_ns)
    sh = k.clone(k.init).task
    k.setsid(sh)
    assert c.parse(f"tty {sh.pid.nr} pts/3").run() == ""
    job = k.clone(sh).task
    k.setpgid(job, 0, 0)
    assert c.parse(f"tcsetpgrp {sh.pid.nr} {job.pid.nr}").run() == ""
    assert k.tpgid_in(sh.group, k.root_ns) == job.pid.nr
    with pytest.raises(KernelError) as e:
        c.parse(f"tty {sh.pid.nr} pts/x")
    assert e.value.errno == errno.EINVAL and "'pts/x' is not a terminal" in str(e.value)
    assert sh.group.tty_nr == PTS3


def test_scenario_keys() -> None:
    sc = scenario.loads('[[process]]\nname = "bash"\nsetsid = true\ntty = "pts/3"\n'
                        '[[process]]\nname = "vim"\nparent = "bash"\npgid = "vim"\n'
                        '[[process]]\nname = "make"\nparent = "bash"\npgid = "make"\nforeground = true\n')
    k = sc.kernel
    make = sc.tasks["make"]
    for n in ("bash", "vim", "make"):
        assert _stat(k, sc.tasks[n])[4:] == [str(PTS3).encode(), str(make.pid.nr).encode()]
    with pytest.raises(scenario.ScenarioError) as e:
        scenario.loads('[[process]]\nname = "x"\ntty = "pts/1"\n')
    assert "process[0].tty" in str(e.value) and "leads no session" in str(e.value)

