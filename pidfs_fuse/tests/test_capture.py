"""``pidfs_fuse.capture`` without a mount: tables built as the reader would have read them
(``Machine``/``ProcInfo``) are planned, written and loaded back, and the files of a fake procfs
directory are parsed. The tests against this machine's /proc and a real mount are in
mountpoint_tests/test_capture_mount.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from pidfs_fuse import capture as C
from pidfs_fuse.kernel import ExitState
from pidfs_fuse.kernel.task import comm_cut
from pidfs_fuse.scenario import loads

HZ = 100


def proc(tgid: int, ppid: int, pgid: int, sid: int, *, nspid: tuple[int, ...] | None = None,
         nspgid: tuple[int, ...] | None = None, nssid: tuple[int, ...] | None = None,
         comm: str | None = None, start: int = 100, uid: int = 0, gid: int = 0, state: str = "S",
         threads: int = 0, exit_code: int = 0, argv: list[str] | None = None,
         environ: list[str] | None = None, tty_nr: int = 0, pidns: int | None = None,
         cwd: str | None = "/") -> C.ProcInfo:
    nspid = nspid or (tgid,)
    comm = comm or f"p{tgid}"
    leader = C.TaskInfo(tgid, nspid, comm, state, 0, 0, 0, start)
    p = C.ProcInfo(leader=leader, ppid=ppid, pgid=pgid, sid=sid, nspgid=nspgid or (pgid,),
                   nssid=nssid or (sid,), uid=uid, gid=gid, tty_nr=tty_nr, cutime=0, cstime=0,
                   vsize=0, rss=0, exit_code=exit_code, sigign=0, kthread=False,
                   argv=argv if argv is not None else [comm], environ=environ or [],
                   cwd=cwd, root="/", pidns=pidns)
    for i in range(threads):
        tid = nspid[0] + 1 + i
        p.threads.append(C.TaskInfo(tid, (tid, *nspid[1:-1], nspid[-1] + 1 + i) if len(nspid) > 1
                                    else (tid,), comm, "S", 0, 0, 0, start))
    return p


def machine(*procs: C.ProcInfo, init: C.ProcInfo | None = None) -> C.Machine:
    init = init or proc(1, 0, 1, 1, comm="init", start=0)
    table = {p.tgid: p for p in (init, *procs)}
    return C.Machine(source="test", hostname="host", hz=HZ, uptime=500.0, pid_max=32768,
                     ns_last_pid=None, procs=table)


def entries(text: str) -> dict[str, dict]:
    return {e["name"]: e for e in tomllib.loads(text).get("process", [])}


def model_rows(text: str) -> dict[int, tuple[int, int, int, int, str]]:
    """pid -> (ppid, pgid, sid, nlwp, comm) of the loaded scenario, root namespace numbers."""
    k = loads(text).kernel
    ns = k.root_ns
    out = {}
    for nr, t in k.iter_tgids(ns):
        if t.exit_state is ExitState.DEAD:
            continue
        g = t.group
        ppid = g.parent.group.leader.pid.nr_in(ns) if g.parent is not None else 0
        assert g.pgrp is not None and g.session is not None
        out[nr] = (ppid, g.pgrp.nr_in(ns), g.session.nr_in(ns), len(g.threads), t.comm)
    return out


def captured_rows(m: C.Machine) -> dict[int, tuple[int, int, int, int, str]]:
    return {p.tgid: (p.ppid, p.pgid, p.sid, len(p.threads) + 1, comm_cut(p.leader.comm))
            for p in m.procs.values()}


# -- sessions and groups whose leader has gone ------------------------------------------------

def test_reparented_member_of_a_live_session_with_a_vanished_group_comes_from_a_group_stand_in():
    # `(make &)` typed in bash 100: the subshell 203 led group 203 and exited; make (205) was
    # reparented to init but is still in bash's session and group 203
    m = machine(proc(100, 1, 100, 100, start=10),
                proc(205, 1, 203, 100, start=20),
                proc(206, 205, 203, 100, start=21))
    cap = C.capture_machine(m)
    es = entries(cap.text)
    assert es["pgrp-203"] == {"name": "pgrp-203", "parent": "100", "comm": "stand-in", "set_tid": [203],
                              "pgid": "pgrp-203", "start": 0.205, "autoreap": True, "exit": 0}
    assert es["205"]["parent"] == "pgrp-203" and "pgid" not in es["205"]
    assert es["206"]["parent"] == "205"
    assert cap.deviations == []
    assert model_rows(cap.text) == captured_rows(m)


def test_session_whose_leader_exited_is_held_by_a_stand_in_and_its_parent_becomes_a_subreaper():
    # 50 (a service manager) started 55, which called setsid, forked 60 and exited: Linux gave
    # 60 to 50 rather than init only if 50 is a child subreaper
    m = machine(proc(50, 1, 50, 50, start=5),
                proc(60, 50, 55, 55, start=9),
                proc(61, 60, 61, 55, start=12))
    cap = C.capture_machine(m)
    es = entries(cap.text)
    assert es["50"]["subreaper"] is True
    assert es["session-55"] == {"name": "session-55", "parent": "50", "comm": "stand-in", "set_tid": [55],
                                "setsid": True, "start": 0.095, "autoreap": True, "exit": 0}
    assert es["60"]["parent"] == "session-55"
    assert es["61"]["pgid"] == "61"
    assert cap.deviations == []
    assert model_rows(cap.text) == captured_rows(m)
    assert "subreaper: inferred" in cap.text


def test_member_of_a_live_session_reparented_to_init_is_cloned_from_a_carrier():
    # sshd-like: leader 100 alive, 150 in its session and group 100 but reparented to init
    m = machine(proc(100, 1, 100, 100, start=10), proc(150, 1, 100, 100, start=30))
    cap = C.capture_machine(m)
    es = entries(cap.text)
    assert es["carrier-100"]["parent"] == "100"
    assert es["carrier-100"]["set_tid"] == [32767]
    assert es["150"]["parent"] == "carrier-100"
    assert cap.deviations == []
    assert model_rows(cap.text) == captured_rows(m)


def test_carrier_in_a_nested_namespace_takes_free_numbers_at_every_level():
    # inside a container: shell 510 left 520 behind, reparented to the container's init
    m = machine(proc(500, 1, 500, 500, nspid=(500, 1), nspgid=(500, 1), nssid=(500, 1)),
                proc(510, 500, 510, 510, nspid=(510, 5), nspgid=(510, 5), nssid=(510, 5)),
                proc(520, 500, 510, 510, nspid=(520, 9), nspgid=(510, 5), nssid=(510, 5), start=200))
    cap = C.capture_machine(m)
    es = entries(cap.text)
    assert es["carrier-510"]["set_tid"] == [4194303, 32767] and es["carrier-510"]["parent"] == "510"
    assert es["520"]["parent"] == "carrier-510"
    assert cap.deviations == []
    assert model_rows(cap.text) == captured_rows(m)


def test_group_leader_created_after_its_member_is_ordered_first():
    # 300 joined the group of 310, which started later (a shell pipeline's order is arbitrary)
    m = machine(proc(200, 1, 200, 200, start=10), proc(300, 200, 310, 200, start=20),
                proc(310, 200, 310, 200, start=25))
    cap = C.capture_machine(m)
    names = [e["name"] for e in tomllib.loads(cap.text)["process"]]
    assert names == ["200", "310", "300"]
    assert model_rows(cap.text) == captured_rows(m)


# -- what the model cannot carry ----------------------------------------------------------------

def test_session_zero_of_init_and_kernel_threads_is_listed_not_hidden():
    init = proc(1, 0, 0, 0, comm="process_api", start=0)
    m = machine(proc(2, 0, 0, 0, comm="kthreadd", start=1),
                proc(3, 2, 0, 0, comm="kworker/R-rcu_gp_long", start=1, argv=[]),
                proc(40, 1, 40, 0, start=3), init=init)
    cap = C.capture_machine(m)
    got = {(d.pid, d.field, d.captured, d.model) for d in cap.deviations}
    assert got == {(1, "pgid", 0, 1), (1, "sid", 0, 1), (2, "ppid", 0, 1), (2, "pgid", 0, 1),
                   (2, "sid", 0, 1), (3, "pgid", 0, 1), (3, "sid", 0, 1), (40, "sid", 0, 1),
                   (3, "comm", "kworker/R-rcu_gp_long", "kworker/R-rcu_g")}
    assert cap.unexpected == []
    assert "#   ppid of 2: parent 0 (a kernel thread" in cap.text


def test_kernel_threads_under_a_systemd_init_keep_session_zero_listed():
    # systemd calls setsid(): init leads session 1, kernel threads stay in session 0
    m = machine(proc(2, 0, 0, 0, comm="kthreadd", start=1), proc(3, 2, 0, 0, comm="rcu_gp", start=1))
    cap = C.capture_machine(m)
    assert sorted((d.pid, d.field, d.captured, d.model) for d in cap.deviations) == [
        (2, "pgid", 0, 1), (2, "ppid", 0, 1), (2, "sid", 0, 1), (3, "pgid", 0, 1), (3, "sid", 0, 1)]
    assert cap.unexpected == []


def test_non_root_creator_is_loaded_as_root_and_says_so():
    m = machine(proc(100, 1, 100, 100, uid=1000, threads=2), proc(120, 100, 100, 100, uid=1000))
    cap = C.capture_machine(m)
    es = entries(cap.text)
    assert "uid" not in es["100"] and es["120"]["uid"] == 1000  # 100 as init's: 0
    assert [(d.pid, d.field, d.captured, d.model) for d in cap.deviations] == [(100, "uid", 1000, 0)]
    assert "# uid 1000 (effective) loaded as 0" in cap.text


# -- nested namespaces, zombies, stops ----------------------------------------------------------

def test_namespace_init_and_members_keep_their_numbers_at_every_level():
    m = machine(proc(500, 1, 500, 500, nspid=(500, 1), nspgid=(500, 1), nssid=(500, 1), threads=1,
                     pidns=4026532001),
                proc(510, 500, 500, 500, nspid=(510, 3), nspgid=(500, 1), nssid=(500, 1)))
    cap = C.capture_machine(m)
    es = entries(cap.text)
    assert es["500"]["newpid"] is True and es["500"]["set_tid"] == [1, 500]
    assert es["510"]["set_tid"] == [3, 510] and "newpid" not in es["510"]
    assert [th["set_tid"] for th in es["500"]["threads"]] == [[2, 501]]
    assert "# init of pid namespace pid:[4026532001] (no scenario key keeps the inode number" in cap.text
    assert cap.deviations == []
    k = loads(cap.text).kernel
    assert k.find_task(k.root_ns, 510).pid.numbers == (510, 3)


def test_zombies_end_with_their_status_and_stopped_processes_with_sigstop():
    # SIGSTOP: the stop signal is not in /proc, and a TSTP would be discarded in an orphaned group
    m = machine(proc(100, 1, 100, 100), proc(101, 100, 100, 100, state="Z", exit_code=9),
                proc(102, 100, 100, 100, state="Z", exit_code=3 << 8),
                proc(103, 100, 100, 100, state="T"))
    cap = C.capture_machine(m)
    es = entries(cap.text)
    assert es["101"]["killed"] == "KILL" and es["102"]["exit"] == 3 and es["103"]["stopped"] == "STOP"
    assert cap.deviations == []
    k = loads(cap.text).kernel
    states = {nr: t.display_state for nr, t in k.iter_tgids(k.root_ns)}
    assert (states[101], states[102], states[103]) == ("Z", "Z", "T")


# -- settling a table read over time ----------------------------------------------------------

def test_orphan_whose_parent_vanished_during_the_capture_goes_to_its_namespaces_init():
    m = machine(proc(300, 299, 300, 300),
                proc(400, 1, 400, 400, nspid=(400, 1), nssid=(400, 1), nspgid=(400, 1)),
                proc(410, 405, 400, 400, nspid=(410, 7), nssid=(400, 1), nspgid=(400, 1)))
    C.settle(m)
    assert (m.procs[300].ppid, m.procs[410].ppid) == (1, 400)
    assert m.notes == [(300, "parent 299 exited during the capture; reparented to 1, the init of its pid namespace"),
                       (410, "parent 405 exited during the capture; reparented to 400, the init of its pid namespace")]


def test_members_of_a_namespace_whose_init_vanished_are_dropped():
    m = machine(proc(410, 1, 410, 410, nspid=(410, 7), nssid=(410, 7), nspgid=(410, 7)))
    C.settle(m)
    assert 410 not in m.procs
    assert m.notes == [(410, "dropped: the init of its pid namespace exited during the capture")]


# -- text -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("s", ['a) (b', 'quote " and \\ back', "tab\tnew\nline\x01\x7f", "ünï €",
                               "", "[x] = y # z"], ids=["parens", "quote", "controls", "unicode",
                                                        "empty", "toml-like"])
def test_strings_survive_toml(s):
    assert tomllib.loads(f"v = {C._toml_str(s)}")["v"] == s


@pytest.mark.parametrize("ticks", [0, 1, 1234, 99, 10**9, 2**40 + 7], ids=str)
def test_start_seconds_land_in_their_tick_after_the_loaders_float_arithmetic(ticks):
    v = tomllib.loads(f"v = {C._Seconds.of_ticks(ticks, HZ).text}")["v"]
    ns = round(v * 1_000_000_000)  # what scenario._Table.seconds does
    assert ns * HZ // 1_000_000_000 == ticks


def test_anonymize_keeps_structure_and_replaces_argv_environ_and_user_names(monkeypatch):
    import pwd

    real = pwd.getpwuid

    def getpwuid(uid):
        if uid == 1000:
            return pwd.struct_passwd(("alice", "x", 1000, 1000, "", "/home/alice", "/bin/bash"))
        return real(uid)

    monkeypatch.setattr(C.pwd, "getpwuid", getpwuid)
    m = machine(proc(90, 1, 90, 90, uid=1000, comm="alice-agent", threads=1),
                proc(100, 1, 100, 100, uid=1000, comm="sshd",
                     argv=["sshd: alice@pts/0", "-D", "--secret=hunter2"],
                     environ=["HOME=/home/alice", "TOKEN=abc", "EMPTY="], cwd="/home/alice/src"))
    cap = C.capture_machine(m, anonymize=True)
    text = cap.text
    assert cap.unexpected == []
    assert entries(text)["90"]["comm"] == "user1000-agent"
    assert entries(text)["90"]["threads"][0]["comm"] == "user1000-agent"
    e = entries(text)["100"]
    assert e["argv"] == ["sshd: user1000@pts/0", "arg1", "arg2"]
    assert e["environ"] == ["HOME=x", "TOKEN=x", "EMPTY="]
    assert e["cwd"] == "/home/user1000/src"
    assert "alice" not in text and "hunter2" not in text and "abc" not in text


# -- reading a procfs directory ---------------------------------------------------------------

def _write_proc(root: Path, tgid: int, *, comm: str, ppid: int, threads: tuple[int, ...] = (),
                cmdline: bytes = b"", state: str = "S", cwd: str = "/") -> None:
    d = root / str(tgid)
    for tid in (tgid, *threads):
        t = d / "task" / str(tid)
        t.mkdir(parents=True)
        stat = (f"{tid} ({comm}) {state} {ppid} {tgid} {tgid} 0 -1 4194304 0 0 0 0 7 3 0 0 20 0 "
                f"{1 + len(threads)} 0 250 1000 10 " + " ".join(["0"] * 27) + " 0\n")
        status = (f"Name:\t{comm}\nState:\t{state} (sleeping)\nTgid:\t{tgid}\nPid:\t{tid}\nPPid:\t{ppid}\n"
                  f"Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nNStgid:\t{tgid}\nNSpid:\t{tid}\nNSpgid:\t{tgid}\n"
                  f"NSsid:\t{tgid}\nSigIgn:\t0000000000001000\n")
        (t / "stat").write_text(stat)
        (t / "status").write_text(status)
        if tid == tgid:
            (d / "stat").write_text(stat)
            (d / "status").write_text(status)
    (d / "cmdline").write_bytes(cmdline)
    os.symlink("/usr/bin/x", d / "exe")
    os.symlink(cwd, d / "cwd")


def test_a_procfs_directory_is_read_with_its_quirks(tmp_path):
    (tmp_path / "uptime").write_text("12.50 3.00\n")
    (tmp_path / "sys/kernel").mkdir(parents=True)
    (tmp_path / "sys/kernel/pid_max").write_text("4096\n")
    _write_proc(tmp_path, 1, comm="init", ppid=0, cmdline=b"/sbin/init\0")
    _write_proc(tmp_path, 20, comm="a) (b", ppid=1, threads=(21,), cmdline=b"title set by setproctitle",
               cwd="/srv")
    (tmp_path / "20" / "task" / "22").mkdir()  # a thread that exited while listed: no files
    (tmp_path / "30").mkdir()  # a process that exited while listed
    m = C.read_machine(str(tmp_path))
    assert sorted(m.procs) == [1, 20]
    p = m.procs[20]
    assert (p.leader.comm, p.argv, p.exe, p.cwd, p.environ) == ("a) (b", ["title set by setproctitle"],
                                                                "/usr/bin/x", "/srv", None)
    assert [t.tid for t in p.threads] == [21]
    assert (p.leader.utime, p.leader.stime, p.leader.start, p.vsize, p.rss, p.sigign) == (7, 3, 250, 1000, 10, 0x1000)
    assert (m.uptime, m.pid_max) == (12.5, 4096)
    text = C.capture_machine(m).text
    e = entries(text)["20"]
    assert (e["comm"], e["exe"], e["cwd"]) == ("a) (b", "/usr/bin/x", "/srv")
    # SigIgn bit 12 is SIGPIPE; a child whose value equals its parent's inherits it (no key)
    assert tomllib.loads(text)["init"]["sigign"] == ["PIPE"] and "sigign" not in e


def test_an_unreadable_directory_is_one_sentence(tmp_path):
    with pytest.raises(C.CaptureError, match="no readable uptime file"):
        C.read_machine(str(tmp_path))
    with pytest.raises(C.CaptureError, match="No such file"):
        C.read_machine(str(tmp_path / "missing"))


# -- a real /proc changing while it is read -------------------------------------------------------

SUBREAPER = r"""
import ctypes, os, subprocess, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
sh = subprocess.Popen(["sh", "-c", "sleep 60 & echo $!; wait"], stdout=subprocess.PIPE, text=True)
print(sh.pid, sh.stdout.readline().strip(), flush=True)
while True:  # reap whatever comes: the shell when killed, then the sleep when killed
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        break
"""


def test_a_parent_that_exits_while_the_capture_reads_is_replaced_by_the_one_linux_chose(monkeypatch):
    reaper = subprocess.Popen([sys.executable, "-c", SUBREAPER], stdout=subprocess.PIPE, text=True)
    started: list[int] = []
    try:
        started += map(int, reaper.stdout.readline().split())
        sh, sleep = started
        real_listdir, real_read_proc = os.listdir, C._read_proc

        def listdir(path):  # the sleep is read before its shell...
            names = real_listdir(path)
            return sorted(names, key=lambda n: n != str(sleep)) if path == "/proc" else names

        def read_proc(procdir, tgid):
            p = real_read_proc(procdir, tgid)
            if tgid == sleep:  # ... and the shell exits right after
                os.kill(sh, 9)
                deadline = time.monotonic() + 10
                while os.path.exists(f"/proc/{sh}") and time.monotonic() < deadline:
                    time.sleep(0.01)
            return p

        monkeypatch.setattr(C.os, "listdir", listdir)
        monkeypatch.setattr(C, "_read_proc", read_proc)
        m = C.read_machine("/proc")
        monkeypatch.undo()
        assert sh not in m.procs
        assert m.procs[sleep].ppid == reaper.pid
        assert (sleep, f"parent {sh} exited during the capture; Linux reparented it to {reaper.pid}") in m.notes
        cap = C.capture_machine(m)
        assert cap.unexpected == []
        assert entries(cap.text)[str(sleep)]["parent"] == str(reaper.pid)
    finally:
        for pid in started:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        if not started:
            reaper.kill()
        reaper.wait(timeout=10)


def test_capturing_while_processes_fork_and_exit_leaves_a_table_that_loads_as_read():
    # a session whose leader keeps leaving orphans behind: `(sleep &)` exits at once, the
    # sleep is reparented out of the session's tree but stays in its session and group
    churn = subprocess.Popen(["bash", "-c", "while :; do (sleep 0.3 &); sleep 0.005; done"],
                             start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        orphans = 0
        for _ in range(3):
            cap = C.capture("/proc")
            assert cap.unexpected == []
            orphans += sum(1 for p in cap.machine.procs.values()
                           if p.sid == churn.pid and p.ppid != churn.pid and p.tgid != churn.pid)
        assert orphans > 0
    finally:
        churn.kill()
        churn.wait(timeout=10)


def test_a_comm_is_cut_to_15_bytes_of_utf8_as_the_model_keeps_it():
    # "ünïcode-wörker-x" is 16 characters, 19 bytes: 12 characters fit in 15 bytes
    m = machine(proc(100, 1, 100, 100, comm="ünïcode-wörker-x"))
    cap = C.capture_machine(m)
    assert entries(cap.text)["100"]["comm"] == "ünïcode-wörk"
    assert [(d.field, d.captured, d.model, d.reason) for d in cap.deviations] == [
        ("comm", "ünïcode-wörker-x", "ünïcode-wörk", "the model keeps 15 bytes of a comm")]
