"""The control file and `pidfs-fuse ctl`: replies, errnos, and a server that survives any input."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import subprocess

from .conftest import run_cli


def _digest(mnt) -> str:
    h = hashlib.sha256()
    for name in sorted(os.listdir(mnt.path)):
        if name.isdigit():
            h.update(name.encode())
            for f in ("stat", "status"):
                with open(os.path.join(mnt.path, name, f), "rb") as fh:
                    data = fh.read()
                # drop nothing: the table itself must be unchanged
                h.update(data)
    return h.hexdigest()


def test_ctl_prints_new_pids_one_per_line(mnt):
    out = mnt.ctl("clone", "1", "comm=w", "count=3")
    pids = [int(x) for x in out.split()]
    assert len(pids) == 3 and out.count("\n") == 3
    assert pids == sorted(pids)


def test_failed_command_exits_non_zero_and_names_the_errno(mnt):
    r = run_cli("ctl", mnt.path, "kill", "99999", "TERM", check=False)
    assert r.returncode == 1
    assert "ESRCH" in r.stderr and "99999" in r.stderr
    r = run_cli("ctl", mnt.path, "frobnicate", check=False)
    assert r.returncode == 1 and "EINVAL" in r.stderr and "frobnicate" in r.stderr


def test_control_write_fails_with_the_errno_and_the_reply_says_why(mnt):
    err, reply = mnt.ctl_raw("kill 99999 TERM\n")
    assert err == errno.ESRCH
    assert reply.startswith("error: ESRCH: ")
    err, reply = mnt.ctl_raw("clone 1 set_tid=1\n")
    assert err == errno.EEXIST and "EEXIST" in reply
    err, reply = mnt.ctl_raw("clone 1 comm=ok\n")
    assert err == 0 and reply.strip().isdigit()


def test_control_file_is_root_only(mnt):
    st = os.stat(mnt / ".control")
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == 0


def _malformed(rng: random.Random) -> str:
    cmds = ["clone", "exit", "exit_group", "kill", "exec", "wait", "setsid", "setpgid", "subreaper",
            "unshare", "setns", "pid_max", "set", "snapshot", "bogus", "", "CLONE", "kill9"]
    junk = ["", "-1", "0", "99999999999999999999", "abc", "1.5", "nan", "'", '"', "\\", "=", "==",
            "comm=", "set_tid=1,2,3,4", "set_tid=x", "count=-3", "count=1000000000", "exit_signal=99",
            "uid=-5", "\u2603", "\x00", "\x7f", "on", "off", "newpid", "thread", "pid=", "pgid=-2",
            "state=Z", "nice=100", "sigign=KILL", "KEY", "=x", "a=b=c"]
    c = rng.choice(cmds)
    pid = rng.choice(["99999", "-1", "0", "x", "", "1e3", "4194305"])
    toks = [c, pid] + [rng.choice(junk) for _ in range(rng.randrange(0, 5))]
    line = " ".join(toks)
    if rng.random() < 0.1:
        line = "".join(chr(rng.randrange(1, 0x300)) for _ in range(rng.randrange(1, 40)))
    return line


def test_server_survives_thousands_of_malformed_lines_and_table_is_unchanged(mnt):
    rng = random.Random(1234)
    before = _digest(mnt)
    fd = os.open(mnt / ".control", os.O_RDWR)
    failures = 0
    try:
        for _ in range(3000):
            line = _malformed(rng)
            try:
                os.write(fd, line.encode(errors="surrogatepass") + b"\n")
            except OSError as e:
                failures += 1
                assert e.errno in (errno.EINVAL, errno.ESRCH, errno.EPERM, errno.ENOSYS, errno.ECHILD,
                                   errno.EEXIST, errno.ENOENT, errno.ERANGE), (line, e)
                reply = os.pread(fd, 65536, 0).decode(errors="replace")
                assert reply.startswith("error: "), (line, reply)
            else:
                raise AssertionError(f"malformed line succeeded: {line!r}")
    finally:
        os.close(fd)
    assert failures == 3000
    assert _digest(mnt) == before
    assert mnt.ctl("clone", "1").strip().isdigit()  # still answers


def _start_ctl(mnt, *args):
    from .conftest import CLI

    return subprocess.Popen([*CLI, "ctl", mnt.path, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_blocked_wait_does_not_stall_other_commands(mnt):
    pid = mnt.new(1, "comm=victim")
    waiter = _start_ctl(mnt, "wait", "1", f"pid={pid}")
    try:
        # the wait is accepted and blocks in its read; other writers go straight through
        assert mnt.ctl("clone", "1", "comm=meanwhile").strip().isdigit()
        assert waiter.poll() is None
        r = run_cli("ctl", mnt.path, "kill", str(pid), "KILL", timeout=10)
        assert r.returncode == 0
        out, _err = waiter.communicate(timeout=10)
        assert (waiter.returncode, out) == (0, f"{pid} killed 9\n")
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()


def test_a_wait_that_fails_after_blocking_reports_its_errno(mnt):
    pid = mnt.new(1, "comm=contested")
    waiters = [_start_ctl(mnt, "wait", "1", f"pid={pid}") for _ in range(2)]
    try:
        mnt.ctl("exit_group", str(pid), "5")
        results = sorted((w.communicate(timeout=10), w.returncode) for w in waiters)
        outs = [(rc, out, err.strip()) for (out, err), rc in results]
        # one waiter reaps the child; the other finds no child left: ECHILD, exit status 1
        assert (0, f"{pid} exited 5\n", "") in outs
        failed = [o for o in outs if o[0] == 1]
        assert len(failed) == 1 and "ECHILD" in failed[0][2]
    finally:
        for w in waiters:
            if w.poll() is None:
                w.kill()
                w.wait()
