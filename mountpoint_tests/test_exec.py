"""``pidfs-fuse exec``: real tools with a table as their /proc, in their own pid namespace.

The safety check: a decoy host process, whose number the table also holds (cloned there with
``set_tid``), records every signal it gets; from inside exec, ``kill``, ``pkill``, Python's
``os.kill``, ``pidfd_open`` and ``getpriority`` aim at that number and at every other table pid.
They must get ESRCH and the decoy must receive nothing."""

from __future__ import annotations

import errno
import os
import pty
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from .conftest import CLI, run_cli

PY = sys.executable

DECOY = textwrap.dedent("""\
    import os, signal, sys
    sigs = set(range(1, signal.NSIG)) - {signal.SIGKILL, signal.SIGSTOP, 32, 33}
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    print(os.getpid(), flush=True)
    with open(sys.argv[1], "a") as log:
        while True:
            info = signal.sigwaitinfo(sigs)
            log.write(f"{info.si_signo} from {info.si_pid}\\n")
            log.flush()
            if info.si_signo == signal.SIGTERM and info.si_pid == os.getppid():
                break
""")

PROBE = textwrap.dedent("""\
    import errno, os, signal, sys
    decoy = int(sys.argv[1])
    me = os.getpid()
    table = sorted(int(n) for n in os.listdir("/proc") if n.isdigit())
    assert decoy in table, table
    results = []
    for pid in table:
        if pid in (1, me):
            continue
        for name, call in (("kill0", lambda: os.kill(pid, 0)),
                           ("kill_usr1", lambda: os.kill(pid, signal.SIGUSR1)),
                           ("pidfd_open", lambda: os.close(os.pidfd_open(pid))),
                           ("getpriority", lambda: os.getpriority(os.PRIO_PROCESS, pid))):
            try:
                call()
                results.append(f"{name} {pid} reached a process")
            except ProcessLookupError:
                pass
            except OSError as e:
                results.append(f"{name} {pid} {errno.errorcode[e.errno]}")
    print(len(table), "table pids;", "all ESRCH" if not results else results)
""")


def _exec(mnt, *cmd: str, as_pid: int | None = None, **kw) -> subprocess.CompletedProcess:
    args = ["exec", str(mnt.path)] + (["--as", str(as_pid)] if as_pid is not None else []) + ["--", *cmd]
    return run_cli(*args, check=False, **kw)


@pytest.fixture
def decoy(tmp_path, mnt):
    """A host process whose pid the table does not hold yet (the test gives it one): one that
    drew a number of the default table (pid 456 once) is ended and another started."""
    log = tmp_path / "decoy.log"
    log.write_text("")
    for _ in range(50):
        p = subprocess.Popen([PY, "-c", DECOY, str(log)], stdout=subprocess.PIPE, text=True)
        pid = int(p.stdout.readline())
        if not os.path.exists(mnt / str(pid)):
            break
        p.terminate()
        p.wait(timeout=10)
        p.stdout.close()
    else:
        pytest.fail("50 decoys in a row drew pids the table holds")
    yield pid, log
    p.terminate()
    p.wait(timeout=10)
    p.stdout.close()


def test_no_signal_from_inside_reaches_a_host_process_with_a_table_pid(mnt, decoy):
    host_pid, log = decoy
    assert mnt.client.clone(1, comm="decoy", set_tid=host_pid) == host_pid
    # shell tools
    r = _exec(mnt, "sh", "-c", f"kill -0 {host_pid}; echo $?; kill -USR1 {host_pid}; echo $?; "
                               f"pkill -USR1 -e decoy; echo $?; pkill -0 -e systemd; echo $?")
    assert r.returncode == 0, r.stderr
    # pkill finds the table's "decoy" at host_pid, and kill() there is ESRCH: nothing matched.
    # The table's pid 1 (systemd) is, inside the namespace, exec's own init: kill(1, 0) succeeds
    # on it, and the kernel never delivers a signal from inside to a namespace's init.
    assert r.stdout == "1\n1\n1\nsystemd killed (pid 1)\n0\n", r.stdout
    assert r.stderr.count("No such process") == 2, r.stderr
    # Python: every table pid but 1 and the caller itself, four ways
    r = _exec(mnt, PY, "-c", PROBE, str(host_pid))
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("table pids; all ESRCH\n"), r.stdout
    time.sleep(0.2)  # a signal that had escaped would be in the log by now
    assert log.read_text() == "", "the host decoy received signals: " + log.read_text()
    # ... and a signal the decoy does receive shows up: the log is live
    os.kill(host_pid, signal.SIGUSR2)
    deadline = time.monotonic() + 5
    while log.read_text() == "" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log.read_text() == f"{signal.SIGUSR2.value} from {os.getpid()}\n"


def test_the_exit_status_is_cmds_and_a_signal_gives_128_plus_n(mnt):
    assert _exec(mnt, "sh", "-c", "exit 7").returncode == 7
    assert _exec(mnt, "true").returncode == 0
    assert _exec(mnt, "sh", "-c", "kill -TERM $$").returncode == 128 + signal.SIGTERM


def test_stdin_and_stdout_pass_through(mnt):
    r = _exec(mnt, "sh", "-c", "read a; echo got:$a; cat", input="hello\nrest\n")
    assert (r.returncode, r.stdout) == (0, "got:hello\nrest\n")


def test_top_batch_mode_shows_the_table(mnt):
    r = _exec(mnt, "top", "-b", "-n1", "-w", "200")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("top - ") and "\nTasks:" in r.stdout
    rows = {line.split()[-1] for line in r.stdout.splitlines()[7:] if line.strip()}
    assert {"systemd", "systemd-journal", "dbus-daemon"} <= rows, rows


def test_ps_sees_the_table_and_itself_as_a_stand_in(mnt):
    r = _exec(mnt, "sh", "-c", "echo $$; readlink /proc/self; ps -e -o pid=,comm= | head -2")
    assert r.returncode == 0, r.stderr
    me, self_link, *rows = r.stdout.split("\n")
    assert int(me) >= 3_000_000 and int(self_link) == int(me) + 1  # readlink is sh's child
    assert [row.split() for row in rows[:2]] == [["1", "systemd"], ["401", "systemd-journal"]]


def test_as_pid_makes_cmd_that_process_for_proc_self_psutil_and_getpid(mnt):
    r = _exec(mnt, "cat", "/proc/self/stat", as_pid=401)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("401 (systemd-journal) S 1 ")
    code = "import os, psutil; p = psutil.Process(); print(os.getpid(), p.pid, p.name(), p.ppid())"
    r = _exec(mnt, PY, "-c", code, as_pid=401)
    assert (r.returncode, r.stdout) == (0, "401 401 systemd-journald 1\n"), r.stderr
    # what CMD starts is a stand-in, never a table process
    r = _exec(mnt, "sh", "-c", "cat /proc/self/comm", as_pid=401)
    assert (r.returncode, r.stdout) == (0, "observer\n"), r.stderr


def _pty_run(argv: list[str], send: bytes, want: bytes, timeout: float = 20) -> tuple[bytes, int]:
    """Run ``argv`` on a new pty (its controlling terminal), type ``send`` once ``want`` has
    been printed, collect the output until it exits; (output, exit status)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    out = b""
    try:
        sent = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not sent and want in out:
                os.write(fd, send)
                sent = True
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError as e:
                    if e.errno == errno.EIO:
                        break
                    raise
                if not chunk:
                    break
                out += chunk
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return out, os.waitstatus_to_exitcode(status)


def test_an_interactive_program_on_a_terminal(mnt):
    script = "tty; printf 'name? '; read a; echo hello-$a; exit 3"
    out, code = _pty_run([*CLI, "exec", str(mnt.path), "--", "sh", "-c", script], b"pidfs\r", b"name? ")
    assert code == 3, out
    assert b"/dev/pts/" in out and b"hello-pidfs" in out, out


def test_top_interactively_on_a_terminal_quits_on_q(mnt):
    out, code = _pty_run([*CLI, "exec", str(mnt.path), "--", "top", "-d", "5"], b"q", b"systemd")
    assert code == 0, out
    assert b"Tasks:" in out and b"systemd" in out


def test_ctrl_c_on_the_terminal_ends_cmd_and_exec(mnt):
    start = time.monotonic()
    out, code = _pty_run([*CLI, "exec", str(mnt.path), "--", "sh", "-c", "echo ready; exec sleep 60"],
                         b"\x03", b"ready")
    assert code == 128 + signal.SIGINT, out
    assert time.monotonic() - start < 10


def test_timeout_sigterm_reaches_cmd_and_nothing_is_left(mnt, tmp_path):
    marker = "987.654"
    r = subprocess.run(["timeout", "-s", "TERM", "1", *CLI, "exec", str(mnt.path), "--", "sleep", marker],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 124, r.stderr
    deadline = time.monotonic() + 5
    while subprocess.run(["pgrep", "-f", f"^sleep {marker}"], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "CMD outlived exec's SIGTERM"
        time.sleep(0.05)


def test_sigkill_of_exec_takes_the_namespace_with_it(mnt):
    marker = "876.543"
    p = subprocess.Popen([*CLI, "exec", str(mnt.path), "--", "sleep", marker])
    deadline = time.monotonic() + 10
    while subprocess.run(["pgrep", "-f", f"^sleep {marker}"], capture_output=True).returncode != 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    p.kill()
    p.wait()
    deadline = time.monotonic() + 5
    while subprocess.run(["pgrep", "-f", f"^sleep {marker}"], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "CMD outlived a killed exec"
        time.sleep(0.05)


@pytest.mark.parametrize("args, status, message", [
    (["--", "no-such-command-x"], 127, "no-such-command-x: command not found"),
    (["--as", "99999", "--", "true"], 1, "--as 99999: the table at {d} has no process 99999"),
    (["--as", "0", "--", "true"], 1, "--as 0: not a pid (1 to 4194303)"),
    (["true"], 1, "exec: put -- before the command (pidfs-fuse exec DIR [--as PID] -- CMD ...)"),
    (["--"], 1, "exec needs a command after -- (for example: pidfs-fuse exec DIR -- ps -ef)"),
], ids=["not-found", "as-missing", "as-zero", "no-dashes", "no-command"])
def test_bad_input_fails_with_a_sentence_and_changes_nothing(mnt, args, status, message):
    before = mnt.ctl("ps")
    r = run_cli("exec", str(mnt.path), *args, check=False)
    assert (r.returncode, r.stdout) == (status, "")
    assert r.stderr == f"pidfs-fuse: {message.format(d=mnt.path)}\n"
    assert mnt.ctl("ps") == before


def test_exec_refuses_a_directory_that_is_not_a_mount(tmp_path):
    r = run_cli("exec", str(tmp_path), "--", "true", check=False)
    assert (r.returncode, r.stderr) == (1, f"pidfs-fuse: {tmp_path} is not mounted (mount a table "
                                           f"there first: pidfs-fuse mount {tmp_path})\n")


def test_exec_stats_prints_the_requests_the_command_cost(mnt):
    pid = mnt.new()
    with open(os.path.join(mnt.path, str(pid), "status"), "rb") as f:  # warm its entries
        f.read()
    r = run_cli("exec", mnt.path, "--stats", "--", "cat", f"/proc/{pid}/status", f"/proc/{pid}/status")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("Name:\t") == 2
    # two warm opens of a cached file: an open and a release each, nothing else (no flush)
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("pidfs-fuse: ") and " requests while the command ran: " in line, line
    counts = dict(zip(line.split(": ", 2)[2].split()[::2], line.split(": ", 2)[2].split()[1::2],
                      strict=True))
    assert counts["open"] == "2" and counts["release"] == "2", line
    assert "flush" not in counts


def test_exec_stats_on_a_directory_that_is_not_a_mount_fails_with_a_sentence(tmp_path):
    r = run_cli("exec", str(tmp_path), "--stats", "--", "true", check=False)
    assert r.returncode == 1
    assert r.stderr.startswith(f"pidfs-fuse: --stats: cannot read the request counts of {tmp_path}: ")
    assert r.stderr.endswith("(is a pidfs-fuse table mounted there?)\n")
