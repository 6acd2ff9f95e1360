"""Who asks: a request's caller as it knows itself, and what the host's /proc says about it.

FUSE reports the caller's *thread* id in the server's pid namespace. The kernel tells the
server the rest in ``/proc/<tid>/status``: ``Tgid:`` (the process), and the ``NStgid:`` and
``NSpid:`` lines, which list its numbers from the namespace of that /proc (the server's) down
to the innermost. A caller in a deeper pid namespace (``pidfs-fuse exec`` runs commands in
one) knows itself by its innermost numbers: ``getpid()`` is the last ``NStgid`` and
``gettid()`` the last ``NSpid``, and those are what ``/proc/self`` and ``/proc/thread-self``
must name and ``/proc/<getpid()>`` must answer, as a procfs mounted in that namespace does
(procps reads both, and psutil's ``Process()`` reads ``/proc/<getpid()>``).

A caller that is not a process of the table sees a stand-in (``nodes/standin.py``) that shows
its *real* self where tools rely on it: the ``Uid:``/``Gid:``/``Groups:`` lines of its host
``status``, its ``maps``, ``mounts`` and ``mountinfo``, the targets of its ``exe``, ``cwd``
and ``root`` links, its threads and its open descriptors. Those are read here from the host's
/proc once per request and never kept.

A descriptor link cannot be served as what it is on Linux (a "magic" link that reaches the
open file itself, so that ``cat <(echo hi)``, ``/dev/stdin`` and ``/dev/fd/N`` open pipes,
sockets and deleted files): FUSE can only answer a path. A file with a name that leads the
caller to the same file as the server (``fd_path``) is linked by that name, as Linux's
``readlink`` shows it (``ls -l /dev/fd``, lsof and psutil's ``open_files()`` read it). Any
other ``fd/<n>`` is a link into a real procfs that the caller reaches, whose
``thread-self/fd/<n>`` is the caller's own magic link (``thread-self`` names the thread that
follows the link, and the thread that follows it is the one that read it; it resolves in any
procfs of the caller's pid namespace or an ancestor's).
``real_proc`` finds one in the caller's mount namespace, from its ``mountinfo``: ``/proc``
itself when that is a procfs; else a procfs mounted on ``.host-proc`` of a pidfs-fuse mount,
where ``pidfs-fuse exec`` puts the real /proc before it binds the mount over ``/proc`` (the
link is then relative, ``../../.host-proc/thread-self/fd/<n>``, so it resolves through
whichever copy of the mount the caller walked). With neither, the link reads as the host's
text (``pipe:[N]``, a path), which opens where it is a path.

The server reads the host's /proc only when it is a real procfs (were it itself a pidfs-fuse
mount, the read could be a request to this very server); otherwise every caller counts as one
of its own numbers, with no real self to show.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import re
from dataclasses import dataclass

log = logging.getLogger(__name__)

PROC_SUPER_MAGIC = 0x9FA0
#: the directory of the top root where ``pidfs-fuse exec`` mounts the real /proc
HOST_PROC_DIR = ".host-proc"
#: status lines of the host that a stand-in's status shows instead of the model's
HOST_STATUS_LINES = (b"Uid:", b"Gid:", b"Groups:")


def _is_procfs(path: str = "/proc") -> bool:
    buf = ctypes.create_string_buffer(256)  # struct statfs; f_type is its first field
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.statfs(path.encode(), buf) != 0:
        return False
    return ctypes.c_long.from_buffer(buf).value == PROC_SUPER_MAGIC


@dataclass(frozen=True, slots=True)
class Caller:
    """A caller: its process and thread numbers in its own (innermost) pid namespace, and on
    the host (the server's pid namespace, where /proc/<host_tid> is)."""

    tgid: int
    tid: int
    host_tgid: int
    host_tid: int
    #: whether the host's /proc can be asked about it (a real procfs that knows the caller)
    real: bool = True

    def names(self, nr: int) -> bool:
        """Whether ``nr`` is how the caller names itself (its process or its thread)."""
        return nr == self.tgid or nr == self.tid


class Callers:
    """The callers of a mount as the host's /proc describes them."""

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc
        self.enabled = _is_procfs(proc)
        if not self.enabled:
            log.warning("%s is not a procfs here: callers see themselves by their numbers in "
                        "the server's pid namespace, and stand-ins show no real self", proc)

    def who(self, pid: int) -> Caller:
        """The caller whose thread FUSE reports as ``pid``."""
        if not self.enabled or pid <= 0:
            return Caller(pid, pid, pid, pid, real=False)
        try:
            with open(f"{self.proc}/{pid}/status", "rb") as f:
                data = f.read()
        except OSError:
            return Caller(pid, pid, pid, pid, real=False)
        host_tgid = pid
        tgids: list[bytes] = []
        tids: list[bytes] = []
        for line in data.splitlines():
            if line.startswith(b"Tgid:"):
                host_tgid = int(line.split()[1])
            elif line.startswith(b"NStgid:"):
                tgids = line.split()[1:]
            elif line.startswith(b"NSpid:"):
                tids = line.split()[1:]
                break
        if not tids or len(tgids) != len(tids) or int(tids[0]) != pid:
            return Caller(host_tgid, pid, host_tgid, pid)
        return Caller(int(tgids[-1]), int(tids[-1]), host_tgid, pid)

    def numbers(self, pid: int) -> tuple[int, int] | None:
        """(tgid, tid) of the caller ``pid`` in its innermost pid namespace when that is
        deeper than the server's, else None."""
        c = self.who(pid)
        return (c.tgid, c.tid) if c.tid != c.host_tid else None

    def self_numbers(self, pid: int) -> tuple[int, int]:
        """What ``self`` and ``thread-self`` name for the caller ``pid``: (tgid, tid)."""
        c = self.who(pid)
        return c.tgid, c.tid

    def is_caller(self, pid: int, nr: int) -> bool:
        """True when ``nr`` is how the caller ``pid`` names itself (its pid or thread id)."""
        return self.who(pid).names(nr)

    # -- the caller's real self, read from the host once per request ---------------------------

    def _path(self, host_pid: int | str, name: str) -> str:
        return f"{self.proc}/{host_pid}/{name}"

    def read(self, host_pid: int | str, name: str) -> bytes:
        """The host's ``/proc/<host_pid>/<name>`` (maps, mounts, mountinfo, status)."""
        with open(self._path(host_pid, name), "rb") as f:
            return f.read()

    def readlink(self, host_pid: int, name: str) -> str:
        """The target of the host's ``/proc/<host_pid>/<name>`` (exe, cwd, root, fd/N)."""
        return os.readlink(self._path(host_pid, name))

    def status_lines(self, host_pid: int) -> dict[bytes, bytes]:
        """The host status's lines that a stand-in shows as they are (``HOST_STATUS_LINES``),
        by their label."""
        lines = {}
        for line in self.read(host_pid, "status").splitlines():
            label = line.split(b"\t", 1)[0]
            if label in HOST_STATUS_LINES:
                lines[label] = line
        return lines

    def fds(self, host_pid: int) -> list[int]:
        """The caller's open descriptors, ascending."""
        return sorted(int(n) for n in os.listdir(self._path(host_pid, "fd")))

    def threads(self, caller: Caller) -> list[tuple[int, int]]:
        """The caller's threads as (tid in its own namespace, host tid), in the host's order."""
        out = []
        for name in os.listdir(self._path(caller.host_tgid, "task")):
            host_tid = int(name)
            if host_tid == caller.host_tid:
                out.append((caller.tid, host_tid))
                continue
            c = self.who(host_tid)
            if c.real and c.host_tgid == caller.host_tgid:
                out.append((c.tid, host_tid))
        return out

    def fd_path(self, host_pid: int, fd: int) -> str | None:
        """The name of the caller's descriptor ``fd`` when that name opens the same file for
        the caller as for the server, else None: an absolute path (not a pipe, socket or
        deleted file), the caller's root is the server's, and the path's deepest mount is the
        same one (device, root, type) at the same place in both mount tables (``exec``'s
        private copy of the host's mounts has them all but /proc)."""
        text = self.readlink(host_pid, f"fd/{fd}")
        if not text.startswith("/") or text.endswith(" (deleted)"):
            return None
        if self.readlink(host_pid, "root") != "/":
            return None
        path = os.fsencode(text)
        theirs = _top_mounts(self.read(host_pid, "mountinfo"))
        mine = _top_mounts(self.read("self", "mountinfo"))
        at = _deepest(theirs, path)
        if at is None or at != _deepest(mine, path) or theirs[at] != mine[at]:
            return None
        return text

    def real_proc(self, host_pid: int) -> str | None:
        """Where the caller reaches a real procfs: ``"/proc"``, ``HOST_PROC_DIR`` (on a
        pidfs-fuse mount, reached relative to it), or None (see the module's note)."""
        try:
            text = self.read(host_pid, "mountinfo")
        except OSError:
            return None
        at_proc = None
        fuse_ids: set[bytes] = set()
        hosted: list[bytes] = []  # parents of procfs mounts on a .host-proc
        for line in text.splitlines():
            fields = line.split()
            try:
                sep = fields.index(b"-")
            except ValueError:
                continue
            fstype = fields[sep + 1]
            point = fields[4]
            if point == b"/proc":
                at_proc = fstype
            if fstype.startswith(b"fuse.pidfs"):
                fuse_ids.add(fields[0])
            elif fstype == b"proc" and point.endswith(b"/" + HOST_PROC_DIR.encode()):
                hosted.append(fields[1])
        if at_proc == b"proc":
            return "/proc"
        if any(parent in fuse_ids for parent in hosted):
            return HOST_PROC_DIR
        return None


def _unescape(b: bytes) -> bytes:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040...)."""
    return re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8)]), b)


def _top_mounts(mountinfo: bytes) -> dict[bytes, tuple[bytes, bytes, bytes]]:
    """Mount point -> (device, root, type) of the mount on top there (the last listed)."""
    out = {}
    for line in mountinfo.splitlines():
        f = line.split()
        try:
            sep = f.index(b"-", 6)
            out[_unescape(f[4])] = (f[2], f[3], f[sep + 1])
        except (ValueError, IndexError):
            continue
    return out


def _deepest(mounts: dict[bytes, tuple[bytes, bytes, bytes]], path: bytes) -> bytes | None:
    """The deepest mount point holding ``path``."""
    best = None
    for m in mounts:
        if (m == b"/" or path == m or path.startswith(m + b"/")) and (best is None or len(m) > len(best)):
            best = m
    return best


def host_errno(e: OSError) -> int:
    """The errno a failed read of the host's /proc gives the caller (a vanished process: ESRCH)."""
    if e.errno == errno.ENOENT:
        return errno.ESRCH
    return e.errno or errno.EIO


__all__ = ["HOST_PROC_DIR", "Caller", "Callers", "host_errno"]
