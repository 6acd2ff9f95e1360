"""Snapshot and restore through real mounts: ``ctl DIR snapshot FILE`` then
``mount DIR2 --restore FILE`` gives a table whose own snapshot is the same file, and whose every
file reads the same as the original's.

What is compared, and how:
- the two snapshot files line by line; the header's ``clock`` (uptime at the snapshot) is the
  one value allowed to differ, and only forward;
- every directory listing (names, in order), and every file's and link's type, mode, owner and
  link count, in both trees: the root, every ``/<pid>/`` with its ``task/<tid>/``, ``fd/``,
  ``fdinfo/`` and ``ns/``, and ``/.pidns/<inum>/`` of every child namespace;
- the content of every per-pid file byte for byte (no per-pid file depends on the clock), and of
  the global files except ``/stat`` and ``/uptime`` (and their ``/.pidns/<inum>/`` copies),
  which move with time: those are compared by
  structure (the same line keys and field counts; ``processes``, ``procs_running`` and
  ``procs_blocked`` equal), as ``btime`` moves by the time between snapshot and restore;
- not opened: ``pidfd`` handle files and ``/.pidfs/<ino>`` (opening one binds a handle, which
  changes the table, and a read blocks while the process runs) and ``.control``; ``self`` and
  ``thread-self`` are compared as links only (they resolve to the caller, whose stand-in entry
  is created with the current time);
- timestamps are not compared (they derive from the wall-clock boot time).
"""

from __future__ import annotations

import errno
import json
import os
import stat as S
from pathlib import Path

import pytest

from .conftest import Mount, run_cli

NOT_OPENED = {"pidfd", ".control"}
TIME_VARYING = {"stat", "uptime"}
#: global files whose numbers move with the clock (vmstat's and the disks' counters, stall
#: totals) or that are new per boot or read (boot_id, uuid): compared by structure, not value
CLOCK_VARYING = {"vmstat", "diskstats", "pressure/cpu", "pressure/io", "pressure/memory",
                 "sys/kernel/random/boot_id", "sys/kernel/random/uuid"}


def _changes(m: Mount) -> None:
    """Drive the default table through the control file: new processes and threads, a thread
    that exits, an exec by a thread, zombies, a reaped child whose handle lives on, a stop, a
    session and a group, fields, a subreaper, a new pid namespace with its own pid_max, and a
    root cursor that wraps."""
    svc = m.new(1, "comm=svc", "argv=/usr/bin/svc --serve")
    tids = [int(x) for x in m.ctl("clone", str(svc), "thread", "count=4", "comm=worker").split()]
    m.ctl("exit", str(tids[0]), "4")
    m.ctl("exec", str(tids[1]), "comm=svc-exec'd", "argv=svc2 -x")  # de_thread: the thread leads
    m.ctl("set", str(svc), "nice=5", "rss=1234", "environ=A=1 'B=two words'", "cwd=/srv", "uid=1000")
    job = m.new(1, "pidfd", "wait_pid", "comm=job")
    m.ctl("exit_group", str(job), "3")  # a zombie only a targeted wait reaps
    gone = m.new(1, "pidfd", "comm=gone")
    m.ctl("kill", str(gone), "TERM")
    assert m.ctl("wait", "1", f"pid={gone}").split()[:2] == [str(gone), "killed"]  # handle outlives it
    seg = m.new(1, "comm=seg")
    m.ctl("kill", str(seg), "SEGV")  # a zombie with a core-dump status
    boss = m.new(1, "comm=boss")
    m.ctl("setsid", str(boss))
    kid = m.new(boss, "comm=kid")
    m.ctl("setpgid", str(kid), "0")
    m.ctl("kill", str(kid), "STOP")
    m.ctl("subreaper", str(boss), "on")
    m.ctl("set", str(boss), "sigign=PIPE,HUP", "tty_nr=34817", "utime=99", "state=R")
    m.ctl("unshare", str(boss), "newpid")
    nsinit = m.new(boss, "comm=nsinit")
    m.ctl("pid_max", str(nsinit), "500")
    m.new(nsinit, "comm=inner")
    m.ctl("ns_last_pid", "1", "32760")
    m.ctl("clone", "1", "comm=wrap", "count=12")  # the root cursor wraps to 300+
    m.ctl("close", "1", "3")  # a hole in init's fd table


def _snapshot(m: Mount, path: Path) -> list[dict]:
    out = m.ctl("snapshot", str(path))
    lines = path.read_text().splitlines()
    assert out == f"snapshot {path}: {json.loads(lines[0])['tasks']} tasks\n"
    return [json.loads(ln) for ln in lines]


@pytest.fixture
def restored(mount_table, tmp_path):
    """(original mount, restored mount, first snapshot, second snapshot)."""
    m = mount_table()
    _changes(m)
    s1 = _snapshot(m, tmp_path / "one.snap")
    m2 = mount_table("--restore", str(tmp_path / "one.snap"))
    s2 = _snapshot(m2, tmp_path / "two.snap")
    return m, m2, s1, s2


def test_snapshot_of_a_restored_table_is_the_same_file(restored) -> None:
    _m, _m2, s1, s2 = restored
    h1, h2 = s1[0], s2[0]
    assert h2.pop("clock") >= h1.pop("clock")  # uptime continues from the snapshot's
    assert h2 == h1
    assert s2[1:] == s1[1:]
    kinds = {next(iter(r)) for r in s1[1:]}
    assert {"ns", "process", "pid", "end"} <= kinds  # pgid/sid-only and handle-held pids too
    assert s1[0]["tasks"] > 80


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _attempt(fn, path: str) -> object:
    """fn(path), or the errno it fails with (a zombie's ns links answer ENOENT, as in Linux)."""
    try:
        return fn(path)
    except OSError as e:
        return ("error", errno.errorcode.get(e.errno, e.errno))


def _walk(root: str) -> dict[str, object]:
    """path -> what it shows (see the module docstring for what is read and how)."""
    out: dict[str, object] = {}

    def meta(st: os.stat_result) -> tuple:
        return (S.S_IFMT(st.st_mode), S.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_nlink)

    def visit(rel: str) -> None:
        path = os.path.join(root, rel)
        names = os.listdir(path)
        out[rel + "/"] = names  # listing order matters (ps prints in directory order)
        for name in names:
            r = os.path.join(rel, name) if rel else name
            p = os.path.join(root, r)
            st = os.lstat(p)
            if S.S_ISLNK(st.st_mode):
                out[r] = (meta(st), _attempt(os.readlink, p))
            elif S.S_ISDIR(st.st_mode):
                out[r] = meta(st)
                if r not in (".pidfs", ".pidns"):
                    visit(r)
            elif name in NOT_OPENED or rel == ".pidfs":
                out[r] = meta(st)
            else:
                data = _attempt(_read, p)
                if name in TIME_VARYING and (rel == "" or os.path.dirname(rel) == ".pidns"):
                    data = _structure(name, data)
                elif r.split("/.pidns/")[-1] in CLOCK_VARYING or _global_path(r) in CLOCK_VARYING:
                    data = _shape(data)
                out[r] = (meta(st), data)

    visit("")
    # /.pidns/<inum>/ of each child namespace, found through the ns/pid links (the root
    # namespace's own entry is the root itself)
    def inum(link: object) -> str:
        return str(link).removeprefix("pid:[").removesuffix("]")

    root_inum = inum(out["1/ns/pid"][1])
    links = {inum(v[1]) for k, v in out.items() if k.endswith("/ns/pid") and isinstance(v[1], str)}
    for ns in sorted(links - {root_inum}):
        visit(os.path.join(".pidns", ns))
    return out


def _global_path(r: str) -> str:
    """``.pidns/<inum>/vmstat`` -> ``vmstat``; a root path stays as it is."""
    parts = r.split("/")
    return "/".join(parts[2:]) if parts[0] == ".pidns" else r


def _shape(data: bytes) -> object:
    """Per line: its first word (but a UUID's) and its number of fields and characters."""
    return [(ln.split()[0] if ln.split() and ln.count("-") != 4 else "", len(ln.split()), len(ln))
            for ln in data.decode().splitlines()]


def _structure(name: str, data: bytes) -> object:
    lines = data.decode().splitlines()
    if name == "uptime":
        return [len(ln.split()) for ln in lines]
    keep = ("processes", "procs_running", "procs_blocked")
    return [ln if ln.split()[0] in keep else (ln.split()[0], len(ln.split())) for ln in lines]


def test_every_file_reads_the_same_in_both_mounts(restored) -> None:
    m, m2, _s1, _s2 = restored
    a, b = _walk(m.path), _walk(m2.path)
    assert len(a) > 2000, len(a)
    assert any(k.startswith(".pidns/") for k in a), "the child namespace's view is compared too"
    assert sorted(a) == sorted(b)
    diff = [k for k in a if a[k] != b[k]]
    assert not diff, [(k, a[k], b[k]) for k in diff[:5]]


def test_next_clone_gets_the_same_number_in_both(restored) -> None:
    m, m2, _s1, _s2 = restored
    assert m.ctl("clone", "1", "count=3") == m2.ctl("clone", "1", "count=3")
    p = m.new(1, "comm=p")
    assert m2.new(1, "comm=p") == p
    assert m.ctl("clone", str(p), "count=3") == m2.ctl("clone", str(p), "count=3")
    nsinit = next(n for n in os.listdir(m.path) if n.isdigit() and (m / n / "comm").read_text() == "nsinit\n")
    assert m.ctl("clone", nsinit) == m2.ctl("clone", nsinit)  # in the child namespace too


def test_snapshot_needs_an_absolute_path(mnt, tmp_path) -> None:
    err, reply = mnt.ctl_raw("snapshot relative.snap\n")
    assert err == errno.EINVAL and "absolute" in reply
    err, reply = mnt.ctl_raw(f"snapshot {tmp_path}/no/such/dir.snap\n")
    assert err == errno.ENOENT
    err, reply = mnt.ctl_raw(f"snapshot {mnt.path}/1/x.snap\n")  # would deadlock the server
    assert err == errno.EINVAL and "inside the pidfs-fuse mount" in reply
    assert mnt.ctl("clone", "1").strip().isdigit()  # still answers


def test_snapshot_writes_only_regular_files_outside_every_pidfs_mount(mount_table, mnt, tmp_path) -> None:
    other = mount_table()  # another pidfs-fuse mount, served by another server
    tmp_path = tmp_path / "files"  # the mounts live in tmp_path itself
    tmp_path.mkdir()
    (tmp_path / "into-other").symlink_to(f"{other.path}/1/x.snap")
    (tmp_path / "into-own").symlink_to(mnt.path)
    for path, where in ((tmp_path / "into-other", other.path), (tmp_path / "into-own" / "x.snap", mnt.path)):
        err, reply = mnt.ctl_raw(f"snapshot {path}\n")
        assert err == errno.EINVAL, reply
        assert reply.startswith(f"error: EINVAL: {path}: is inside the pidfs-fuse mount {where} "
                                "(it resolves to "), reply
    d = tmp_path / "dir"
    d.mkdir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, err_, kind in ((d, errno.EISDIR, "a directory"), (fifo, errno.EINVAL, "a FIFO"),
                             (Path("/dev/null"), errno.EINVAL, "a character device")):
        st = os.lstat(path)
        err, reply = mnt.ctl_raw(f"snapshot {path}\n")
        assert err == err_ and f": {path}: is {kind}; a snapshot " in reply, reply
        after = os.lstat(path)
        assert (after.st_ino, S.S_IFMT(after.st_mode)) == (st.st_ino, S.S_IFMT(st.st_mode))
    assert sorted(os.listdir(tmp_path)) == ["dir", "fifo", "into-other", "into-own"]
    f = tmp_path / "table.snap"
    f.write_text("old\n")
    ino = f.stat().st_ino
    mnt.ctl("snapshot", str(f))  # an existing regular file is replaced by a rename
    assert f.stat().st_ino != ino and f.read_text().startswith('{"format":"pidfs_fuse-snapshot"')
    assert S.S_IMODE(f.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["dir", "fifo", "into-other", "into-own", "table.snap"]
    assert mnt.ctl("clone", "1").strip().isdigit()  # still answers


def test_restore_of_a_bad_file_names_it_and_mounts_nothing(mount_table, mnt, tmp_path) -> None:
    good = tmp_path / "good.snap"
    mnt.ctl("snapshot", str(good))
    lines = good.read_text().splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith('{"process"') and '"parent":2,' in ln)
    rec = json.loads(lines[i])
    rec["parent"] = 10**9
    bad = tmp_path / "bad.snap"
    bad.write_text("\n".join(lines[:i] + [json.dumps(rec)] + lines[i + 1:]) + "\n")
    d = tmp_path / "mnt"
    d.mkdir()
    r = run_cli("mount", str(d), "--restore", str(bad), check=False)
    assert r.returncode == 1
    assert f"{bad}: line {i + 1}: records[{i - 1}].parent: 1000000000 is not a task" in r.stderr, r.stderr
    assert not os.path.ismount(d)
    r = run_cli("mount", str(d), "--restore", str(tmp_path / "missing.snap"), check=False)
    assert r.returncode == 1 and "No such file" in r.stderr and not os.path.ismount(d)
