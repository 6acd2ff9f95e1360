"""Directories as tables of rows, as fs/proc/base.c's ``tgid_base_stuff[]`` / ``tid_base_stuff[]``.

A row (``Entry``) names a file, link or directory, its permission bits and the small pure
function that renders it; lookup and listing are generic over any table, and adding a file is
one row. Rows keep Linux's table order, which is the order readdir returns them in.

Signatures of the callables in a row (``task`` is None for the global files of ``ROOT_FILES``):

- ``show(view, task) -> bytes`` for files;
- ``readlink(view, task) -> str`` for links;
- ``write(view, task, data: bytes, uid: int) -> None`` for writable files (``uid`` is the
  caller's; errors are ``KernelError``).

Directories are static (``children``: a nested table, e.g. ``ns``) or dynamic (``dynamic``:
``'task'``, ``'fd'``, ``'fdinfo'`` or ``'map_files'``; the mount lists them from the model: ``task`` with
``Task.group.threads`` in order, ``fd``/``fdinfo`` with ``files.list_fds``). ``special='pidfd'``
marks the handle file the mount implements itself (open binds a pidfd; read blocks; poll).
``ptrace=True`` rows are guarded by a ptrace-read check (``access.entry_access``: EACCES).

``/<pid>/`` and ``/<pid>/task/<tid>/`` have every row this machine's Linux 6.18 lists there
(mountpoint_tests/test_perpid_files.py compares the listings), plus the handle file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..kernel import Task
from . import files as F
from . import globals as G
from . import perpid as PP
from . import system as SYS
from .view import View

FILE, DIR, LINK = "file", "dir", "link"

# A row's functions take the task the directory is for: a Task in per-pid tables, None in the
# root's (global files), hence Any rather than two row types.
Show = Callable[[View, Any], bytes]
Readlink = Callable[[View, Any], str]
Write = Callable[[View, Any, bytes, int], None]  # (view, task, data, writer's uid)


@dataclass(frozen=True, slots=True)
class Entry:
    """One row of a directory table (struct pid_entry)."""

    name: str
    kind: str  # 'file' | 'dir' | 'link'
    mode: int  # permission bits only (0o444, 0o400, 0o555, 0o777, ...)
    show: Show | None = None  # files
    readlink: Readlink | None = None  # links
    write: Write | None = None  # writable files
    children: tuple[Entry, ...] | None = None  # static subdirectories
    dynamic: str | None = None  # 'task' | 'fd' | 'fdinfo': filled by the mount
    special: str | None = None  # 'pidfd': implemented by the mount
    ptrace: bool = False  # guarded by ptrace_may_access: EACCES for other users
    nlink_extra: int = 0  # links added to dir_nlink(children) for a directory row
    #: who may read (perpid.ACCESS_*): access.entry_access (open) and read_access (read)
    access: str = PP.ACCESS_ANY
    #: files read by offset (mem, pagemap): (view, task, offset, size) -> bytes, per read
    read_at: Callable[[View, Any, int, int], bytes] | None = None
    #: rendered on every read, never cached (its content changes without a model event)
    direct: bool = False

    @property
    def is_dir(self) -> bool:
        return self.kind == DIR


def _file(name: str, show: Show, mode: int = 0o444, *, write: Write | None = None,
          ptrace: bool = False) -> Entry:
    return Entry(name, FILE, mode, show=show, write=write, ptrace=ptrace)


def _link(name: str, readlink: Readlink, *, ptrace: bool = False) -> Entry:
    return Entry(name, LINK, 0o777, readlink=readlink, ptrace=ptrace)


def _dir(name: str, mode: int = 0o555, *, children: tuple[Entry, ...] | None = None,
         dynamic: str | None = None, ptrace: bool = False) -> Entry:
    return Entry(name, DIR, mode, children=children, dynamic=dynamic, ptrace=ptrace)


# /<pid>/ns: ns_entries[] of fs/proc/namespaces.c in its order, links readable after a ptrace
# check; following one reaches a file named like the link's target (mount/nodes/nsfs.py)
NS_ENTRIES: tuple[Entry, ...] = (
    _link("net", F.readlink_ns("net"), ptrace=True),
    _link("uts", F.readlink_ns("uts"), ptrace=True),
    _link("ipc", F.readlink_ns("ipc"), ptrace=True),
    _link("pid", F.readlink_ns_pid, ptrace=True),
    _link("pid_for_children", F.readlink_ns_pid_for_children, ptrace=True),
    _link("user", F.readlink_ns("user"), ptrace=True),
    _link("mnt", F.readlink_ns("mnt"), ptrace=True),
    _link("cgroup", F.readlink_ns("cgroup"), ptrace=True),
    _link("time", F.readlink_ns("time"), ptrace=True),
    _link("time_for_children", F.readlink_ns("time_for_children"), ptrace=True),
)

_PIDFD = Entry("pidfd", FILE, 0o600, special="pidfd")


def _pp(name: str) -> Entry:
    """A row of ``perpid.PERPID_FILES``: its mode and access; wchan, stack and timerslack_ns
    (their answer depends on the reader), mem and pagemap (read by offset) are rendered per
    read."""
    f = PP.PERPID_FILES[name]
    write = _PP_WRITERS.get(name) if f.mode & 0o222 else None
    if f.mode & 0o222 and write is None:
        write = PP.refuse_write
    return Entry(name, FILE, f.mode, show=f.show, write=write,
                 ptrace=f.access == PP.ACCESS_PTRACE, access=f.access, read_at=f.read_at,
                 direct=f.read_at is not None or f.access in _READ_CHECKED)


#: rows whose answer depends on the reader at read time: never served from the page cache a
#: reader allowed to see them filled
_READ_CHECKED = (PP.ACCESS_PTRACE_OR_ZERO, PP.ACCESS_CAP_SYS_NICE, PP.ACCESS_CAP_SYS_ADMIN)


_PP_WRITERS: dict[str, Write] = {"oom_score_adj": PP.write_oom_score_adj,
                                    "oom_adj": PP.write_oom_adj,
                                    "timens_offsets": PP.write_timens_offsets}


def _pps(*names: str) -> tuple[Entry, ...]:
    return tuple(_pp(n) for n in names)


_NET = _dir("net", children=tuple(_file(n, f.show, f.mode) for n, f in SYS.NET_FILES.items()))
#: ``attr/`` (proc_attr_dir_stuff, no security module): every file reads EINVAL, and writing
#: another task's is EPERM; rendered at read, so that the error comes from read as on Linux
_ATTR = _dir("attr", children=tuple(
    Entry(n, FILE, 0o444 if n == "prev" else 0o666, show=PP.show_lsm_attr,
          write=PP.write_lsm_attr, direct=True)
    for n in ("current", "prev", "exec", "fscreate", "keycreate", "sockcreate")))
#: ``clear_refs`` (0200): write-only; root may open it for reading, and the read is EINVAL
_CLEAR_REFS = Entry("clear_refs", FILE, 0o200, show=PP.refuse_read, write=PP.write_clear_refs,
                    direct=True)
#: ``map_files/``: its links are listed from the model (perpid.list_map_files)
_MAP_FILES = _dir("map_files", PP.MAP_FILES_MODE, dynamic="map_files", ptrace=True)

# The rows of /<pid>/ and /<pid>/task/<tid>/ in Linux's order (tgid_base_stuff[] and
# tid_base_stuff[]); the ones only one of them has are marked.
def _base(tgid: bool) -> tuple[Entry, ...]:
    def only(flag: bool, *rows: Entry) -> tuple[Entry, ...]:
        return rows if flag else ()

    return (
        only(tgid, _dir("task", dynamic="task"))
        + (_dir("fd", 0o500, dynamic="fd", ptrace=True),)
        + only(tgid, _MAP_FILES)
        + (_dir("fdinfo", dynamic="fdinfo", ptrace=True),  # 0555, but proc_fdinfo_permission
           _dir("ns", 0o511, children=NS_ENTRIES),
           _NET,
           Entry("environ", FILE, 0o400, show=PP.show_environ, ptrace=True,
                 access=PP.ACCESS_PTRACE),
           _pp("auxv"),
           _file("status", F.show_status),
           _pp("personality"),
           _file("limits", F.show_limits),
           _pp("sched"))
        + only(tgid, _pp("autogroup"), _pp("timens_offsets"))
        + (_file("comm", F.show_comm, 0o644, write=F.write_comm),
           _pp("syscall"),
           _file("cmdline", F.show_cmdline),
           _file("stat", F.show_tgid_stat if tgid else F.show_tid_stat),
           _file("statm", F.show_statm),
           _pp("maps"))
        + only(not tgid, _file("children", F.show_children))
        + (_pp("numa_maps"),
           _pp("mem"),
           _link("cwd", F.readlink_cwd, ptrace=True),
           _link("root", F.readlink_root, ptrace=True),
           _link("exe", F.readlink_exe, ptrace=True),
           _pp("mounts"), _pp("mountinfo"))
        + only(tgid, _pp("mountstats"))
        + (_CLEAR_REFS,)
        + _pps("smaps", "smaps_rollup", "pagemap")
        + (_ATTR,)
        + _pps("wchan", "stack", "schedstat", "cpuset")
        + (_file("cgroup", F.show_cgroup),
           _pp("oom_score"), _pp("oom_adj"), _pp("oom_score_adj"),
           _file("loginuid", F.show_loginuid, 0o644, write=F.write_loginuid),
           _file("sessionid", F.show_sessionid))
        + only(tgid, _pp("coredump_filter"))
        + (_file("io", F.show_io, 0o400, ptrace=True),)
        + _pps("uid_map", "gid_map", "projid_map", "setgroups")
        + only(tgid, _pp("timers"), _pp("timerslack_ns"))
        + _pps("arch_status", "ksm_merging_pages", "ksm_stat")
        + (_PIDFD,)
    )


#: /<pid>/ (tgid_base_stuff order): task/ and the whole group's stat
TGID_BASE: tuple[Entry, ...] = _base(tgid=True)

#: /<pid>/task/<tid>/ (tid_base_stuff order): per-thread stat and children, no task/
TID_BASE: tuple[Entry, ...] = _base(tgid=False)

#: /sys/kernel/
SYS_KERNEL: tuple[Entry, ...] = (
    _file("ns_last_pid", G.show_ns_last_pid, 0o666, write=G.write_ns_last_pid),
    _file("osrelease", G.show_osrelease),
    _file("pid_max", G.show_pid_max, 0o644, write=G.write_pid_max),
    _file("threads-max", G.show_threads_max, 0o644, write=G.write_threads_max),
)


def _tree(files: dict[str, SYS.SystemFile], base: dict[str, tuple[Entry, ...]]) -> dict[str, list[Entry]]:
    """``{dir path: rows}`` of the global files under each directory ("" the root), with the
    rows of ``base`` kept; subdirectories become static directory rows of their parent."""
    rows: dict[str, list[Entry]] = {d: list(r) for d, r in base.items()}
    for path, f in files.items():
        d, _, name = path.rpartition("/")
        rows.setdefault(d, []).append(_file(name, f.show, f.mode, write=f.write))
    return rows


def _fixed_target(target: str) -> Readlink:
    def readlink(view: View, task: Any) -> str:
        return target
    return readlink


def _global_rows() -> tuple[Entry, ...]:
    files = _tree(SYS.GLOBAL_FILES, {"sys/kernel": SYS_KERNEL})

    def build(d: str) -> list[Entry]:
        out = list(files.get(d, []))
        subdirs = sorted({k[len(d) + 1 if d else 0:].split("/")[0] for k in files
                          if k and (k.startswith(d + "/") if d else True)})
        out += [_dir(n, children=tuple(build(f"{d}/{n}" if d else n))) for n in subdirs]
        if d.startswith("sys"):  # /proc/sys lists in name order (a sysctl table's rbtree)
            out.sort(key=lambda e: e.name)
        return out

    top = {e.name: e for e in build("")}
    links = tuple(_link(name, _fixed_target(target)) for name, target in SYS.GLOBAL_LINKS.items())
    first = ("cpuinfo", "loadavg", "meminfo", "stat", "uptime", "version", "sys")
    return (
        _file("cpuinfo", G.show_cpuinfo),
        _file("loadavg", G.show_loadavg),
        _file("meminfo", G.show_meminfo),
        _file("stat", G.show_proc_stat),
        _file("uptime", G.show_uptime),
        _file("version", G.show_version),
        top["sys"],
    ) + tuple(e for n, e in sorted(top.items()) if n not in first) + links


#: the global entries of the root (besides self, thread-self and the pid directories): the
#: first seven as before, then system.GLOBAL_FILES (directories built from their paths,
#: sys/kernel/ keeping SYS_KERNEL's rows) and system.GLOBAL_LINKS
ROOT_FILES: tuple[Entry, ...] = _global_rows()

#: the mount's own entries in the top root (special: the mount implements them): the control
#: file, handles by pidfs inode number, the tree seen from other pid namespaces, and an empty
#: directory where ``pidfs-fuse exec`` mounts the real /proc (a stand-in's fd/ links reach it)
MOUNT_ROWS: tuple[Entry, ...] = (
    Entry(".control", FILE, 0o600, special="control"),
    Entry(".pidfs", DIR, 0o555, special="pidfs"),
    Entry(".pidns", DIR, 0o555, special="pidns"),
    Entry(".host-proc", DIR, 0o555, special="host-proc"),
)

#: /self and /thread-self: resolved for the caller by the mount; procfs lists them just before
#: the pid directories (at FIRST_PROCESS_ENTRY), so they stay the last rows of a root table
SELF_ROWS: tuple[Entry, ...] = (
    Entry("self", LINK, 0o777, special="self"),
    Entry("thread-self", LINK, 0o777, special="thread-self"),
)

#: (subset=pid, top root) -> every row of a root besides the pid directories, in readdir order
_ROOT_ROWS: dict[tuple[bool, bool], tuple[Entry, ...]] = {
    (subset, top): (() if subset else ROOT_FILES) + (MOUNT_ROWS if top else ()) + SELF_ROWS
    for subset in (False, True) for top in (False, True)
}

_INDEXES: dict[int, tuple[tuple[Entry, ...], dict[str, Entry]]] = {}


def lookup(table: tuple[Entry, ...], name: str) -> Entry | None:
    """The row called ``name`` in ``table``, or None (O(1) after the first call per table)."""
    hit = _INDEXES.get(id(table))
    if hit is None or hit[0] is not table:
        hit = (table, {e.name: e for e in table})
        _INDEXES[id(table)] = hit
    return hit[1].get(name)


def listing(table: tuple[Entry, ...]) -> tuple[Entry, ...]:
    """The rows in readdir order (the table's order, as proc_pident_readdir)."""
    return table


def root_table(view: View) -> tuple[Entry, ...]:
    """The global rows this mount shows: none with ``subset=pid`` (only pids, self and
    thread-self remain, as fs/proc/root.c's pidonly)."""
    return () if view.options.subset_pid else ROOT_FILES


def root_rows(view: View, *, top: bool) -> tuple[Entry, ...]:
    """One list for lookup and listing of a root: the global rows (``root_table``), then the
    mount's own entries on the top root only (``/.pidns/<inum>/`` roots have none), then
    ``SELF_ROWS``."""
    return _ROOT_ROWS[(view.options.subset_pid, top)]


def dir_nlink(entries: tuple[Entry, ...]) -> int:
    """pid_entry_nlink(): 2 plus one per subdirectory."""
    return 2 + sum(1 for e in entries if e.kind == DIR)


def entry_nlink(entry: Entry, task: Task | None = None) -> int:
    """st_nlink of a directory row: a static one counts its subdirectories; ``task/`` adds one
    per thread (proc_task_getattr); ``fd/`` and ``fdinfo/`` have 2. Non-directories have 1."""
    if entry.kind != DIR:
        return 1
    if entry.children is not None:
        return dir_nlink(entry.children) + entry.nlink_extra
    if entry.dynamic == "task" and task is not None:
        return 2 + len(task.group.threads) + entry.nlink_extra
    return 2 + entry.nlink_extra

