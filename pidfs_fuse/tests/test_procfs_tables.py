"""Directory tables (fs/proc/base.c tgid_base_stuff / tid_base_stuff): names, modes, nlink,
generic lookup, and every row rendering for live, threaded and exited tasks.

LINUX_MODES holds `ls -l` modes of real /proc/1 and /proc/self/task/<tid> entries on this
machine's Linux 6.18 (ls_proc_1.txt, ls_self_task.txt in ../shared/reference/linux-6.18-proc/).
"""

from __future__ import annotations

import errno
import re
import stat as st

import pytest

from pidfs_fuse.kernel import CLONE_THREAD, Kernel, KernelError
from pidfs_fuse.procfs import (
    DIR,
    LINK,
    MOUNT_ROWS,
    NS_ENTRIES,
    ROOT_FILES,
    SELF_ROWS,
    TGID_BASE,
    TID_BASE,
    MountOptions,
    View,
    dir_nlink,
    entry_nlink,
    listing,
    lookup,
    parse_mount_options,
    root_rows,
    root_table,
)
from pidfs_fuse.tests.conftest import row

LINUX_MODES = {
    "cgroup": "-r--r--r--", "cmdline": "-r--r--r--", "comm": "-rw-r--r--", "cwd": "lrwxrwxrwx",
    "environ": "-r--------", "exe": "lrwxrwxrwx", "fd": "dr-x------", "fdinfo": "dr-xr-xr-x",
    "io": "-r--------", "limits": "-r--r--r--", "loginuid": "-rw-r--r--", "ns": "dr-x--x--x",
    "oom_score": "-r--r--r--", "root": "lrwxrwxrwx", "sessionid": "-r--r--r--",
    "stat": "-r--r--r--", "statm": "-r--r--r--", "status": "-r--r--r--", "task": "dr-xr-xr-x",
    "children": "-r--r--r--",
}
#: subdirectories of real /proc/1 (nlink 9) and /proc/self/task/<tid> (nlink 7)
LINUX_TGID_DIRS = ["attr", "fd", "fdinfo", "map_files", "net", "ns", "task"]
LINUX_TID_DIRS = ["attr", "fd", "fdinfo", "net", "ns"]
#: rows whose read is EINVAL on this machine in every state: write-only clear_refs, and attr/
#: without a security module
READ_EINVAL = {"clear_refs", "current", "prev", "exec", "fscreate", "keycreate", "sockcreate"}

REQUIRED_TGID = {"status", "stat", "statm", "cmdline", "comm", "environ", "cwd", "exe", "root", "fd",
                 "ns", "fdinfo", "task", "pidfd"}
REQUIRED_TID = {"status", "stat", "comm", "cmdline", "children", "pidfd"}


def ls_mode(entry) -> str:
    kind = {DIR: st.S_IFDIR, LINK: st.S_IFLNK}.get(entry.kind, st.S_IFREG)
    return st.filemode(kind | entry.mode)


def test_tables_hold_the_required_entries() -> None:
    assert {e.name for e in TGID_BASE} >= REQUIRED_TGID
    assert {e.name for e in TID_BASE} >= REQUIRED_TID
    assert lookup(TGID_BASE, "children") is None  # only per thread, as in Linux
    assert lookup(TID_BASE, "task") is None
    assert [e.name for e in NS_ENTRIES] == ["net", "uts", "ipc", "pid", "pid_for_children", "user", "mnt",
                                          "cgroup", "time", "time_for_children"]  # this machine's readdir order


@pytest.mark.parametrize("table", [TGID_BASE, TID_BASE], ids=["tgid", "tid"])
def test_modes_match_linux(table) -> None:
    shown = {e.name: ls_mode(e) for e in table if e.name in LINUX_MODES}
    assert shown == {n: LINUX_MODES[n] for n in shown}
    assert len(shown) >= 15


def test_special_and_dynamic_rows() -> None:
    for table in (TGID_BASE, TID_BASE):
        pidfd = row(table, "pidfd")
        assert (pidfd.kind, pidfd.mode, pidfd.special, pidfd.show) == ("file", 0o600, "pidfd", None)
        assert row(table, "fd").dynamic == "fd" and row(table, "fdinfo").dynamic == "fdinfo"
        assert row(table, "ns").children == NS_ENTRIES
    assert row(TGID_BASE, "task").dynamic == "task"


def test_lookup_and_listing_are_generic() -> None:
    for table in (TGID_BASE, TID_BASE, ROOT_FILES, NS_ENTRIES):
        assert [e.name for e in listing(table)] == [e.name for e in table]
        assert len({e.name for e in table}) == len(table)
        for e in table:
            assert lookup(table, e.name) is e
        assert lookup(table, "nonexistent") is None
        assert lookup(table, "") is None


def test_writable_rows_have_writers_and_only_they() -> None:
    def rows(table):
        for e in table:
            yield e
            if e.children:
                yield from rows(e.children)
    for e in rows(TGID_BASE + TID_BASE + ROOT_FILES):
        if e.kind == "file" and e.special is None:
            # attr/prev (0444) has Linux's write method, which root reaches: EPERM
            assert (e.mode & 0o222 != 0 or e.name == "prev") == (e.write is not None), e.name
            assert e.show is not None, e.name
        if e.kind == "link":
            assert e.readlink is not None and e.mode == 0o777, e.name


def test_root_files_and_sysctls() -> None:
    names = {e.name for e in ROOT_FILES}
    assert {"stat", "uptime", "loadavg", "meminfo", "cpuinfo", "version", "sys"} <= names
    kernel = row(row(ROOT_FILES, "sys").children, "kernel")
    assert kernel.children is not None
    modes = {e.name: e.mode for e in kernel.children}
    assert {n: modes[n] for n in ("pid_max", "ns_last_pid", "threads-max", "osrelease")} == {
        "pid_max": 0o644, "ns_last_pid": 0o666, "threads-max": 0o644, "osrelease": 0o444}
    # the rest are system.GLOBAL_FILES' sys/kernel/* rows, with their modes, in name order
    from pidfs_fuse.procfs.system import GLOBAL_FILES
    for path, f in GLOBAL_FILES.items():
        d, _, name = path.rpartition("/")
        rows = ROOT_FILES
        for part in d.split("/") if d else ():
            sub = row(rows, part).children
            assert sub is not None
            rows = sub
        assert (row(rows, name).mode, row(rows, name).show) == (f.mode, f.show), path
    assert [e.name for e in kernel.children] == sorted(e.name for e in kernel.children)


def test_subset_pid_hides_every_global_file() -> None:
    k = Kernel()
    assert root_table(View(k, k.root_ns, MountOptions())) == ROOT_FILES
    assert root_table(View(k, k.root_ns, parse_mount_options("subset=pid"))) == ()


@pytest.mark.parametrize(("options", "top", "names"), [
    ("", True, [e.name for e in ROOT_FILES] + [".control", ".pidfs", ".pidns", ".host-proc", "self", "thread-self"]),
    ("", False, [e.name for e in ROOT_FILES] + ["self", "thread-self"]),
    ("subset=pid", True, [".control", ".pidfs", ".pidns", ".host-proc", "self", "thread-self"]),
    ("subset=pid", False, ["self", "thread-self"]),
], ids=["top", "pidns-root", "top-subset-pid", "pidns-root-subset-pid"])
def test_root_rows_are_one_list_in_readdir_order(options, top, names) -> None:
    k = Kernel()
    rows = root_rows(View(k, k.root_ns, parse_mount_options(options)), top=top)
    assert [e.name for e in rows] == names
    assert rows[-len(SELF_ROWS):] == SELF_ROWS  # listed last, at FIRST_PROCESS_ENTRY
    assert {e.name: (e.kind, e.mode, e.special) for e in MOUNT_ROWS + SELF_ROWS} == {
        ".control": ("file", 0o600, "control"), ".pidfs": ("dir", 0o555, "pidfs"),
        ".pidns": ("dir", 0o555, "pidns"), ".host-proc": ("dir", 0o555, "host-proc"),
        "self": ("link", 0o777, "self"),
        "thread-self": ("link", 0o777, "thread-self")}
    for e in rows:
        assert lookup(rows, e.name) is e


def test_nlink_formula_matches_linux_and_our_tables() -> None:
    assert 2 + len(LINUX_TGID_DIRS) == 9 and 2 + len(LINUX_TID_DIRS) == 7  # what ls showed
    assert dir_nlink(TGID_BASE) == 2 + sum(e.kind == DIR for e in TGID_BASE) == 9
    assert dir_nlink(TID_BASE) == 7
    k = Kernel()
    p = k.clone(k.init).task
    for _ in range(3):
        k.clone(p, CLONE_THREAD)
    assert entry_nlink(row(TGID_BASE, "task"), p) == 6  # 2 + 4 threads, as task/ of 6951 showed
    assert entry_nlink(row(TGID_BASE, "ns"), p) == 2
    assert entry_nlink(row(TGID_BASE, "fd"), p) == 2
    assert entry_nlink(row(TGID_BASE, "status"), p) == 1
    assert entry_nlink(row(ROOT_FILES, "sys")) == 2 + 3  # fs, kernel, vm


def _every_row(table):
    for e in table:
        yield e
        if e.children:
            yield from _every_row(e.children)


@pytest.mark.parametrize("state", ["live", "thread", "zombie", "zombie-leader", "released"])
def test_every_row_renders_or_fails_with_a_kernel_errno(state: str) -> None:
    k = Kernel()
    p = k.clone(k.init, comm="p", argv=["p", "-x"]).task
    th = k.clone(p, CLONE_THREAD).task
    view = View(k, k.root_ns, MountOptions())
    task, table = p, TGID_BASE
    if state == "thread":
        task, table = th, TID_BASE
    elif state == "zombie":
        k.exit_group(p, 1)
    elif state == "zombie-leader":
        k.exit(p, 0)
    elif state == "released":
        k.exit(th, 0)
        task, table = th, TID_BASE
    for e in _every_row(table):
        if e.show is not None:
            try:
                assert isinstance(e.show(view, task), bytes), e.name
            except KernelError as err:  # no mm (environ, auxv, smaps_rollup) or nsproxy (mounts)
                if e.name in READ_EINVAL:  # never readable, in any state
                    assert err.errno == errno.EINVAL, e.name
                    continue
                assert state not in ("live", "thread"), e.name
                assert err.errno in (errno.ESRCH, errno.EINVAL), e.name
        if e.readlink is not None:
            try:
                assert re.fullmatch(r"/.*|[a-z]+:\[[0-9]+\]", e.readlink(view, task)), e.name
            except KernelError as err:
                assert state != "live" and state != "thread" and err.errno == errno.ENOENT, e.name
    shown = [e.name for e in _every_row(ROOT_FILES) if e.show is not None]
    assert {"stat", "pid_max", "ns_last_pid", "osrelease"} <= set(shown)
    for e in _every_row(ROOT_FILES):
        if e.show is not None:
            data = e.show(view, None)
            assert data.endswith(b"\n") or (e.name == "locks" and data == b""), e.name
