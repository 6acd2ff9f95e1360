"""Who may see which pid directory: procfs's ``hidepid=`` / ``gid=`` policy (fs/proc/base.c).

Linux decides in four places, all built on ``has_pid_permissions(fs_info, task, hide_pid_min)``:

- ``proc_pid_readdir`` lists a tgid only if ``has_pid_permissions(.., HIDEPID_INVISIBLE)``;
- ``proc_pid_lookup`` fails (ENOENT) only under ``hidepid=ptraceable`` for a task the caller may
  not ptrace; otherwise the name resolves even when it is hidden from listings;
- ``pid_getattr`` (stat of ``/<pid>`` or ``/<pid>/task/<tid>``) gives ENOENT unless
  ``has_pid_permissions(.., HIDEPID_INVISIBLE)``, "consistent with readdir";
- ``proc_pid_permission`` (entering the directory, hence opening any file in it) gives ENOENT
  under ``hidepid=invisible``, EPERM otherwise, unless ``has_pid_permissions(.., HIDEPID_NO_ACCESS)``.

So ``hidepid=noaccess`` lists and stats every pid but refuses entering another user's directory
with EPERM (not EACCES); ``hidepid=invisible`` hides it from listings and answers ENOENT;
``hidepid=ptraceable`` answers ENOENT from the lookup on. Checked against a real procfs mounted
with each option on Linux 6.18 (mountpoint_tests/test_access_vs_procfs.py).

A FUSE lookup answers with the entry's attributes, so the mount's lookup of ``/<pid>`` is
``proc_pid_lookup`` followed by ``pid_getattr`` (``pid_dir_lookup_errno``); every other question
the mount asks (getattr, listing, entering, ptrace-guarded rows, ``fd/<n>`` links, whether an
answer may be cached) is one function here, so no copy of the policy lives in the mount.

Modelled ``ptrace_may_access(task, PTRACE_MODE_READ_FSCREDS)``: uid 0, or the task's uid. Privilege
is uid 0 throughout the model (no capabilities, no user namespaces, every task dumpable).
``in_group_p(pid_gid)``: ``pid_gid`` is ``gid=`` or, as in Linux, the root group 0 by default;
``caller_gids`` is the caller's fsgid and supplementary groups.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..kernel import ExitState, Task
from . import files, perpid
from .view import HIDEPID_INVISIBLE, HIDEPID_NO_ACCESS, HIDEPID_NOT_PTRACEABLE, HIDEPID_OFF, MountOptions, View

if TYPE_CHECKING:
    from .tables import Entry


def may_ptrace(caller_uid: int, task: Task) -> bool:
    """ptrace_may_access(PTRACE_MODE_READ_FSCREDS) in the model: root, or the same uid."""
    return caller_uid == 0 or caller_uid == task.group.uid


def has_pid_permissions(view: View, caller_uid: int, caller_gids: Iterable[int], task: Task,
                        hide_pid_min: int) -> bool:
    """fs/proc/base.c has_pid_permissions()."""
    hidepid = view.options.hidepid
    if hidepid == HIDEPID_NOT_PTRACEABLE:
        return may_ptrace(caller_uid, task)
    if hidepid < hide_pid_min:
        return True
    pid_gid = view.options.gid if view.options.gid is not None else 0
    if pid_gid in caller_gids:
        return True
    return may_ptrace(caller_uid, task)


def pid_visible_in_listing(view: View, caller_uid: int, caller_gids: Iterable[int], task: Task) -> bool:
    """proc_pid_readdir(): whether ``/<tgid>`` appears in the root listing for this caller."""
    return has_pid_permissions(view, caller_uid, caller_gids, task, HIDEPID_INVISIBLE)


def pid_lookup_errno(view: View, caller_uid: int, caller_gids: Iterable[int], task: Task) -> int:
    """proc_pid_lookup(): 0, or ENOENT under hidepid=ptraceable for a task the caller may not
    ptrace. Other modes let the name resolve; getattr and permission then decide."""
    if view.options.hidepid == HIDEPID_NOT_PTRACEABLE and not may_ptrace(caller_uid, task):
        return errno.ENOENT
    return 0


def pid_getattr_errno(view: View, caller_uid: int, caller_gids: Iterable[int], task: Task) -> int:
    """pid_getattr(): 0, or ENOENT when the pid directory is hidden from this caller's listing."""
    if task.exit_state is ExitState.DEAD:
        return 0  # the kernel skips the check once the task is gone (pid_task() is NULL)
    if not has_pid_permissions(view, caller_uid, caller_gids, task, HIDEPID_INVISIBLE):
        return errno.ENOENT
    return 0


def pid_dir_lookup_errno(view: View, caller_uid: int, caller_gids: Iterable[int], task: Task) -> int:
    """Looking up ``/<pid>`` or ``/<pid>/task/<tid>`` through FUSE, whose lookup also answers the
    attributes: ``proc_pid_lookup()`` then ``pid_getattr()``. 0 means the name resolves and
    stats, even where entering it is refused (hidepid=noaccess: ``pid_access`` decides that)."""
    return (pid_lookup_errno(view, caller_uid, caller_gids, task)
            or pid_getattr_errno(view, caller_uid, caller_gids, task))


def pid_access(view: View, caller_uid: int, caller_gids: Iterable[int], task: Task) -> int:
    """proc_pid_permission() for ``/<pid>/`` and ``/<pid>/task/<tid>/``: 0 when the caller may
    enter; ESRCH once the task is released; ENOENT under hidepid=invisible; EPERM under
    hidepid=noaccess or ptraceable. The directory's own mode bits are checked after this (by
    the mount, generic_permission)."""
    if task.exit_state is ExitState.DEAD:
        return errno.ESRCH
    if has_pid_permissions(view, caller_uid, caller_gids, task, HIDEPID_NO_ACCESS):
        return 0
    if view.options.hidepid == HIDEPID_INVISIBLE:
        return errno.ENOENT
    return errno.EPERM


def entry_access(caller_uid: int, entry: Entry, task: Task) -> int:
    """Entries marked ``ptrace`` (environ, io: mm_access(); cwd, exe, root, fd/:
    proc_fd_access_allowed()): 0, or EACCES when the caller may not ptrace the task."""
    if entry.ptrace and not may_ptrace(caller_uid, task):
        if entry.name in MM_ACCESS_ROWS and not files.has_mm(task):
            return 0  # mm_access() finds no mm first: the file opens and reads empty (or ESRCH)
        return errno.EACCES
    return 0


#: rows guarded by mm_access(), which answers "no mm" before asking ptrace_may_access: a
#: zombie's maps read empty for anyone (kernel_facts.json); the 0400 ones stay refused by mode
MM_ACCESS_ROWS = frozenset({"maps", "numa_maps", "smaps", "smaps_rollup", "environ", "auxv", "mem",
                            "pagemap"})


def read_access(caller_uid: int, entry: Entry, task: Task) -> int:
    """Reading (not opening) a per-pid file: 0, EPERM for timerslack_ns (CAP_SYS_NICE), EACCES
    for stack (CAP_SYS_ADMIN) unless uid 0, as measured (perpid.reader_errno)."""
    if entry.access == perpid.ACCESS_ANY:
        return 0
    return perpid.reader_errno(perpid.PerPidFile(entry.mode, perpid._empty, entry.access),
                               caller_uid, task, at_open=False)


def wchan_visible(caller_uid: int, task: Task) -> bool:
    """proc_pid_wchan(): the symbol for a caller that may ptrace the task, "0" for others."""
    return may_ptrace(caller_uid, task)


def map_file_access(caller_uid: int, task: Task) -> int:
    """``map_files/<range>`` links: readlink needs CAP_SYS_ADMIN (uid 0 in the model): EPERM."""
    return 0 if caller_uid == 0 else errno.EPERM


def fd_link_access(caller_uid: int, task: Task) -> int:
    """Reading a ``/<pid>/fd/<n>`` link (proc_fd_link via proc_fd_access_allowed()): 0, or
    EACCES when the caller may not ptrace the task."""
    return 0 if may_ptrace(caller_uid, task) else errno.EACCES


def depends_on_caller(options: MountOptions) -> bool:
    """Whether the pid-directory answers above can differ between callers, so that the mount
    must not let the kernel cache entries and attributes. ``gid=`` alone counts too, as it
    always has in this mount (it only matters together with hidepid)."""
    return options.hidepid != HIDEPID_OFF or options.gid is not None


def task_owner(task: Task, mode: int = 0o555, is_dir: bool = True) -> tuple[int, int]:
    """task_dump_owner(): the uid and gid owning an inode of ``/<pid>`` with this mode: the
    task's, but root's for everything except the 0555 directories once the mm is gone
    (perpid.dump_owner)."""
    return perpid.dump_owner(task, mode, is_dir)
