"""Input files are untrusted (issue 9, point 6): snapshots and scenarios are refused when they
are not regular files, too large or nested too deeply, and every number in them is checked
against what the model can hold. The fuzz test mutates a snapshot (bit flips, truncations, every
integer set to 0, -1, 2**31, 2**63 and 2**64) and requires each load either to fail with one
sentence naming the file, or to give a table that behaves: no inode number shared by two
files, every file of the mount readable without EIO, and a snapshot of it that loads again to
the same table.
"""

from __future__ import annotations

import errno
import json
import os
import random
import socket
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyfuse3
import pytest
import trio

from pidfs_fuse import scenario
from pidfs_fuse import snapshot as snap
from pidfs_fuse.control import Control
from pidfs_fuse.kernel import Kernel
from pidfs_fuse.kernel import restore as R
from pidfs_fuse.mount.fs import PidFs
from pidfs_fuse.mount.inodes import NODE_BASE
from pidfs_fuse.scenario import ScenarioError
from pidfs_fuse.tests.conftest import fuzz_budget

CTX = SimpleNamespace(uid=0, gid=0, pid=1)


def zero() -> int:
    return 0


# -- files that are not inputs --------------------------------------------------------------------


def _not_regular(tmp_path: Path) -> list[tuple[str, int, str]]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: opening it must not wait for one
    sock = tmp_path / "sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))
    s.close()
    return [("/dev/zero", errno.EINVAL, "a character device"), (str(tmp_path), errno.EISDIR, "a directory"),
            (str(fifo), errno.EINVAL, "a FIFO"), (str(sock), errno.ENXIO, "")]


@pytest.mark.parametrize("fmt", ["snapshot", "scenario"])
def test_only_regular_files_are_read(tmp_path: Path, fmt: str) -> None:
    for path, err, kind in _not_regular(tmp_path):
        with pytest.raises((snap.SnapshotError, ScenarioError)) as e:
            snap.restore_file(path) if fmt == "snapshot" else scenario.load(path)
        assert e.value.errno == err, (path, str(e.value))
        if kind:  # a socket cannot even be opened: ENXIO, "No such device or address"
            assert str(e.value) == f"{path}: is {kind}; a {fmt} is read only from a regular file"
        else:
            assert str(e.value) == f"{path}: No such device or address"


def test_size_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "big.toml"
    f.write_text("# padding\n" * 10)
    monkeypatch.setattr(scenario, "MAX_BYTES", 50)
    with pytest.raises(ScenarioError) as e:
        scenario.load(f)
    assert (e.value.errno, str(e.value)) == (errno.EFBIG, f"{f}: 100 bytes; a scenario is at most 50 bytes")
    s = tmp_path / "big.snap"
    snap.write_snapshot(Kernel(clock=zero), s)
    size = s.stat().st_size
    monkeypatch.setattr(snap, "MAX_FILE_BYTES", size - 1)
    with pytest.raises(snap.SnapshotError) as e2:
        snap.restore_file(s)
    assert e2.value.errno == errno.EFBIG
    monkeypatch.setattr(snap, "MAX_FILE_BYTES", size)
    lines = s.read_bytes().split(b"\n")[:-1]
    longest = max(len(ln) + 1 for ln in lines)  # with its newline
    i = next(i for i, ln in enumerate(lines) if len(ln) + 1 == longest)
    monkeypatch.setattr(snap, "MAX_LINE_BYTES", longest - 1)
    with pytest.raises(snap.SnapshotError) as e2:
        snap.restore_file(s)
    where = "header" if i == 0 else f"records[{i - 1}]"
    assert str(e2.value) == f"{s}: line {i + 1}: {where}: longer than {longest - 1:,} bytes (a record is far smaller)"
    monkeypatch.setattr(snap, "MAX_LINE_BYTES", longest)
    assert snap.restore_file(s, clock=zero).nr_threads == 1


def test_deep_nesting_is_one_sentence(tmp_path: Path) -> None:
    t = tmp_path / "deep.toml"
    t.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ScenarioError) as e:
        scenario.load(t)
    assert str(e.value) == f"{t}: invalid TOML: nested deeper than the parser allows (about 1000 levels)"
    s = tmp_path / "deep.snap"
    snap.write_snapshot(Kernel(clock=zero), s)
    lines = s.read_text().splitlines()
    lines.insert(1, "[" * 100_000 + "]" * 100_000)
    s.write_text("\n".join(lines) + "\n")
    with pytest.raises(snap.SnapshotError) as e2:
        snap.restore_file(s)
    assert str(e2.value) == f"{s}: line 2: records[0]: nested deeper than the parser allows (about 1000 levels)"


def test_scenario_errors_give_the_line_of_the_entry(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('name = "x"\n\n[kernel]\npid_max = 5\n\n[[process]]\nname = "a"\n\n[[ process ]]  # b\n'
                 'name = "b"\nnice = 50\n')
    with pytest.raises(ScenarioError) as e:
        scenario.load(f)
    assert str(e.value) == f"{f}: line 3: kernel.pid_max: boot: EINVAL: pid_max 5 is outside 301..4194304"
    f.write_text(f.read_text().replace("pid_max = 5", "pid_max = 500"))
    with pytest.raises(ScenarioError) as e:
        scenario.load(f)
    assert str(e.value).startswith(f"{f}: line 9: process[1].nice: ")


def test_a_scenario_larger_than_the_pid_space_fails_before_cloning(tmp_path: Path) -> None:
    f = tmp_path / "huge.toml"
    f.write_text('[[process]]\nname = "a"\ncount = 4194303\nthreads = 1\n')
    with pytest.raises(ScenarioError) as e:
        scenario.load(f)  # at once: nothing is cloned
    assert (e.value.errno, str(e.value)) == (
        errno.EAGAIN, f"{f}: makes 8,388,607 tasks; a table holds at most 4,194,303 (one number each "
        "in the root namespace)")


@pytest.mark.parametrize(("key", "value", "bound"), [
    ("tasks", snap.TASKS_MAX + 1, f"1..{snap.TASKS_MAX}"),
    ("processes", 2**63, f"1..{snap.TASKS_MAX}"),
    ("next_ino", R.INO_LIMIT + 1, f"3..{R.INO_LIMIT}"),
    ("next_ns_inum", 2**32 + 1, "4026531837..4294967296"),
    ("clock", 2**62 + 1, "0..4611686018427387904"),
    ("total_forks", 2**63, "0..9223372036854775807"),
])
def test_header_numbers_are_bounded_by_the_model(tmp_path: Path, key: str, value: int, bound: str) -> None:
    s = tmp_path / "h.snap"
    snap.write_snapshot(Kernel(clock=zero), s)
    lines = s.read_text().splitlines()
    h = json.loads(lines[0])
    h[key] = value
    s.write_text("\n".join([json.dumps(h), *lines[1:]]) + "\n")
    with pytest.raises(snap.SnapshotError) as e:
        snap.restore_file(s)
    assert str(e.value) == f"{s}: line 1: {key}: expected an integer in {bound}, got {value}"


def test_the_mount_numbers_its_nodes_above_every_pidfs_inode() -> None:
    assert R.INO_LIMIT <= NODE_BASE


# -- the fuzz -------------------------------------------------------------------------------------


def _base_table() -> Kernel:
    """A small table with one of everything a snapshot records: threads, a zombie, a handle in
    an fd table, a reaped pid a handle keeps, a nested namespace, a daemonized session, a
    stopped process, fields."""
    k = Kernel(clock=zero)
    c = Control(k)
    svc = c.execute("clone 1 comm=svc argv='svc -x'").split()[0]
    c.execute(f"clone {svc} thread count=2 comm=worker")
    z = c.execute("clone 1 pidfd comm=zomb").split()[0]
    c.execute(f"exit_group {z} 3")
    gone = c.execute("clone 1 pidfd comm=gone").split()[0]
    c.execute(f"kill {gone} TERM")
    c.execute(f"wait 1 pid={gone}")
    boss = c.execute("clone 1 comm=boss").split()[0]
    c.execute(f"setsid {boss}")
    kid = c.execute(f"clone {boss} comm=kid").split()[0]
    c.execute(f"kill {kid} STOP")
    c.execute(f"unshare {boss} newpid")
    nsinit = c.execute(f"clone {boss} comm=nsinit").split()[0]
    c.execute(f"set {boss} nice=5 uid=1000 environ=A=1 sigign=PIPE")
    c.execute(f"clone {nsinit} comm=inner")
    d = c.execute("clone 1 comm=d").split()[0]
    d2 = c.execute(f"clone {d} comm=d2").split()[0]
    c.execute(f"setsid {d2}")
    c.execute(f"exit_group {d} 0")
    c.execute(f"wait 1 pid={d}")
    return k


def _walk_mount(k: Kernel) -> list[str]:
    """Every request a reader of the whole mount makes, in process: list every directory, look
    up every name, read every file (not the blocking handle files), read every link. Returns
    the problems: EIO anywhere, two nodes with one inode number."""
    problems: list[str] = []
    fs = PidFs(k)
    seen: dict[int, str] = {}

    async def one(path: str, fn: Any, *args: Any) -> Any:
        try:
            return await fn(*args)
        except pyfuse3.FUSEError as e:
            if e.errno == errno.EIO:
                problems.append(f"{path}: EIO from {fn.__name__}")
            return None

    async def walk(ino: int, path: str, depth: int) -> None:
        fh = await one(path, fs.opendir, ino, CTX)
        if fh is None:
            return
        names: list[bytes] = []

        def reply(token: Any, name: bytes, attr: Any, next_id: int) -> bool:
            names.append(name)
            return True
        real = pyfuse3.readdir_reply
        pyfuse3.readdir_reply = reply
        try:
            await one(path, fs.readdir, fh, 0, None)
        finally:
            pyfuse3.readdir_reply = real
            await fs.releasedir(fh)
        for name in names:
            if name in (b".", b".."):  # every listing starts with them; a walker skips them
                continue
            sub = f"{path}/{name.decode()}"
            attr = await one(sub, fs.lookup, ino, name, CTX)
            if attr is None:
                continue
            other = seen.setdefault(attr.st_ino, sub)
            node = fs.table.get(attr.st_ino)
            if other != sub and node is not None and node.name != name:
                problems.append(f"{sub} and {other} share inode {attr.st_ino}")
            mode = attr.st_mode
            if stat.S_ISDIR(mode):
                if depth < 4:
                    await walk(attr.st_ino, sub, depth + 1)
            elif stat.S_ISLNK(mode):
                await one(sub, fs.readlink, attr.st_ino, CTX)
            # mem answers EIO at offset 0 (unmapped), as Linux does: not a model error
            elif name not in (b"pidfd", b".control", b"mem") and not path.endswith("/.pidfs"):
                fi = await one(sub, fs.open, attr.st_ino, os.O_RDONLY, CTX)
                if fi is not None:
                    await one(sub, fs.read, fi.fh, 0, 1 << 16)
                    await fs.release(fi.fh)

    trio.run(walk, pyfuse3.ROOT_INODE, "", 0)
    return problems + _inode_problems(k)


def _inode_problems(k: Kernel) -> list[str]:
    problems = []
    inos = [p.ino for p in R.allocated_pids(k)]
    if len(set(inos)) != len(inos) or max(inos) >= NODE_BASE:
        problems.append("pidfs inode numbers are shared or reach the mount's node numbers")
    inums = [ns.inum for ns in k.namespaces()]
    if len(set(inums)) != len(inums):
        problems.append("two pid namespaces share an inode number")
    return problems


def _check_load(path: Path, why: str) -> Kernel | None:
    """Load ``path``: a clean failure (one sentence naming the file) or a table that behaves."""
    try:
        k = snap.restore_file(path, clock=zero)
    except snap.SnapshotError as e:
        msg = str(e)
        assert msg.startswith(f"{path}: ") and "\n" not in msg and "Traceback" not in msg, (why, msg)
        assert e.errno in (errno.EINVAL, errno.EEXIST), (why, msg)
        return None
    return k


#: walk the mount of every n-th table that loaded (every one under ``make fuzz``); the inode and
#: round-trip checks run on all of them
WALK_EVERY = 1 if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" else 4
_loaded = iter(range(10**9))


def _behaves(k: Kernel, tmp: Path, why: str) -> None:
    problems = _walk_mount(k) if next(_loaded) % WALK_EVERY == 0 else _inode_problems(k)
    assert not problems, (why, problems[:5])
    again = tmp / "again.snap"
    snap.write_snapshot(k, again)  # what loaded, saved, loads again to the same table
    assert snap.dump(snap.restore_file(again, clock=zero)) == snap.dump(k), why


def _int_paths(obj: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(obj, bool):
        return []
    if isinstance(obj, int):
        return [path]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _int_paths(v, (*path, k))]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in _int_paths(v, (*path, i))]
    return []


def _set(obj: Any, path: tuple, value: int) -> None:
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


@pytest.mark.fuzz
@pytest.mark.parametrize("value", [0, -1, 2**64] + fuzz_budget(0, 1) * [2**31, 2**63])
def test_fuzz_every_integer(tmp_path: Path, value: int) -> None:
    base = tmp_path / "base.snap"
    snap.write_snapshot(_base_table(), base)
    lines = base.read_text().splitlines()
    f = tmp_path / "m.snap"
    loaded = failed = 0
    for i, line in enumerate(lines):
        rec = json.loads(line)
        for p in _int_paths(rec):
            mutated = json.loads(line)
            _set(mutated, p, value)
            f.write_text("\n".join([*lines[:i], json.dumps(mutated), *lines[i + 1:]]) + "\n")
            why = f"line {i + 1} {list(p)} = {value}"
            k = _check_load(f, why)
            if k is None:
                failed += 1
            else:
                loaded += 1
                _behaves(k, tmp_path, why)
    assert failed and (loaded or value > 2**31)  # both outcomes are exercised


def test_fuzz_bit_flips_and_truncation(tmp_path: Path) -> None:
    base = tmp_path / "base.snap"
    snap.write_snapshot(_base_table(), base)
    data = base.read_bytes()
    f = tmp_path / "m.snap"
    rnd = random.Random(9)
    cuts = sorted({0, 1, len(data) - 1, *(i + 1 for i, b in enumerate(data) if b == 0x0A),
                   *(rnd.randrange(len(data)) for _ in range(40))})
    for cut in cuts:
        f.write_bytes(data[:cut])
        k = _check_load(f, f"cut at {cut}")
        assert k is None or cut >= len(data) - 1, cut  # only the last newline may go
    outcomes = {"loaded": 0, "failed": 0}
    for n in range(300):
        b = bytearray(data)
        pos = rnd.randrange(len(b))
        b[pos] ^= 1 << rnd.randrange(8)
        f.write_bytes(bytes(b))
        k = _check_load(f, f"flip {n} at {pos}")
        outcomes["failed" if k is None else "loaded"] += 1
        if k is not None:
            _behaves(k, tmp_path, f"flip {n} at byte {pos}")
    assert outcomes["failed"] and outcomes["loaded"], outcomes


def test_the_walk_reports_eio_and_shared_inodes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fuzz's check can fail: a renderer that breaks shows up as EIO at its path."""
    from pidfs_fuse.mount.nodes.table import PidFile

    k = _base_table()
    assert _walk_mount(k) == []

    def broken(self: Any, fs: Any, node: Any) -> bytes:
        raise ValueError("a renderer bug")
    monkeypatch.setattr(PidFile, "render", broken)
    problems = _walk_mount(k)
    assert "/1: EIO from readdir" in problems, problems[:3]  # listing /1 renders its files' sizes
    k.init.pid.ino = max(p.ino for p in R.allocated_pids(k) if p is not k.init.pid)
    assert "pidfs inode numbers are shared or reach the mount's node numbers" in _inode_problems(k)
