"""The mount routes, node kinds decide: in-process checks of PidFs without a FUSE mount
(``pyfuse3.readdir_reply`` is replaced by a collector; no request reaches the kernel)."""

from __future__ import annotations

import errno
from types import SimpleNamespace

import pyfuse3
import pytest

from pidfs_fuse.control import Control
from pidfs_fuse.kernel import CLONE_THREAD, Kernel
from pidfs_fuse.mount.fs import PidFs
from pidfs_fuse.mount.inodes import derived_ino
from pidfs_fuse.mount.nodes import FIRST_PROCESS_ENTRY, TGID_OFFSET
from pidfs_fuse.mount.nodes.piddir import PidDir, TaskDir, TidDir
from pidfs_fuse.mount.nodes.special import ControlFile, HandleFile, HostProcDir, PidfsDir, PidnsDir
from pidfs_fuse.mount.nodes.table import GlobalFile, PidFile, SelfLink, SysctlFile, TableDir
from pidfs_fuse.procfs.tables import ROOT_FILES
from pidfs_fuse.procfs.view import parse_mount_options

ROOT = pyfuse3.ROOT_INODE
CTX = SimpleNamespace(uid=0, gid=0, pid=1)


@pytest.fixture
def listed(monkeypatch):
    """readdir(fs, inode, start) -> [(name, next_id)] as the kernel would receive them."""

    async def run(fs: PidFs, inode: int, start: int = 0):
        got: list[tuple[str, int]] = []

        def reply(token, name, attr, next_id):
            got.append((name.decode(), next_id))
            return True

        monkeypatch.setattr(pyfuse3, "readdir_reply", reply)
        await fs.readdir(inode, start, None)
        return got

    return run


def _table():
    k = Kernel()
    svc = k.clone(k.init, comm="svc").task
    k.clone(svc, comm="worker", flags=CLONE_THREAD)
    return k, svc


async def test_root_lists_its_rows_then_self_then_pids_at_stable_offsets(listed) -> None:
    k, svc = _table()
    fs = PidFs(k)
    got = await listed(fs, ROOT)
    assert got[:2] == [(".", 1), ("..", 2)]  # dir_emit_dots(), then the rows from offset 3
    assert got[2] == ("cpuinfo", 3)
    got = got[2:]
    names = [n for n, _ in got]
    assert names[:7] == ["cpuinfo", "loadavg", "meminfo", "stat", "uptime", "version", "sys"]
    n = len(ROOT_FILES)
    assert names[n:n + 6] == [".control", ".pidfs", ".pidns", ".host-proc", "self", "thread-self"]
    got = got[n - 7:]  # as if the root had its first seven rows only
    assert got[11:13] == [("self", FIRST_PROCESS_ENTRY + 1), ("thread-self", FIRST_PROCESS_ENTRY + 2)]
    assert got[13:] == [("1", TGID_OFFSET + 2), (str(svc.pid.nr), TGID_OFFSET + svc.pid.nr + 1)]
    # resuming after thread-self starts at the first pid; after pid 1 at the next
    assert [n for n, _ in await listed(fs, ROOT, FIRST_PROCESS_ENTRY + 2)] == ["1", str(svc.pid.nr)]
    assert [n for n, _ in await listed(fs, ROOT, TGID_OFFSET + 2)] == [str(svc.pid.nr)]
    assert [n for n, _ in await listed(fs, ROOT, n + 4)][:3] == [".pidns", ".host-proc", "self"]


async def test_every_listed_root_name_resolves_to_the_listed_node_and_kind(listed) -> None:
    k, _ = _table()
    fs = PidFs(k)
    kinds = {"cpuinfo": GlobalFile, "sys": TableDir, ".control": ControlFile, ".pidfs": PidfsDir,
             ".pidns": PidnsDir, ".host-proc": HostProcDir, "self": SelfLink,
             "thread-self": SelfLink, "1": PidDir}
    for name, _ in (await listed(fs, ROOT))[2:]:  # after . and ..
        attr = await fs.lookup(ROOT, name.encode(), CTX)
        node = fs.table.get(attr.st_ino)
        assert node.name == name.encode()
        if name in kinds:
            assert type(node.ops) is kinds[name], name


async def test_subset_pid_root_has_no_global_rows_but_keeps_the_mounts_own(listed) -> None:
    k, _ = _table()
    fs = PidFs(k, options=parse_mount_options("subset=pid"))
    names = [n for n, _ in await listed(fs, ROOT)]
    assert names[:8] == [".", "..", ".control", ".pidfs", ".pidns", ".host-proc", "self", "thread-self"]
    with pytest.raises(pyfuse3.FUSEError) as e:
        await fs.lookup(ROOT, b"meminfo", CTX)
    assert e.value.errno == errno.ENOENT


async def test_every_directory_lists_dot_and_dotdot_with_its_own_and_its_parents_inode(
        monkeypatch) -> None:
    """dir_emit_dots(): ``.`` is the directory, ``..`` its parent (a root: itself), at offsets
    1 and 2, and neither counts a lookup (the kernel does not link dots from readdirplus)."""
    k, svc = _table()
    fs = PidFs(k)
    got: list[tuple[str, int, int]] = []

    def reply(token, name, attr, next_id):
        got.append((name.decode(), attr.st_ino, next_id))
        return True

    monkeypatch.setattr(pyfuse3, "readdir_reply", reply)
    pid = (await fs.lookup(ROOT, str(svc.pid.nr).encode(), CTX)).st_ino
    task = (await fs.lookup(pid, b"task", CTX)).st_ino
    tid = (await fs.lookup(task, str(svc.pid.nr).encode(), CTX)).st_ino
    sys_ = (await fs.lookup(ROOT, b"sys", CTX)).st_ino
    kernel = (await fs.lookup(sys_, b"kernel", CTX)).st_ino
    fd = (await fs.lookup(pid, b"fd", CTX)).st_ino
    for ino, parent in ((ROOT, ROOT), (pid, ROOT), (task, pid), (tid, task), (sys_, ROOT),
                        (kernel, sys_), (fd, pid)):
        node, up = fs.table.get(ino), fs.table.get(parent)
        assert node is not None and up is not None
        before = node.lookups, up.lookups
        got.clear()
        await fs.readdir(ino, 0, None)
        assert got[:2] == [(".", ino, 1), ("..", parent, 2)]
        assert all(name not in (".", "..") for name, _, _ in got[2:])
        assert (node.lookups, up.lookups) == before
        got.clear()
        await fs.readdir(ino, 1, None)  # resumed after .
        assert got[0][0] == ".."
        got.clear()
        await fs.readdir(ino, 2, None)  # resumed after ..
        assert not got or got[0][0] not in (".", "..")


async def test_pid_directory_rows_and_their_kinds() -> None:
    k, svc = _table()
    fs = PidFs(k)
    pid = await fs.lookup(ROOT, str(svc.pid.nr).encode(), CTX)

    async def kind_of(parent: int, name: str):
        attr = await fs.lookup(parent, name.encode(), CTX)
        return attr, type(fs.table.get(attr.st_ino).ops)

    assert (await kind_of(pid.st_ino, "status"))[1] is PidFile
    assert (await kind_of(pid.st_ino, "task"))[1] is TaskDir
    handle, kind = await kind_of(pid.st_ino, "pidfd")
    assert kind is HandleFile and handle.st_ino == svc.pid.ino
    task_dir = await fs.lookup(pid.st_ino, b"task", CTX)
    worker = next(t for t in svc.group.threads if t is not svc)
    assert (await kind_of(task_dir.st_ino, str(worker.pid.nr)))[1] is TidDir
    # a thread's pid through the process path has no handle file (pidfd_open's ENOENT)
    thread_as_pid = await fs.lookup(ROOT, str(worker.pid.nr).encode(), CTX)
    with pytest.raises(pyfuse3.FUSEError) as e:
        await fs.lookup(thread_as_pid.st_ino, b"pidfd", CTX)
    assert e.value.errno == errno.ENOENT
    sys_dir = await fs.lookup(ROOT, b"sys", CTX)
    kernel_dir = await fs.lookup(sys_dir.st_ino, b"kernel", CTX)
    assert (await kind_of(kernel_dir.st_ino, "pid_max"))[1] is SysctlFile


def test_control_line_splitting_is_linear_in_the_bytes_written():
    """A line of MAX_LINE bytes fed one byte per write: each byte is looked at once, so four
    times the bytes take about four times as long (a splitter that re-scans or re-copies the
    kept start would take sixteen times as long)."""
    import time

    from pidfs_fuse.mount.control_file import MAX_LINE, ControlSession

    def feed(n: int) -> float:
        best = float("inf")
        for _ in range(3):
            s = ControlSession()
            t0 = time.perf_counter()
            for _ in range(n):
                assert s._split(b"x") == []
            assert s._split(b"\n") == [b"x" * n]
            best = min(best, time.perf_counter() - t0)
        return best

    small, big = feed(MAX_LINE // 4), feed(MAX_LINE)
    assert big / small < 8, (small, big)


def _attrs(a) -> tuple:
    return (a.st_ino, a.st_mode, a.st_nlink, a.st_uid, a.st_gid, a.st_mtime_ns, a.st_ctime_ns,
            a.entry_timeout, a.attr_timeout)


def _big_table():
    k, svc = _table()
    for _ in range(50):
        k.clone(k.init, comm="p")
    for _ in range(70):
        k.clone(svc, comm="w", flags=CLONE_THREAD)
    return k, svc


async def test_listings_of_pids_and_threads_make_no_node_and_a_request_makes_it(monkeypatch) -> None:
    """Issue 13: the root and ``task/`` list pid and thread directories under derived inode
    numbers and keep nothing per entry; a request that names a listed inode (the kernel holds it
    from the readdirplus) makes its node with the attributes the listing gave, FORGET drops it,
    and the next request makes it again."""
    k, svc = _big_table()
    fs = PidFs(k)
    got: dict[str, tuple] = {}

    def reply(token, name, attr, next_id):
        got[name.decode()] = _attrs(attr)
        return True

    monkeypatch.setattr(pyfuse3, "readdir_reply", reply)
    pid_ino = (await fs.lookup(ROOT, str(svc.pid.nr).encode(), CTX)).st_ino
    task_ino = (await fs.lookup(pid_ino, b"task", CTX)).st_ino
    await fs.readdir(ROOT, 0, None)  # the root's own rows are static nodes, made once
    nodes = len(fs.table.nodes)
    got.clear()
    await fs.readdir(ROOT, 0, None)
    pids = {n: a for n, a in got.items() if n.isdigit()}
    got.clear()
    await fs.readdir(task_ino, 0, None)
    tids = {n: a for n, a in got.items() if n.isdigit()}
    assert len(fs.table.nodes) == nodes
    assert len(pids) == 52 and len(tids) == 72  # svc, its worker and 70 more
    assert len({a[0] for a in [*pids.values(), *tids.values()]}) == 52 + 72
    for attrs in [*pids.values(), *tids.values()]:
        assert _attrs(await fs.getattr(attrs[0], CTX)) == attrs
    assert len(fs.table.nodes) == nodes + 52 + 72 - 1  # svc's pid directory was looked up
    for name, attrs in pids.items():
        assert _attrs(await fs.lookup(ROOT, name.encode(), CTX))[:7] == attrs[:7]
    for name, attrs in tids.items():
        assert _attrs(await fs.lookup(task_ino, name.encode(), CTX))[:7] == attrs[:7]
    ino = pids["1"][0]
    await fs.forget([(ino, 3)])  # the kernel's count: the lookup and two listings
    assert ino not in fs.table.nodes
    assert _attrs(await fs.getattr(ino, CTX)) == pids["1"]
    got.clear()
    await fs.readdir(ino, 0, None)  # a node made from its number lists as the looked-up one did
    assert "status" in got and "task" in got


async def test_derived_inodes_of_a_reaped_pid_answer_esrch_and_listings_resume(monkeypatch) -> None:
    k, svc = _big_table()
    fs = PidFs(k)
    got: list[tuple[str, int]] = []

    def reply(token, name, attr, next_id):
        got.append((name.decode(), attr.st_ino))
        return True

    monkeypatch.setattr(pyfuse3, "readdir_reply", reply)
    await fs.readdir(ROOT, 0, None)
    ino = dict(got)[str(svc.pid.nr)]
    Control(k).execute(f"kill {svc.pid.nr} KILL")
    Control(k).execute(f"wait 1 pid={svc.pid.nr}")
    for request in (fs.getattr(ino, CTX), fs.lookup(ino, b"status", CTX), fs.opendir(ino, CTX)):
        with pytest.raises(pyfuse3.FUSEError) as e:
            await request
        assert e.value.errno == errno.ESRCH
    await fs.forget([(ino, 1)])  # forgetting what has no node is nothing


async def test_a_reap_or_an_owner_change_reaches_listed_directories_without_nodes(monkeypatch) -> None:
    """A listed directory has no node to mark stale, so the event's invalidations are derived
    from the ids: a reap drops ``<nr>`` from the root and from ``task/``; an owner change
    re-reads the attributes of the group's pid and thread directories."""
    k, svc = _big_table()
    fs = PidFs(k)
    monkeypatch.setattr(pyfuse3, "readdir_reply", lambda token, name, attr, next_id: True)
    pid_ino = (await fs.lookup(ROOT, str(svc.pid.nr).encode(), CTX)).st_ino
    task_ino = (await fs.lookup(pid_ino, b"task", CTX)).st_ino
    await fs.readdir(ROOT, 0, None)
    await fs.readdir(task_ino, 0, None)
    worker = list(svc.group.threads)[-1]
    slot = fs.slot_of[k.root_ns.inum]
    c = Control(k)
    fs.changes.stale_inodes.clear()
    c.execute(f"set {svc.pid.nr} uid=1234")
    assert {derived_ino(slot, True, worker.pid.ino), derived_ino(slot, False, svc.pid.ino),
            derived_ino(slot, True, svc.pid.ino)} <= fs.changes.stale_inodes
    fs.changes.stale_inodes.clear()
    c.execute(f"set {svc.pid.nr} nice=3")  # the owner is unchanged: threads stay cached
    assert derived_ino(slot, True, worker.pid.ino) not in fs.changes.stale_inodes
    fs.changes.stale_entries.clear()
    c.execute(f"exit {worker.pid.nr}")
    name = str(worker.pid.nr).encode()
    assert {(ROOT, name), (task_ino, name)} <= fs.changes.stale_entries


def test_derived_inode_numbers_round_trip_at_the_edges() -> None:
    from pidfs_fuse.mount.inodes import DERIVED_BASE, MAX_VIEW_SLOTS, NODE_BASE, split_derived

    for slot in (0, 1, MAX_VIEW_SLOTS - 1):
        for thread in (False, True):
            for ino in (2, NODE_BASE - 1):
                n = derived_ino(slot, thread, ino)
                assert DERIVED_BASE <= n < 1 << 63 and split_derived(n) == (slot, thread, ino)
    assert derived_ino(MAX_VIEW_SLOTS - 1, True, NODE_BASE - 1) == (1 << 63) - 1
