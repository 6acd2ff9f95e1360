"""Renderers of the per-pid files: a task seen from a ``View`` -> the bytes Linux 6.x prints.

Models fs/proc/array.c (``proc_pid_status``, ``do_task_stat``, ``proc_pid_statm``), fs/proc/base.c
(cmdline, environ, comm, children, the cwd/exe/root and ns links, fdinfo) and fs/pidfs.c
(``pidfd_show_fdinfo``). Line order and number formats are the kernel's, checked against real
files of Linux 6.18 in ../shared/reference/linux-6.18-proc/. Every pid number is translated into
``view.ns`` (0 when not visible from there).

What the model has and procfs shows: comm, state, pids at every level, parent, process group,
session, uid/gid, threads, ignored signals (``sigign``, bit ``sig`` set for signal ``sig``),
shared pending signals (``pending``), nice, cpu ticks, start time, vsize, rss, tty, argv,
environ, cwd/exe/root, the emulated descriptors. What it does not have is filled with constants
a real process would plausibly show (capabilities, cpu/memory masks, memory layout addresses,
page faults, the split of VmSize and VmRSS into their parts), chosen so tools see a consistent
picture: VmSize == statm size == stat vsize, VmRSS == statm resident == stat rss.

"Has an mm" (Vm* lines, non-zero vsize/rss, cmdline, environ, exe) and "has fs and files"
(Umask, FDSize, cwd, root, fd/) mean: the task has not exited, as after exit_mm()/exit_fs()/
exit_files(). A zombie leader whose threads still run has none of them, as in Linux.

Free-form ``ThreadGroup.extra`` keys read here (all optional, strings): ``umask`` (octal),
``groups`` (comma- or space-separated gids), ``kthread`` ("1": a kernel thread, no mm),
``voluntary_ctxt_switches``, ``nonvoluntary_ctxt_switches``. tpgid is the model's: the
foreground group of the process's terminal (kernel/terminals.py).

Caching: no per-pid renderer reads the clock, so a rendering stays valid until the model
changes. What else than the task itself a file depends on: ``status`` (Threads: the group's
thread count; PPid: the parent), ``/<pid>/stat`` (num_threads and the utime/stime sum over the
threads, the parent, the process group and session), ``children`` (the thread's children being
created, reparented or reaped), ``fdinfo`` (the target pid being reaped: ``Pid: -1``).

The ``ptrace_may_access`` checks that make Linux print 0/1 instead of addresses and exit codes
are not applied: every reader is treated as permitted (the access policy lives in ``access``).
Renderers are on the hot path of every read: f-strings, no per-call setup, O(1) in the number
of processes; only ``/<pid>/stat`` sums over the threads of its own process, as Linux does.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from ..kernel import ExitState, KernelError, PidFd, PidNamespace, Task, TaskFlag, describe_status
from ..kernel.pid import Pid
from ..kernel.task import RUN_STATES
from .view import View

# -- constants a real process would show ----------------------------------------------------

PAGE_SHIFT = 12
#: RLIM_INFINITY: stat field 25 (rsslim)
RLIM_INFINITY = 2**64 - 1
#: max_threads / 2 (RLIMIT_SIGPENDING of a default process), matching /proc/sys/kernel/threads-max
SIGQ_LIMIT = 96365
#: AUDIT_UID_UNSET and AUDIT_SID_UNSET (include/linux/audit.h): (u32)-1
AUDIT_UNSET = 2**32 - 1
#: the mount id fdinfo shows for pidfds (pidfs's internal mount)
PIDFS_MNT_ID = 4
#: O_RDWR | O_CLOEXEC, what every pidfd's fdinfo shows; PIDFD_THREAD is O_EXCL, PIDFD_NONBLOCK O_NONBLOCK
_O_RDWR, _O_CLOEXEC, _O_EXCL, _O_NONBLOCK = 0o2, 0o2000000, 0o200, 0o4000

# PF_* (include/linux/sched.h) for stat field 9
PF_EXITING = 0x4
PF_POSTCOREDUMP = 0x8
PF_FORKNOEXEC = 0x40
PF_DUMPCORE = 0x200
PF_SIGNALED = 0x400
PF_NOFREEZE = 0x8000
PF_KTHREAD = 0x200000
PF_RANDOMIZE = 0x400000

# A typical x86-64 PIE process layout (stat fields 26-28, 45-51); argv and environ sit at the
# top of the stack, so arg_end/env_end follow their real lengths.
_START_CODE = 0x55F8E0A4D000
_END_CODE = 0x55F8E0A51DA9
_START_STACK = 0x7FFD2C8E6A50
_START_DATA = 0x55F8E0A55B30
_END_DATA = 0x55F8E0A56180
_START_BRK = 0x55F8E2F9A000
_ARG_START = 0x7FFD2C8E85BA

_CAP_FULL = "000001ffffffffff"
_CAP_NONE = "0000000000000000"
_ZERO_SIGSET = "0000000000000000"
_MEMS_ALLOWED = ",".join(["00000000"] * 31 + ["00000001"])

# after SigCgt: capabilities (root or not), NoNewPrivs, then constants
_CAPS_FMT = (
    "CapInh:\t0000000000000000\n"
    "CapPrm:\t{cap}\n"
    "CapEff:\t{cap}\n"
    "CapBnd:\t000001ffffffffff\n"
    "CapAmb:\t0000000000000000\n"
)
_CAPS_ROOT = _CAPS_FMT.format(cap=_CAP_FULL)
_CAPS_USER = _CAPS_FMT.format(cap=_CAP_NONE)
_TAIL = (
    "Seccomp:\t0\n"
    "Seccomp_filters:\t0\n"
    "Speculation_Store_Bypass:\tvulnerable\n"
    "SpeculationIndirectBranch:\talways enabled\n"
    "Cpus_allowed:\t3\n"
    "Cpus_allowed_list:\t0-1\n"
    f"Mems_allowed:\t{_MEMS_ALLOWED}\n"
    "Mems_allowed_list:\t0\n"
)

_MASK64 = 2**64 - 1


# -- small helpers ----------------------------------------------------------------------------

def _has_mm(task: Task) -> bool:
    """The task still has its mm, fs and files (it has not exited) and is not a kernel thread."""
    return task.exit_state is ExitState.RUNNING and not _is_kthread(task)


has_mm = _has_mm  # the public name (perpid and access ask it too)


def _is_kthread(task: Task) -> bool:
    extra = task.group.extra
    return extra is not None and extra.get("kthread", "0") not in ("", "0", "false", "no")


def _extra(task: Task, key: str, default: str) -> str:
    extra = task.group.extra
    return extra.get(key, default) if extra else default


def _extra_count(task: Task, key: str) -> int:
    text = _extra(task, key, "")
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 20 else 0


def _umask(task: Task) -> str:
    """"%#04o" of the fs_struct's umask: ``extra['umask']`` (octal text), else 022."""
    text = _extra(task, "umask", "")
    if text and len(text) <= 4 and all(c in "01234567" for c in text):
        return f"0{int(text, 8):03o}"
    return "0022"


def _escape_name(comm: str) -> str:
    """proc_task_name(escape=true): seq_escape_str(.., ESCAPE_SPACE|ESCAPE_SPECIAL, "\\n\\\\")."""
    if "\\" in comm or "\n" in comm:
        return comm.replace("\\", "\\\\").replace("\n", "\\n")
    return comm


def _ns_levels(view: View, pid: Pid) -> tuple[PidNamespace, ...]:
    """pid->numbers[g].ns for g = view.ns.level .. pid->level (task_state's NS* lines)."""
    return pid.ns.ancestors[view.ns.level:]


def _nr(pid: Pid | None, ns: PidNamespace) -> int:
    return pid.nr_in(ns) if pid is not None else 0


def _parent_tgid(task: Task, ns: PidNamespace) -> int:
    """task_tgid_nr_ns(real_parent, ns); 0 for init, for a parent outside ``ns``, once released."""
    parent = task.group.parent
    if parent is None or task.exit_state is ExitState.DEAD:
        return 0
    return parent.group.leader.pid.nr_in(ns)


def _fdsize(task: Task) -> int:
    """fdtable max_fds: 64 (BITS_PER_LONG) and doubled as descriptors grow past it."""
    files = task.group.files
    size = 64
    if files:
        top = max(files) + 1
        while size < top:
            size *= 2
    return size


def _mem_kb(task: Task) -> tuple[int, int, int, int, int, int, int, int, int]:
    """(size, rss, anon, file, data, stack, exe, lib, pte) in kB, all multiples of 4, derived from
    the model's vsize and rss so that every file agrees with every other."""
    g = task.group
    size = (g.vsize >> 10) & ~3
    rss = g.rss << (PAGE_SHIFT - 10)
    anon = (g.rss // 2) << (PAGE_SHIFT - 10)
    file = rss - anon
    stack = min(132, size)
    exe = min(20, size - stack)
    rest = size - stack - exe
    lib = (rest // 8) & ~3
    data = ((rest - lib) // 2) & ~3
    pte = ((size >> 9) + 1) * 4 if size else 0
    return size, rss, anon, file, data, stack, exe, lib, pte


# -- status -------------------------------------------------------------------------------------

def show_status(view: View, task: Task) -> bytes:
    """/<pid>/status and /<pid>/task/<tid>/status (fs/proc/array.c proc_pid_status)."""
    ns = view.ns
    g = task.group
    pid = task.pid
    alive = task.exit_state is ExitState.RUNNING
    released = task.exit_state is ExitState.DEAD
    kthread = _is_kthread(task)
    levels = _ns_levels(view, pid)
    lpid = g.leader.pid
    pgrp, session = g.pgrp, g.session
    uid, gid = g.uid, g.gid

    out = [f"Name:\t{_escape_name(task.comm)}\n"]
    if alive:
        out.append(f"Umask:\t{_umask(task)}\n")
    groups = " ".join([x for x in _extra(task, "groups", "").replace(",", " ").split()
                       if x.isascii() and x.isdigit()])
    nstgid = "".join(["\t" + str(lpid.nr_in(a)) for a in levels])
    nspid = "".join(["\t" + str(pid.nr_in(a)) for a in levels])
    nspgid = "".join(["\t" + str(_nr(pgrp, a)) for a in levels])
    nssid = "".join(["\t" + str(_nr(session, a)) for a in levels])
    out.append(
        f"State:\t{RUN_STATES.get(task.display_state, task.display_state)}\n"
        f"Tgid:\t{lpid.nr_in(ns)}\n"
        "Ngid:\t0\n"
        f"Pid:\t{pid.nr_in(ns)}\n"
        f"PPid:\t{_parent_tgid(task, ns)}\n"
        "TracerPid:\t0\n"
        f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}\n"
        f"Gid:\t{gid}\t{gid}\t{gid}\t{gid}\n"
        f"FDSize:\t{_fdsize(task) if alive else 0}\n"
        f"Groups:\t{groups} \n"
        f"NStgid:{nstgid}\n"
        f"NSpid:{nspid}\n"
        f"NSpgid:{nspgid}\n"
        f"NSsid:{nssid}\n"
        f"Kthread:\t{1 if kthread else 0}\n"
    )
    if alive and not kthread:
        size, rss, anon, file, data, stack, exe, lib, pte = _mem_kb(task)
        out.append(
            f"VmPeak:\t{size:8d} kB\n"
            f"VmSize:\t{size:8d} kB\n"
            "VmLck:\t       0 kB\n"
            "VmPin:\t       0 kB\n"
            f"VmHWM:\t{rss:8d} kB\n"
            f"VmRSS:\t{rss:8d} kB\n"
            f"RssAnon:\t{anon:8d} kB\n"
            f"RssFile:\t{file:8d} kB\n"
            "RssShmem:\t       0 kB\n"
            f"VmData:\t{data:8d} kB\n"
            f"VmStk:\t{stack:8d} kB\n"
            f"VmExe:\t{exe:8d} kB\n"
            f"VmLib:\t{lib:8d} kB\n"
            f"VmPTE:\t{pte:8d} kB\n"
            "VmSwap:\t       0 kB\n"
            "HugetlbPages:\t       0 kB\n"
            "CoreDumping:\t0\n"
            "THP_enabled:\t1\n"
            "untag_mask:\t0xffffffffffffffff\n"
        )
    if released:  # lock_task_sighand() fails: nothing of the signal struct is shown
        nthreads, shdpnd, sigign = 0, 0, 0
    else:
        nthreads, shdpnd, sigign = len(g.threads), g.pending >> 1, g.sigign >> 1
    out.append(
        f"Threads:\t{nthreads}\n"
        f"SigQ:\t0/{SIGQ_LIMIT}\n"
        f"SigPnd:\t{_ZERO_SIGSET}\n"
        f"ShdPnd:\t{shdpnd & _MASK64:016x}\n"
        f"SigBlk:\t{_ZERO_SIGSET}\n"
        f"SigIgn:\t{sigign & _MASK64:016x}\n"
        f"SigCgt:\t{_ZERO_SIGSET}\n"
    )
    out.append(_CAPS_ROOT if uid == 0 else _CAPS_USER)
    out.append("NoNewPrivs:\t1\n" if task.flags & TaskFlag.NO_NEW_PRIVS else "NoNewPrivs:\t0\n")
    out.append(_TAIL)
    out.append(
        f"voluntary_ctxt_switches:\t{_extra_count(task, 'voluntary_ctxt_switches')}\n"
        f"nonvoluntary_ctxt_switches:\t{_extra_count(task, 'nonvoluntary_ctxt_switches')}\n"
    )
    return "".join(out).encode()


# -- stat ---------------------------------------------------------------------------------------

def _pf_flags(task: Task) -> int:
    if _is_kthread(task):
        flags = PF_KTHREAD | PF_NOFREEZE | PF_FORKNOEXEC
    else:
        flags = PF_RANDOMIZE
        # copy_process() sets PF_FORKNOEXEC on every new task and only exec clears it: threads
        # (never exec'd themselves) carry it, a leader only until its process execs
        if task.flags & TaskFlag.FORKNOEXEC or task.group.leader is not task:
            flags |= PF_FORKNOEXEC
    if task.exit_state is not ExitState.RUNNING:
        flags |= PF_EXITING | PF_POSTCOREDUMP | PF_NOFREEZE
        how, _ = describe_status(task.exit_code)
        if how in ("killed", "dumped"):
            flags |= PF_SIGNALED | (PF_DUMPCORE if how == "dumped" else 0)
    return flags


def show_stat(view: View, task: Task, *, whole_group: bool) -> bytes:
    """fs/proc/array.c do_task_stat(): the 52 fields. ``whole_group`` is /<pid>/stat (cpu times
    summed over the threads, the group's exit code once it is exiting or stopped);
    /<pid>/task/<tid>/stat passes False. comm is printed raw inside the parentheses, so parsers
    must split at the last ')', as psutil and procps do."""
    ns = view.ns
    g = task.group
    pid = task.pid
    state = task.display_state
    has_mm = _has_mm(task)
    exit_code = task.exit_code
    if task.exit_state is ExitState.DEAD:  # lock_task_sighand() fails
        ppid, pgid, sid, tty_nr, tpgid, nthreads = 0, -1, -1, 0, -1, 0
        cutime = cstime = sigign = 0
        utime, stime = task.utime, task.stime
    else:
        ppid = _parent_tgid(task, ns)
        pgid = _nr(g.pgrp, ns)
        sid = _nr(g.session, ns)
        tty_nr = g.tty_nr
        tpgid = view.kernel.tpgid_in(g, ns)  # the terminal's foreground group, -1 without one
        nthreads = len(g.threads)
        cutime, cstime = g.cutime, g.cstime
        sigign = (g.sigign >> 1) & 0x7FFFFFFF
        if whole_group:
            utime, stime = view.kernel.sched.group_times(g)
            if g.group_exit:
                exit_code = g.group_exit_code
            elif g.stopped:
                exit_code = g.stop_code
        else:
            utime, stime = task.utime, task.stime
    wchan = 1 if state != "R" and (not whole_group or nthreads < 2) else 0
    if has_mm:
        vsize, rss = g.vsize, g.rss
        arg_end = _ARG_START + sum(len(a) + 1 for a in g.argv)
        env_end = arg_end + sum(len(e) + 1 for e in g.environ)
        mm = (f"{_START_CODE} {_END_CODE} {_START_STACK}", f"{_START_DATA} {_END_DATA} {_START_BRK} "
              f"{_ARG_START} {arg_end} {arg_end} {env_end}")
    else:
        vsize = rss = 0
        mm = ("0 0 0", "0 0 0 0 0 0 0")
    nice = task.nice
    return (
        f"{pid.nr_in(ns)} ({task.comm}) {state} {ppid} {pgid} {sid} {tty_nr} {tpgid} "
        f"{_pf_flags(task)} 0 0 0 0 {utime} {stime} {cutime} {cstime} {20 + nice} {nice} "
        f"{nthreads} 0 {view.ticks(task.start_time)} {vsize} {rss} {RLIM_INFINITY} {mm[0]} "
        f"0 0 0 0 {sigign} 0 {wchan} 0 0 {task.exit_signal} {pid.numbers[0] % 2} 0 0 0 0 0 "
        f"{mm[1]} {exit_code}\n"
    ).encode()


def show_tgid_stat(view: View, task: Task) -> bytes:
    """/<pid>/stat: ``show_stat(.., whole_group=True)``."""
    return show_stat(view, task, whole_group=True)


def show_tid_stat(view: View, task: Task) -> bytes:
    """/<pid>/task/<tid>/stat: ``show_stat(.., whole_group=False)``."""
    return show_stat(view, task, whole_group=False)


def show_statm(view: View, task: Task) -> bytes:
    """proc_pid_statm(): size resident shared text lib(0) data dt(0), in pages; zeros without mm."""
    if not _has_mm(task):
        return b"0 0 0 0 0 0 0\n"
    size, rss, _anon, file, data, stack, exe, _lib, _pte = _mem_kb(task)
    return f"{size >> 2} {rss >> 2} {file >> 2} {exe >> 2} 0 {(data + stack) >> 2} 0\n".encode()


# -- cmdline, environ, comm, children -----------------------------------------------------------

def show_cmdline(view: View, task: Task) -> bytes:
    """get_mm_cmdline(): each argument followed by a NUL; empty once the mm is gone."""
    if not _has_mm(task):
        return b""
    argv = task.group.argv
    return ("\0".join(argv) + "\0").encode() if argv else b""


def show_environ(view: View, task: Task) -> bytes:
    """environ_read(): each KEY=VALUE followed by a NUL; empty once the mm is gone."""
    if not _has_mm(task):
        return b""
    env = task.group.environ
    return ("\0".join(env) + "\0").encode() if env else b""


def show_comm(view: View, task: Task) -> bytes:
    """comm_show(): the raw comm and a newline."""
    return f"{task.comm}\n".encode()


def write_comm(view: View, task: Task, data: bytes, uid: int) -> None:
    """comm_write(): only a thread of the same process may rename it; a reader of the mount is a
    host process, never one of the model's, so this is always EINVAL as in Linux."""
    raise KernelError(errno.EINVAL, f"only process {task.group.leader.pid.nr} itself may change "
                      "the comm of its threads (use the control file's exec or set)")


def show_children(view: View, task: Task) -> bytes:
    """children_seq_show(): "%d " for each child of this thread, in list order, no newline."""
    children = task.children
    if not children:
        return b""
    ns = view.ns
    return "".join([f"{c.pid.nr_in(ns)} " for c in children]).encode()


# -- links ----------------------------------------------------------------------------------------

def _no_fs(task: Task, what: str) -> KernelError:
    return KernelError(errno.ENOENT, f"task {task.pid.nr} has exited: it has no {what}")


def readlink_exe(view: View, task: Task) -> str:
    """proc_exe_link(): ENOENT without an mm (exited, kernel thread) or an executable."""
    exe = task.group.exe
    if not _has_mm(task) or not exe:
        raise _no_fs(task, "executable")
    return exe


def readlink_cwd(view: View, task: Task) -> str:
    """proc_cwd_link(): ENOENT once the task's fs_struct is gone."""
    if task.exit_state is not ExitState.RUNNING:
        raise _no_fs(task, "working directory")
    return task.group.cwd


def readlink_root(view: View, task: Task) -> str:
    """proc_root_link(): ENOENT once the task's fs_struct is gone."""
    if task.exit_state is not ExitState.RUNNING:
        raise _no_fs(task, "root directory")
    return task.group.root


def ns_link(ns: PidNamespace) -> str:
    """What readlink of an ns file shows: ``pid:[INUM]``."""
    return f"pid:[{ns.inum}]"


def ns_inums(task: Task) -> dict[str, int]:
    """Every ``ns/`` entry's inode number by entry name, as a reader of the task may see them
    now (a zombie keeps only pid and user: exit_task_namespaces() dropped its nsproxy, its
    creds stay)."""
    if task.exit_state is ExitState.DEAD:
        return {}
    out = {"pid": task.active_ns.inum, "user": task.nsproxy.user}
    if task.exit_state is ExitState.RUNNING:
        n = task.nsproxy
        out.update(cgroup=n.cgroup, ipc=n.ipc, mnt=n.mnt, net=n.net, time=n.time,
                   time_for_children=n.time_for_children, uts=n.uts,
                   pid_for_children=task.ns_for_children.inum)
    return out


def readlink_ns(name: str) -> Callable[[View, Task], str]:
    """The readlink of ``ns/<name>`` for a non-pid namespace: ``TYPE:[INUM]`` (``time`` for
    ``time_for_children``), ENOENT once the task's nsproxy is gone (user: once it is reaped)."""
    kind = name.removesuffix("_for_children")

    def readlink(view: View, task: Task) -> str:
        inum = ns_inums(task).get(name)
        if inum is None:
            raise _no_fs(task, f"{name} namespace")
        return f"{kind}:[{inum}]"

    readlink.__name__ = f"readlink_ns_{name}"
    return readlink


def readlink_ns_pid(view: View, task: Task) -> str:
    """/<pid>/ns/pid: task_active_pid_ns(), which a zombie still has."""
    if task.exit_state is ExitState.DEAD:
        raise _no_fs(task, "pid namespace")
    return ns_link(task.active_ns)


def readlink_ns_pid_for_children(view: View, task: Task) -> str:
    """/<pid>/ns/pid_for_children: nsproxy->pid_ns_for_children; ENOENT once the nsproxy is gone
    (exit_task_namespaces() runs in do_exit, so zombies have none), and ENOENT while that
    namespace has no init yet (pidns_for_children_get(): after unshare(CLONE_NEWPID), until the
    first child is created; found by the differential oracle)."""
    if task.exit_state is not ExitState.RUNNING:
        raise _no_fs(task, "pid_for_children namespace")
    ns = task.ns_for_children
    if ns.child_reaper is None:
        raise KernelError(errno.ENOENT, f"the pid namespace task {task.pid.nr} unshared for its "
                          "children has no init yet")
    return ns_link(ns)


# -- descriptors ----------------------------------------------------------------------------------

def list_fds(task: Task) -> list[int]:
    """The descriptors of /<pid>/fd and /<pid>/fdinfo in ascending order; none once the task
    has exited (exit_files())."""
    files = task.group.files
    if not files or task.exit_state is not ExitState.RUNNING:
        return []
    return sorted(files)


def _fd_object(task: Task, fd: int) -> object:
    files = task.group.files
    obj = files.get(fd) if files and task.exit_state is ExitState.RUNNING else None
    if obj is None:
        raise KernelError(errno.ENOENT, f"process {task.group.leader.pid.nr} has no descriptor {fd}")
    return obj


def readlink_fd(view: View, task: Task, fd: int) -> str:
    """/<pid>/fd/<n>: ``anon_inode:[pidfd]`` for a pidfd; ENOENT for a descriptor not open."""
    obj = _fd_object(task, fd)
    return "anon_inode:[pidfd]" if isinstance(obj, PidFd) else "anon_inode:[unknown]"


def pidfd_pid_lines(view: View, pid: Pid) -> str:
    """The ``Pid:`` and ``NSpid:`` lines of pidfd_show_fdinfo(): -1 once no task is attached
    (reaped), 0 when the pid is not visible from the view, else its number in the view followed,
    on the NSpid line, by its numbers at the deeper levels (view level + 1 .. pid level)."""
    if pid.task is None:
        return "Pid:\t-1\nNSpid:\t-1\n"
    ns = view.ns
    nr = pid.nr_in(ns)
    if nr <= 0:
        return f"Pid:\t{nr}\nNSpid:\t{nr}\n"
    deeper = "".join(["\t" + str(n) for n in pid.numbers[ns.level + 1:]])
    return f"Pid:\t{nr}\nNSpid:\t{nr}{deeper}\n"


def show_pidfd_fdinfo(view: View, pidfd: PidFd) -> bytes:
    """/<pid>/fdinfo/<n> of a pidfd: seq_show()'s pos/flags/mnt_id/ino, then pidfd_show_fdinfo()."""
    flags = _O_RDWR | _O_CLOEXEC
    if pidfd.thread:
        flags |= _O_EXCL
    if pidfd.nonblock:
        flags |= _O_NONBLOCK
    return (f"pos:\t0\nflags:\t0{flags:o}\nmnt_id:\t{PIDFS_MNT_ID}\nino:\t{pidfd.pid.ino}\n"
            + pidfd_pid_lines(view, pidfd.pid)).encode()


def show_fdinfo(view: View, task: Task, fd: int) -> bytes:
    """/<pid>/fdinfo/<n>. ENOENT for a descriptor that is not open."""
    obj = _fd_object(task, fd)
    if isinstance(obj, PidFd):
        return show_pidfd_fdinfo(view, obj)
    return f"pos:\t0\nflags:\t0{_O_RDWR | _O_CLOEXEC:o}\nmnt_id:\t{PIDFS_MNT_ID}\nino:\t0\n".encode()


# -- small constant files --------------------------------------------------------------------------

_LIMITS = (
    "Limit                     Soft Limit           Hard Limit           Units     \n"
    "Max cpu time              unlimited            unlimited            seconds   \n"
    "Max file size             unlimited            unlimited            bytes     \n"
    "Max data size             unlimited            unlimited            bytes     \n"
    "Max stack size            8388608              unlimited            bytes     \n"
    "Max core file size        0                    unlimited            bytes     \n"
    "Max resident set          unlimited            unlimited            bytes     \n"
    f"Max processes             {SIGQ_LIMIT:<21d}{SIGQ_LIMIT:<21d}processes \n"
    "Max open files            1024                 524288               files     \n"
    "Max locked memory         8388608              8388608              bytes     \n"
    "Max address space         unlimited            unlimited            bytes     \n"
    "Max file locks            unlimited            unlimited            locks     \n"
    f"Max pending signals       {SIGQ_LIMIT:<21d}{SIGQ_LIMIT:<21d}signals   \n"
    "Max msgqueue size         819200               819200               bytes     \n"
    "Max nice priority         0                    0                    \n"
    "Max realtime priority     0                    0                    \n"
    "Max realtime timeout      unlimited            unlimited            us        \n"
).encode()

_IO = (b"rchar: 0\nwchar: 0\nsyscr: 0\nsyscw: 0\nread_bytes: 0\nwrite_bytes: 0\n"
       b"cancelled_write_bytes: 0\n")


def show_limits(view: View, task: Task) -> bytes:
    """proc_pid_limits(): the default limits of a process (not modelled)."""
    return _LIMITS


def show_io(view: View, task: Task) -> bytes:
    """proc_tid_io_accounting(): no I/O happens in the model."""
    return _IO


def show_cgroup(view: View, task: Task) -> bytes:
    """proc_cgroup_show() on a cgroup2-only system, everything in the root cgroup."""
    return b"0::/\n"


def show_oom_score(view: View, task: Task) -> bytes:
    """proc_oom_score(): no memory pressure in the model."""
    return b"0\n"


def show_loginuid(view: View, task: Task) -> bytes:
    """proc_loginuid_read(): AUDIT_UID_UNSET, no login session recorded."""
    return b"%d" % AUDIT_UNSET


def write_loginuid(view: View, task: Task, data: bytes, uid: int) -> None:
    """proc_loginuid_write(): setting it needs CAP_AUDIT_CONTROL, which the model never grants."""
    raise KernelError(errno.EPERM, "writing loginuid needs CAP_AUDIT_CONTROL (not modelled)")


def show_sessionid(view: View, task: Task) -> bytes:
    """proc_sessionid_read(): AUDIT_SID_UNSET."""
    return b"%d" % AUDIT_UNSET
