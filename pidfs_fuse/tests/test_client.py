"""pidfs_fuse.client without a mount: command lines, reply parsing, errno mapping, and the wait
protocol, against a stand-in for the server's ``.control`` built on the real command table.

The stand-in (``FakeServer``) answers a write the way the server does (mount/control_file.py
``ControlSession.write``: one reply per line, ``error: ENAME: why`` and the errno for a failure); a
blocking ``wait`` that would block is answered by a test's script instead. Mountpoint tests
(mountpoint_tests/test_client.py) check the same client against a real mount.
"""

from __future__ import annotations

import ast
import errno
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pidfs_fuse import client, scenario
from pidfs_fuse.client import Client, WaitStatus
from pidfs_fuse.control import Control, WouldBlock
from pidfs_fuse.kernel import KernelError

PACKAGE = Path(client.__file__).resolve().parent


class FakeServer(Client):
    """A Client whose ``.control`` is a Control on an in-process default table."""

    def __init__(self) -> None:
        super().__init__("/nonexistent")
        self.kernel = scenario.load_default().kernel
        self.control = Control(self.kernel, self.kernel.root_ns)
        self.lines: list[str] = []

    def _exchange(self, data: str) -> tuple[int, str]:
        out: list[str] = []
        for line in data.splitlines():
            self.lines.append(line)
            try:
                out.append(self.control.parse(line).run())
            except KernelError as e:
                out.append(f"error: {e.errname}: {e.reason}\n")
                return e.errno, "".join(out)
        return 0, "".join(out)


class Scripted(Client):
    """A Client whose ``.control`` answers from a list of (errno, reply), recording the lines."""

    def __init__(self, replies: list[tuple[int, str]]) -> None:
        super().__init__("/nonexistent")
        self.replies = list(replies)
        self.lines: list[str] = []

    def _exchange(self, data: str) -> tuple[int, str]:
        self.lines.append(data.rstrip("\n"))
        return self.replies.pop(0)


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


# -- command lines --------------------------------------------------------------------------------


def test_command_line_quotes_words_and_joins_comma_lists():
    line = client.command_line("clone", 1, "thread", comm="a) (b", argv=["w", "x y"],
                               set_tid=[7, 1], sigign=["PIPE", "HUP"], uid=None)
    assert line.startswith("clone 1 thread 'comm=a) (b' ")
    assert line.endswith(" set_tid=7,1 sigign=PIPE,HUP") and "uid" not in line
    assert shlex.split(line) == ["clone", "1", "thread", "comm=a) (b", "argv=w 'x y'",
                                 "set_tid=7,1", "sigign=PIPE,HUP"]


def test_a_flag_given_as_an_option_value_is_refused():
    with pytest.raises(TypeError, match="nohang= takes a value"):
        client.command_line("wait", 1, nohang=True)


def test_raw_takes_one_line(fake):
    with pytest.raises(ValueError, match="one command line"):
        fake.raw("ps\nps")
    assert fake.lines == []


# -- replies --------------------------------------------------------------------------------------


@pytest.mark.parametrize("reply, status", [
    ("42 exited 3\n", WaitStatus(42, "exited", 3)),
    ("42 killed 9\n", WaitStatus(42, "killed", 9)),
    ("42 dumped 11\n", WaitStatus(42, "dumped", 11)),
    ("42 stopped 19\n", WaitStatus(42, "stopped", 19)),
    ("42 continued\n", WaitStatus(42, "continued", signal.SIGCONT)),
    ("0\n", None),
], ids=["exited", "killed", "dumped", "stopped", "continued", "nothing-yet"])
def test_parse_wait(reply, status):
    assert client.parse_wait(reply) == status


@pytest.mark.parametrize("reply", ["", "42\n", "42 exited\n", "42 vanished 3\n", "x exited 3\n",
                                   "42 continued 18\n"])
def test_parse_wait_refuses_what_is_not_a_wait_reply(reply):
    with pytest.raises(ValueError):
        client.parse_wait(reply)


@pytest.mark.parametrize("status, decode", [
    (WaitStatus(5, "exited", 3), lambda s: os.WIFEXITED(s) and os.WEXITSTATUS(s) == 3),
    (WaitStatus(5, "killed", 9), lambda s: os.WIFSIGNALED(s) and os.WTERMSIG(s) == 9
     and not os.WCOREDUMP(s)),
    (WaitStatus(5, "dumped", 11), lambda s: os.WIFSIGNALED(s) and os.WTERMSIG(s) == 11
     and os.WCOREDUMP(s)),
    (WaitStatus(5, "stopped", 19), lambda s: os.WIFSTOPPED(s) and os.WSTOPSIG(s) == 19),
    (WaitStatus(5, "continued", 18), os.WIFCONTINUED),
], ids=["exited", "killed", "dumped", "stopped", "continued"])
def test_wait_status_word_decodes_with_the_os_macros(status, decode):
    assert decode(status.status)


def test_ps_and_show_parse_the_servers_replies(fake):
    pid = fake.clone(1, comm="two words", uid=1000)
    rows = fake.ps()
    assert rows[0].pid == 1 and rows[0].ppid == 0
    row = next(r for r in rows if r.pid == pid)
    assert (row.ppid, row.uid, row.state, row.nlwp, row.comm) == (1, 1000, "S", 1, "two words")
    shown = fake.show(pid)
    assert shown["Name"] == "two words" and shown["Threads"] == "1"


def test_typed_commands_send_the_grammars_lines(fake):
    pid = fake.clone(1, comm="w")
    tids = fake.clone(pid, thread=True, count=2)
    assert isinstance(pid, int) and len(tids) == 2
    assert fake.setsid(pid) == pid
    fake.set(pid, nice=5, sigign=["PIPE", "HUP"])
    fake.exit_group(pid, 4)
    assert fake.wait(1, pid=pid, nohang=True) == WaitStatus(pid, "exited", 4)
    assert fake.lines == [
        "clone 1 comm=w",
        f"clone {pid} thread count=2",
        f"setsid {pid}",
        f"set {pid} nice=5 sigign=PIPE,HUP",
        f"exit_group {pid} 4",
        f"wait 1 nohang pid={pid}",
    ]


# -- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("line, exc, err", [
    ("kill 99999 TERM", ProcessLookupError, errno.ESRCH),
    ("wait 1 pid=99999", ChildProcessError, errno.ECHILD),
    ("clone 1 set_tid=1", FileExistsError, errno.EEXIST),
    ("frobnicate 1", OSError, errno.EINVAL),
], ids=["ESRCH", "ECHILD", "EEXIST", "EINVAL"])
def test_a_failed_command_raises_its_errno_as_the_matching_oserror(fake, line, exc, err):
    with pytest.raises(exc) as e:
        fake.raw(line)
    assert e.value.errno == err
    cmd = line.split()[0]
    name = errno.errorcode[err]
    assert e.value.strerror.startswith(f"{cmd}: ") and name not in e.value.strerror
    assert str(e.value) == f"[Errno {err}] {e.value.strerror}"


def test_command_error_keeps_the_sentence_and_falls_back_to_strerror():
    e = client.command_error("kill 9 TERM", errno.ESRCH, "error: ESRCH: no task with pid 9\n")
    assert isinstance(e, ProcessLookupError) and e.strerror == "kill: no task with pid 9"
    e = client.command_error("kill 9 TERM", errno.ESRCH, "")
    assert e.strerror == f"kill: {os.strerror(errno.ESRCH)}"
    e = client.command_error("", errno.EINVAL, "error: EINVAL: empty command (try 'help')\n")
    assert e.strerror == "(empty): empty command (try 'help')"


def test_reason_is_what_the_cli_prints():
    assert client.reason(errno.ESRCH, "error: ESRCH: gone\n") == "ESRCH: gone"
    assert client.reason(errno.EIO, "") == f"EIO: {os.strerror(errno.EIO)}"


# -- the wait protocol --------------------------------------------------------------------------


@pytest.mark.parametrize("in_main_thread", [True, False], ids=["main-thread", "other-thread"])
def test_blocking_wait_blocks_with_nowait_then_collects_with_nohang(in_main_thread):
    c = Scripted([(0, "7 exited 2\n"), (0, "7 exited 2\n")])
    if in_main_thread:
        got = c.wait(1, pid=7, all=True)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            got = pool.submit(c.wait, 1, pid=7, all=True).result(timeout=10)
    assert got == WaitStatus(7, "exited", 2)
    assert c.lines == ["wait 1 nowait all pid=7", "wait 1 nohang all pid=7"]


def test_blocking_wait_blocks_again_when_another_waiter_took_the_child():
    c = Scripted([(0, "7 exited 2\n"), (0, "0\n"), (0, "8 killed 9\n"), (0, "8 killed 9\n")])
    assert c.wait(1) == WaitStatus(8, "killed", 9)
    assert c.lines == ["wait 1 nowait", "wait 1 nohang"] * 2


def test_blocking_wait_fails_with_echild_when_the_children_are_gone():
    c = Scripted([(0, "7 exited 2\n"), (errno.ECHILD, "error: ECHILD: no child\n")])
    with pytest.raises(ChildProcessError, match="wait: no child"):
        c.wait(1, pgid=3)
    assert c.lines == ["wait 1 nowait pgid=3", "wait 1 nohang pgid=3"]


def test_peek_then_collect_works_for_every_kind_of_state_change(fake):
    """WNOWAIT leaves stops, continues and exits in place for the collecting nohang wait (the
    command table's own answers: a peek that consumed would leave the collect empty)."""
    pid = fake.clone(1)
    fake.kill(pid, "STOP")
    assert fake.wait(1, pid=pid, stopped=True) == WaitStatus(pid, "stopped", 19)
    fake.kill(pid, "CONT")
    assert fake.wait(1, pid=pid, continued=True) == WaitStatus(pid, "continued", 18)
    fake.kill(pid, "TERM")
    assert fake.wait(1, pid=pid) == WaitStatus(pid, "killed", 15)
    with pytest.raises(ChildProcessError):  # collected: nothing left to wait for
        fake.wait(1, pid=pid, nohang=True)


@pytest.mark.parametrize("kw, lines", [
    ({"nowait": True}, ["wait 1 nowait pid=7"]),
    ({"nohang": True}, ["wait 1 nohang pid=7"]),
    ({"nohang": True, "nowait": True, "stopped": True}, ["wait 1 nohang nowait stopped pid=7"]),
], ids=["nowait", "nohang", "nohang-nowait"])
def test_one_line_waits(kw, lines):
    c = Scripted([(0, "7 stopped 19\n")])
    assert c.wait(1, pid=7, **kw) == WaitStatus(7, "stopped", 19)
    assert c.lines == lines


async def test_aio_wait_speaks_the_same_protocol():
    c = Scripted([(0, "7 continued\n"), (0, "7 continued\n")])
    assert await c.aio.wait(1, pid=7, continued=True) == WaitStatus(7, "continued", 18)
    assert c.lines == ["wait 1 nowait continued pid=7", "wait 1 nohang continued pid=7"]


def test_fake_server_blocks_where_the_real_one_waits(fake):
    """The stand-in is honest: a wait with nothing ready is a WouldBlock in the command table,
    which the server parks until the model changes."""
    pid = fake.clone(1)
    with pytest.raises(WouldBlock):
        fake.control.parse(f"wait 1 pid={pid}").run()


# -- where the code lives -------------------------------------------------------------------------


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(("." * node.level) + (node.module or ""))
    return names


def test_the_server_starts_without_importing_the_cli():
    code = ("import sys, pidfs_fuse.mount.main as m; "
            "assert 'pidfs_fuse.cli' not in sys.modules, 'cli imported'; "
            "assert 'pidfs_fuse.pytest_plugin' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for path in (PACKAGE / "mount").glob("*.py"):
        assert not {n for n in _imports(path) if n.endswith("cli")}, path


def test_the_client_imports_only_the_standard_library_at_import_time():
    code = ("import sys, pidfs_fuse.client; "
            "bad = [m for m in ('trio', 'pyfuse3', 'pytest', 'pidfs_fuse.cli', 'pidfs_fuse.mount') "
            "if m in sys.modules]; assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_the_plugin_still_exports_its_public_names():
    from pidfs_fuse import pytest_plugin

    for name in ("WaitStatus", "PsRow", "MountError", "Client", "AsyncClient", "PidfsMount",
                 "mount_table", "pidfs", "pidfs_factory"):
        assert hasattr(pytest_plugin, name), name
    assert pytest_plugin.WaitStatus is client.WaitStatus
