"""Everything as a normal user (uid 65534, ``setpriv --reuid --regid --clear-groups``): mount,
ctl, tree, status, exec, unmount and the pytest plugin, with the per-user run directory.

/dev/fuse is made usable by everyone for these tests (0666, as Debian ships it) and its mode is
put back afterwards. The commands run with an interpreter that uid 65534 can execute: the venv's
own, or else the system's Python of the same version with the venv's packages on PYTHONPATH
(pyenv's interpreters live under /root, which others may not enter)."""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from pidfs_fuse import client, rundir
from pidfs_fuse import exec as pexec

from .conftest import run_cli

NOBODY = 65534
REPO = Path(__file__).resolve().parent.parent
DEV_FUSE_LOCK = "/run/pidfs-fuse-test-dev-fuse.lock"
SETPRIV = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
MAIN = "import sys; from pidfs_fuse.cli import main; sys.exit(main())"


def _python_for_nobody() -> tuple[str, dict[str, str]] | None:
    """An interpreter uid 65534 can run with this package importable, and the environment."""
    paths = os.pathsep.join([str(REPO), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    v = f"{sys.version_info.major}.{sys.version_info.minor}"
    for py in (sys.executable, f"/usr/bin/python{v}"):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": paths, "HOME": "/tmp"}
        r = subprocess.run([*SETPRIV, "sh", "-c", f'exec "{py}" -c "import pidfs_fuse.cli, pyfuse3, pytest"'],
                           env=env, capture_output=True)
        if r.returncode == 0:
            return py, env
    return None


@pytest.fixture(scope="module")
def nobody():
    """(python, env) for uid 65534, with /dev/fuse usable by it; the mode is restored after."""
    if subprocess.run(["which", "setpriv"], capture_output=True).returncode != 0:
        pytest.skip("setpriv (util-linux) is missing")
    found = _python_for_nobody()
    if found is None:
        pytest.skip(f"no Python interpreter here that uid {NOBODY} may run with this package")
    # Test runs of other checkouts may do the same at the same time: one at a time, or the
    # second would take the first's 0666 for the original mode and leave it behind.
    with open(DEV_FUSE_LOCK, "a") as lock:
        deadline = time.monotonic() + 300
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.skip(f"another test run holds {DEV_FUSE_LOCK}")
                time.sleep(0.2)
        original = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
        os.chmod("/dev/fuse", 0o666)
        try:
            yield found
        finally:
            os.chmod("/dev/fuse", original)
            assert stat.S_IMODE(os.stat("/dev/fuse").st_mode) == original


@pytest.fixture
def home():
    """A directory of uid 65534's own under /tmp (pytest's tmp_path is root's and private)."""
    d = Path(tempfile.mkdtemp(prefix="pidfs-nobody-", dir="/tmp"))
    os.chown(d, NOBODY, NOBODY)
    yield d
    for m in rundir.mountinfo():
        if m.mountpoint.startswith(str(d) + "/"):
            subprocess.run(["umount", "-l", m.mountpoint], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


def run_as_nobody(nobody, *args: str, env: dict[str, str] | None = None, cwd=None,
                  input: str | None = None) -> subprocess.CompletedProcess:
    py, base = nobody
    e = {**base, **(env or {})}
    return subprocess.run([*SETPRIV, py, "-c", MAIN, *args], env=e, cwd=cwd, input=input,
                          capture_output=True, text=True, timeout=60)


def _mkdir_for_nobody(path: Path, mode: int = 0o755) -> Path:
    path.mkdir(mode=mode)
    os.chown(path, NOBODY, NOBODY)
    return path


def test_mount_ctl_tree_status_unmount_as_a_normal_user(nobody, home):
    m = _mkdir_for_nobody(home / "m")
    run = rundir.run_dir_path(NOBODY, {})
    r = run_as_nobody(nobody, "mount", str(m))
    assert r.returncode == 0, r.stderr
    try:
        info = rundir.mount_at(str(m))
        assert info is not None and info.fstype == rundir.FSTYPE and info.user_id == NOBODY
        st = os.lstat(run)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (NOBODY, 0o700)
        rec = rundir.read_record(os.path.join(run, rundir.mount_key(str(m)) + ".json"))
        assert rec is not None and rec.mountpoint == str(m) and rec.server_alive()
        assert r.stderr == f"pidfs-fuse: mounted at {m} (server pid {rec.pid})\n"
        r = run_as_nobody(nobody, "ctl", str(m), "clone", "1", "comm=mine")
        assert r.returncode == 0, r.stderr
        pid = int(r.stdout)
        r = run_as_nobody(nobody, "tree", str(m), "--color", "never")
        assert r.returncode == 0 and f"{pid} mine S" in r.stdout, r.stderr
        r = run_as_nobody(nobody, "status")
        assert r.returncode == 0, r.stderr
        row = next(line.split() for line in r.stdout.splitlines() if line.startswith(str(m)))
        assert row[:5] == [str(m), str(rec.pid), row[2], "frozen", "-"] and int(row[2]) > 50
        # root is not this user: without allow_other the mount is closed to it, as FUSE does it
        with pytest.raises(PermissionError):
            os.listdir(m)
    finally:
        r = run_as_nobody(nobody, "unmount", str(m))
    assert r.returncode == 0, r.stderr
    assert rundir.mount_at(str(m)) is None
    assert rundir.process_starttime(rec.pid) is None
    assert [n for n in os.listdir(run) if n.startswith(rundir.mount_key(str(m)))] == []


def test_exec_as_a_normal_user_runs_in_its_own_user_and_pid_namespace(nobody, home):
    if pexec.userns_refusal() is not None:
        pytest.skip(f"unprivileged user namespaces are off: {pexec.userns_refusal()}")
    m = _mkdir_for_nobody(home / "m")
    assert run_as_nobody(nobody, "mount", str(m)).returncode == 0
    try:
        r = run_as_nobody(nobody, "exec", str(m), "--", "sh", "-c",
                          "id -u; echo $$; ps -e -o pid=,comm= | head -1; kill -0 401; echo $?")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["65534", "4000000", "1", "systemd", "1"]
        assert "No such process" in r.stderr
        r = run_as_nobody(nobody, "exec", str(m), "--as", "401", "--", "cat", "/proc/self/comm")
        assert (r.returncode, r.stdout) == (0, "systemd-journal\n"), r.stderr
    finally:
        run_as_nobody(nobody, "unmount", str(m))


PS_SELF = "ps -e -o pid=,comm=; echo rc=$?; stat -c %u:%g /proc/self/; grep ^Uid /proc/self/status"


def test_an_unprivileged_ps_works_on_a_hidepid_2_mount_as_on_linux(nobody, home, mount_table):
    """Linux lets a task see itself whatever hidepid says (ptrace_may_access): on a real procfs
    mounted with hidepid=2, uid 65534's ps lists itself. On a root's hidepid=2,allow_other
    mount, where no table process is uid 65534's, its own entry is what ps lists, with its
    uid, never another's (root ran the same number 4000000 just before)."""
    if pexec.userns_refusal() is not None:
        pytest.skip(f"unprivileged user namespaces are off: {pexec.userns_refusal()}")
    real = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                           "mount -t proc -o hidepid=2 proc /proc && exec " +
                           " ".join(SETPRIV) + f" sh -c '{PS_SELF}'"],
                          capture_output=True, text=True, timeout=60)
    assert real.returncode == 0, real.stderr
    rows = real.stdout.splitlines()
    comms = [r.split()[1] for r in rows[:-3]]  # uid 65534's processes only (others may run)
    assert comms[-2:] == ["sh", "ps"] and "systemd" not in comms
    assert rows[-3:] == ["rc=0", "65534:65534", "Uid:\t65534\t65534\t65534\t65534"]
    m = mount_table("-o", "hidepid=2,allow_other", public=True)
    r = run_cli("exec", m.path, "--", "sh", "-c", "grep ^Uid /proc/self/status", check=False)
    assert (r.returncode, r.stdout) == (0, "Uid:\t0\t0\t0\t0\n"), r.stderr
    r = run_as_nobody(nobody, "exec", m.path, "--", "sh", "-c", PS_SELF)
    assert r.returncode == 0, r.stderr
    # ps lists itself; sh, another process outside the table, is not its own entry: unlisted
    assert r.stdout.splitlines() == ["4000001 observer", "rc=0",
                                     "65534:65534", "Uid:\t65534\t65534\t65534\t65534"]


def test_the_pytest_plugin_as_a_normal_user(nobody, home):
    tests = _mkdir_for_nobody(home / "suite")
    f = tests / "test_mine.py"
    f.write_text(textwrap.dedent("""\
        import os

        def test_it(pidfs):
            pid = pidfs.clone(1, comm="mine")
            assert (pidfs.path / str(pid) / "comm").read_text() == "mine\\n"
            pidfs.exit_group(pid, 4)
            assert pidfs.wait(1, pid=pid).code == 4
            assert os.stat(pidfs.path / ".control").st_uid == os.getuid() == 65534
        """))
    os.chmod(f, 0o644)
    py, env = nobody
    r = subprocess.run([*SETPRIV, py, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(f)],
                       env=env, cwd=tests, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed" in r.stdout


def test_dev_fuse_closed_to_the_user_fails_with_what_to_change(nobody, home):
    m = _mkdir_for_nobody(home / "m")
    os.chmod("/dev/fuse", 0o600)
    try:
        r = run_as_nobody(nobody, "mount", str(m))
    finally:
        os.chmod("/dev/fuse", 0o666)
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == ("pidfs-fuse: cannot open /dev/fuse (mode 0600, group 0): a normal user's "
                        "FUSE mount needs it readable and writable; ask root to make it so "
                        "(chmod 0666 /dev/fuse, as Debian does, or add you to its group)\n")
    assert rundir.mount_at(str(m)) is None


def test_allow_other_needs_user_allow_other(nobody, home):
    if client.fuse_conf_allows_other():
        pytest.skip("/etc/fuse.conf allows allow_other here")
    m = _mkdir_for_nobody(home / "m")
    r = run_as_nobody(nobody, "mount", str(m), "-o", "allow_other")
    assert (r.returncode, r.stderr) == (1, (
        "pidfs-fuse: -o allow_other needs a line 'user_allow_other' in /etc/fuse.conf when you are "
        "not root (ask root to add it); without allow_other only you (uid 65534) can read the mount\n"))
    assert rundir.mount_at(str(m)) is None


def test_a_run_directory_that_is_not_the_users_own_is_refused(nobody, home):
    m = _mkdir_for_nobody(home / "m")
    tmp = _mkdir_for_nobody(home / "tmp", 0o777)
    taken = tmp / f"pidfs-fuse-{NOBODY}"
    taken.mkdir()  # root's, in a directory everyone may write: what an attacker could plant
    r = run_as_nobody(nobody, "mount", str(m), env={"TMPDIR": str(tmp)})
    assert (r.returncode, r.stderr) == (1, (
        f"pidfs-fuse: run directory {taken} belongs to uid 0, not to you (uid {NOBODY}): remove "
        f"it, or set XDG_RUNTIME_DIR to a private directory of yours\n"))
    os.chown(taken, NOBODY, NOBODY)
    os.chmod(taken, 0o755)
    r = run_as_nobody(nobody, "mount", str(m), env={"TMPDIR": str(tmp)})
    assert (r.returncode, r.stderr) == (1, (
        f"pidfs-fuse: run directory {taken} is open to others (mode 0755): chmod 700 {taken}, "
        f"or remove it\n"))
    assert rundir.mount_at(str(m)) is None
    assert os.listdir(taken) == []


def test_xdg_runtime_dir_holds_the_run_directory_when_it_is_private(nobody, home):
    m = _mkdir_for_nobody(home / "m")
    xdg = _mkdir_for_nobody(home / "xdg", 0o700)
    env = {"XDG_RUNTIME_DIR": str(xdg)}
    assert run_as_nobody(nobody, "mount", str(m), env=env).returncode == 0
    try:
        names = os.listdir(xdg / "pidfs-fuse")
        key = rundir.mount_key(str(m))
        assert sorted(names) == [f"{key}.json", f"{key}.log"]
    finally:
        r = run_as_nobody(nobody, "unmount", str(m), env=env)
    assert r.returncode == 0, r.stderr
    assert os.listdir(xdg / "pidfs-fuse") == []
