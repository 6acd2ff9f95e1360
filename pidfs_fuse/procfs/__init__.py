"""Presentation: the model seen through a procfs-shaped window, as pure functions.

``View`` binds a ``Kernel`` to the pid namespace a mount shows and its mount options;
``files`` renders per-pid files, ``globals`` the global ones and the writable sysctls;
``tables`` lays them out as directory tables (``TGID_BASE``, ``TID_BASE``, ``ROOT_FILES``);
``access`` is procfs's hidepid/gid policy. Nothing here imports pyfuse3, trio or the mount:
the mount (``pidfs_fuse.mount``) turns rows and bytes into inodes and replies.
"""

from .access import (depends_on_caller, entry_access, fd_link_access, has_pid_permissions, may_ptrace,
                     pid_access, pid_dir_lookup_errno, pid_getattr_errno, pid_lookup_errno,
                     pid_visible_in_listing, task_owner)
from .files import (list_fds, ns_link, pidfd_pid_lines, readlink_cwd, readlink_exe, readlink_fd,
                    readlink_ns_pid, readlink_ns_pid_for_children, readlink_root, show_children,
                    show_cmdline, show_comm, show_environ, show_fdinfo, show_pidfd_fdinfo,
                    show_stat, show_statm, show_status, show_tgid_stat, show_tid_stat)
from .globals import (count_run_states, show_cpuinfo, show_loadavg, show_meminfo, show_ns_last_pid,
                      show_osrelease, show_pid_max, show_proc_stat, show_threads_max, show_uptime,
                      show_version, write_ns_last_pid, write_pid_max)
from .tables import (DIR, FILE, LINK, MOUNT_ROWS, NS_ENTRIES, ROOT_FILES, SELF_ROWS, SYS_KERNEL,
                     TGID_BASE, TID_BASE, Entry, dir_nlink, entry_nlink, listing, lookup, root_rows,
                     root_table)
from .view import (HIDEPID_INVISIBLE, HIDEPID_NO_ACCESS, HIDEPID_NOT_PTRACEABLE, HIDEPID_OFF,
                   MountOptions, View, parse_mount_options)

__all__ = [n for n in dir() if not n.startswith("_")]
