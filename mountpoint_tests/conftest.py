"""Fixtures that mount a real table with the project's own command and always clean up.

Each mount runs ``pidfs-fuse mount`` (the server in its own process, as users run it) and is
torn down with ``pidfs-fuse unmount``, falling back to a lazy ``fusermount3 -u -z`` and a
SIGKILL of that server (by pid) when a test left the mount wedged. Tests change the table
through ``pidfs_fuse.client`` (``Mount.ctl`` and ``Mount.ctl_raw`` speak ``.control`` with it);
the CLI's own ``ctl`` is tested where it is the subject (test_control_plane.py).
"""

from __future__ import annotations

import errno
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pidfs_fuse import client

HERE = Path(__file__).resolve().parent
CLI = [os.path.join(os.path.dirname(sys.executable), "pidfs-fuse")]
if not os.path.exists(CLI[0]):
    CLI = [shutil.which("pidfs-fuse") or "pidfs-fuse"]


def pytest_configure(config):
    """A suite started in the background of a shell without job control (``make test &``) or
    under ``nohup`` inherits SIGINT (and SIGQUIT, or SIGHUP) ignored, and an ignored signal stays
    ignored across exec: the clients the signal tests start would never see the Ctrl-C or the
    hangup those tests send, and the tests would fail for the shell's reason. The clients get
    the defaults instead (a Python handler resets to the default at exec)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGQUIT, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_IGN:
            signal.signal(sig, signal.SIG_DFL)


def pytest_collection_modifyitems(config, items):
    if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
        skip = pytest.mark.skip(reason="mountpoint tests need /dev/fuse and root")
        for item in items:
            if "mountpoint_tests" in str(item.fspath):
                item.add_marker(skip)


def run_cli(*args: str, check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"pidfs-fuse {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r


def server_pid(mountpoint: str) -> int | None:
    return client.server_pid(mountpoint)


def force_cleanup(mountpoint: str) -> None:
    pid = server_pid(mountpoint)
    subprocess.run(["fusermount3", "-u", "-z", mountpoint], capture_output=True)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Mount:
    """A mounted table: ``path``, ``client`` (a ``pidfs_fuse.client.Client``), and ``ctl(...)``
    that runs one control command given as words."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.client = client.Client(path)

    def __truediv__(self, other: str) -> Path:
        return Path(self.path) / other

    def __str__(self) -> str:
        return self.path

    def ctl(self, *args: str, check: bool = True) -> str:
        """The reply of one command (each argument one token, as ``pidfs-fuse ctl`` takes them);
        a failure raises AssertionError, or with ``check=False`` returns the error's text."""
        try:
            return self.client.raw(shlex.join(args))
        except OSError as e:
            if not check:
                return f"{e.strerror}\n"
            raise AssertionError(f"ctl {' '.join(args)}: {e}") from None

    def ctl_raw(self, data: str | bytes) -> tuple[int, str]:
        """One write of ``data`` to .control (any bytes, several lines, half a line); (errno or
        0, reply)."""
        return client.exchange(self.path, data)

    def new(self, parent: int = 1, *args: str) -> int:
        return int(self.ctl("clone", str(parent), *args).split()[0])


@pytest.fixture
def mount_table(tmp_path):
    """Factory: mount_table(*cli_args) -> Mount. Every mount made is unmounted at teardown."""
    made: list[str] = []

    def _mount(*args: str, public: bool = False) -> Mount:
        # public: under /tmp itself, so a non-root caller can reach it (pytest's tmp is 0700)
        d = tempfile.mkdtemp(prefix="pidfs-mnt", dir="/tmp" if public else tmp_path)
        made.append(d)
        run_cli("mount", d, *args)
        return Mount(d)

    yield _mount
    for d in made:
        r = run_cli("unmount", d, check=False)
        if r.returncode != 0 or os.path.ismount(d):
            force_cleanup(d)
        if d.startswith("/tmp/pidfs-mnt"):
            try:
                os.rmdir(d)
            except OSError:
                pass


@pytest.fixture
def mnt(mount_table) -> Mount:
    """The embedded default table, mounted fresh for this test."""
    return mount_table()


@pytest.fixture(scope="module")
def shared_mnt(tmp_path_factory):
    """One default-table mount shared by a module's read-only tests."""
    d = str(tmp_path_factory.mktemp("shared"))
    run_cli("mount", d)
    yield Mount(d)
    r = run_cli("unmount", d, check=False)
    if r.returncode != 0 or os.path.ismount(d):
        force_cleanup(d)


def in_private_proc(mount: Mount | str, command: str, **kw) -> subprocess.CompletedProcess:
    """Run ``command`` in a private mount namespace with the mount bound over /proc."""
    script = f"mount --bind {mount!s} /proc && {command}"
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60, **kw)


def write_once(path: str | os.PathLike[str], data: bytes) -> int | str:
    """Open ``path`` write-only, write ``data`` once and close: the bytes written, or where it
    failed and the errno's name (``"open EACCES"``, ``"write EINVAL"``)."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as e:
        return "open " + errno.errorcode[e.errno]
    try:
        return os.write(fd, data)
    except OSError as e:
        return "write " + errno.errorcode[e.errno]
    finally:
        os.close(fd)


@pytest.fixture
def procs(mount_table):
    """Start clients with ``procs.popen``; all are killed before the mounts go away."""
    from .waiting import Procs

    pr = Procs()
    yield pr
    pr.cleanup()
