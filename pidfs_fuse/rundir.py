"""What a user's servers leave on the host: the run directory, one record per live mount, and
the mount table as /proc/self/mountinfo shows it.

Design note. A detached server (``pidfs-fuse mount``) and a server owned by a test run
(``mount_table``) both write a record once their mount answers, ``<run dir>/<key>.json``
(``key`` hashes the mount point's real path), and remove it, with their log unless it is to be
kept, when they exit; only a server killed outright leaves one behind, and ``status``, ``mount``
and ``unmount`` clear those. So the run directory holds nothing for mounts that are gone.

The run directory is per user: root uses ``/run/pidfs-fuse``; anyone else
``$XDG_RUNTIME_DIR/pidfs-fuse`` when ``XDG_RUNTIME_DIR`` is a private directory of theirs (what
pam_systemd makes), else ``<tmp>/pidfs-fuse-<uid>``. A directory that exists is used only if it
is a real directory (not a symlink) owned by the user with no access for group or others: a
directory someone else made in /tmp is refused with a sentence, never adopted or chmod-ed.

A record's server is trusted only while a process with its pid runs with the start time the
record holds (a pid can be reused). Only the standard library is imported: the CLI and the
server both use this module before anything else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

ROOT_RUN_DIR = "/run/pidfs-fuse"
#: the type /proc/self/mountinfo shows for our mounts (fuse + the server's ``subtype=pidfs``)
FSTYPE = "fuse.pidfs"
FSNAME = "pidfs_fuse"


class RunDirError(RuntimeError):
    """The run directory cannot be used; the message says what to change."""


# -- the directory ------------------------------------------------------------------------------


def run_dir_path(uid: int | None = None, environ: dict[str, str] | None = None) -> str:
    """Where ``uid``'s (default: this process's effective uid) servers keep their records."""
    uid = os.geteuid() if uid is None else uid
    env = os.environ if environ is None else environ
    if uid == 0:
        return ROOT_RUN_DIR
    xdg = env.get("XDG_RUNTIME_DIR", "")
    if xdg and os.path.isabs(xdg):
        try:
            st = os.stat(xdg)
        except OSError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode) and st.st_uid == uid and not st.st_mode & 0o077:
            return os.path.join(xdg, "pidfs-fuse")
    return os.path.join(tempfile.gettempdir(), f"pidfs-fuse-{uid}")


def _check_private(path: str, uid: int) -> None:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise RunDirError(f"run directory {path} is not a directory (remove it, or set "
                          f"XDG_RUNTIME_DIR to a private directory of yours)")
    if st.st_uid != uid:
        raise RunDirError(f"run directory {path} belongs to uid {st.st_uid}, not to you (uid {uid}): "
                          f"remove it, or set XDG_RUNTIME_DIR to a private directory of yours")
    if uid != 0 and st.st_mode & 0o077:
        raise RunDirError(f"run directory {path} is open to others (mode {stat.S_IMODE(st.st_mode):04o}): "
                          f"chmod 700 {path}, or remove it")


def run_dir(*, create: bool = True) -> str:
    """The run directory, made (mode 0700; 0755 for root's) and checked to be this user's own.
    Raises ``RunDirError``."""
    uid = os.geteuid()
    path = run_dir_path(uid)
    if create:
        try:
            os.mkdir(path, 0o755 if uid == 0 else 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise RunDirError(f"cannot create run directory {path}: {e.strerror}") from None
    try:
        _check_private(path, uid)
    except FileNotFoundError:
        if create:
            raise RunDirError(f"run directory {path} vanished while it was being made") from None
    return path


def mount_key(mountpoint: str, *, resolved: bool = False) -> str:
    """The name a mount's files carry in the run directory. ``resolved``: ``mountpoint`` is
    already a real path (a server must not resolve its own mount point: that is a request to
    itself)."""
    real = mountpoint if resolved else real_mountpoint(mountpoint)
    return hashlib.sha1(real.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def real_mountpoint(path: str) -> str:
    """``path`` resolved, without a request to the file system mounted there (see
    ``mount_at``)."""
    m = mount_at(path)
    return m.mountpoint if m is not None else os.path.realpath(path)


def record_path(mountpoint: str, directory: str | None = None, *, resolved: bool = False) -> str:
    return os.path.join(directory or run_dir_path(), mount_key(mountpoint, resolved=resolved) + ".json")


def default_log_path(mountpoint: str, directory: str | None = None) -> str:
    return os.path.join(directory or run_dir_path(), mount_key(mountpoint) + ".log")


# -- records ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One live mount: where (a real path), which server (pid and its start time in clock ticks since boot),
    the table it serves, its options and log, and since when (seconds since the epoch)."""

    mountpoint: str
    pid: int
    starttime: int
    since: float
    options: str = ""
    source: str = "default table"
    log: str | None = None
    keep_log: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def server_alive(self) -> bool:
        return process_starttime(self.pid) == self.starttime


def process_starttime(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None when ``pid`` does not
    run (gone, or a zombie: an exited server counts as gone before it is reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def write_record(rec: Record) -> str:
    """Write ``rec`` atomically into the run directory; its path."""
    d = run_dir()
    path = record_path(rec.mountpoint, d, resolved=True)
    fd, tmp = tempfile.mkstemp(prefix=".record-", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(rec), f)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def read_record(path: str) -> Record | None:
    try:
        with open(path) as f:
            data = json.load(f)
        return Record(**data)
    except (OSError, ValueError, TypeError):
        return None


def find_record(mountpoint: str) -> Record | None:
    """The record of the mount at ``mountpoint``, if one was written."""
    return read_record(record_path(mountpoint))


def remove_record(rec: Record, *, only_pid: int | None = None) -> None:
    """Remove ``rec``'s file and its log (unless kept). With ``only_pid``, only if the file on
    disk still names that server (a newer mount at the same place keeps its own)."""
    path = record_path(rec.mountpoint, resolved=True)
    if only_pid is not None:
        cur = read_record(path)
        if cur is None or cur.pid != only_pid:
            return
    with contextlib.suppress(OSError):
        os.unlink(path)
    if rec.log and not rec.keep_log:
        with contextlib.suppress(OSError):
            os.unlink(rec.log)


def records() -> Iterator[tuple[str, Record]]:
    """Every record in this user's run directory (path, record); unreadable ones skipped."""
    d = run_dir_path()
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return
    for name in names:
        if name.endswith(".json") and not name.startswith("."):
            rec = read_record(os.path.join(d, name))
            if rec is not None:
                yield os.path.join(d, name), rec


#: files of versions before records: ``KEY.pid`` (a server's pid) and ``KEY.pid.log``, which
#: were never removed; an hour-old log without a pid file belongs to no starting mount
LEGACY_LOG_AGE = 3600.0


def sweep() -> None:
    """Remove the records (and logs) of servers that are gone and whose mount is gone too, and
    the files older versions left for every mount they ever made."""
    mounted = {m.mountpoint for m in mountinfo() if m.fstype == FSTYPE}
    for _, rec in records():
        if not rec.server_alive() and rec.mountpoint not in mounted:
            remove_record(rec, only_pid=rec.pid)
    d = run_dir_path()
    try:
        names = os.listdir(d)
    except OSError:
        return
    now_ = time.time()
    for name in names:
        path = os.path.join(d, name)
        with contextlib.suppress(OSError, ValueError):
            if name.endswith(".pid"):
                with open(path) as f:
                    if process_starttime(int(f.read().strip())) is None:
                        os.unlink(path)
            elif name.endswith(".pid.log") and name[:-4] not in names \
                    and now_ - os.stat(path).st_mtime > LEGACY_LOG_AGE:
                os.unlink(path)


def now() -> float:
    return time.time()


# -- /proc/self/mountinfo -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MountInfo:
    """One line of /proc/self/mountinfo (proc(5)): the mount's id, its device (``major:minor``,
    unique per FUSE connection), where it is mounted, its type, source and super options."""

    mount_id: int
    dev: str
    mountpoint: str
    fstype: str
    source: str
    super_options: str

    @property
    def user_id(self) -> int | None:
        """A FUSE mount's owner (its ``user_id=`` super option)."""
        for opt in self.super_options.split(","):
            if opt.startswith("user_id="):
                return int(opt[8:])
        return None


def _unescape(s: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040...)."""
    if "\\" not in s:
        return s
    out, i = bytearray(), 0
    b = s.encode("utf-8", "surrogateescape")
    while i < len(b):
        if b[i] == 0x5C and i + 3 < len(b) and all(0x30 <= c <= 0x37 for c in b[i + 1:i + 4]):
            out.append(int(b[i + 1:i + 4], 8))
            i += 4
        else:
            out.append(b[i])
            i += 1
    return out.decode("utf-8", "surrogateescape")


def parse_mountinfo(text: str) -> list[MountInfo]:
    out = []
    for line in text.splitlines():
        f = line.split(" ")
        try:
            sep = f.index("-", 6)
            out.append(MountInfo(int(f[0]), f[2], _unescape(f[4]), f[sep + 1], _unescape(f[sep + 2]),
                                 f[sep + 3] if len(f) > sep + 3 else ""))
        except (ValueError, IndexError):
            continue
    return out


def mountinfo(path: str = "/proc/self/mountinfo") -> list[MountInfo]:
    """This process's mount table; empty when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return parse_mountinfo(f.read())
    except OSError:
        return []


def mount_at(path: str, *, resolved: bool = False) -> MountInfo | None:
    """The topmost mount whose mount point is ``path`` (resolved unless ``resolved``), or None.
    A mount point is found without a request to its file system (a stopped server would make
    that wait forever): only its parent is resolved, unless it is no mount point."""
    table = mountinfo()
    points = {m.mountpoint for m in table}
    if resolved:
        real = path
    else:
        path = os.path.abspath(path)
        real = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
        if real not in points:
            real = os.path.realpath(path)
    found = None
    for m in table:
        if m.mountpoint == real:
            found = m  # later lines are mounted over earlier ones
    return found


def is_ours(m: MountInfo | None) -> bool:
    return m is not None and m.fstype == FSTYPE


def describe(m: MountInfo) -> str:
    """``a tmpfs mount`` / ``a fuse.sshfs mount (sshfs#host:)``, for refusals."""
    return f"a {m.fstype} mount" + (f" ({m.source})" if m.source and m.source != m.fstype else "")


__all__ = [
    "FSNAME",
    "FSTYPE",
    "MountInfo",
    "Record",
    "RunDirError",
    "default_log_path",
    "describe",
    "find_record",
    "is_ours",
    "mount_at",
    "mount_key",
    "mountinfo",
    "now",
    "parse_mountinfo",
    "process_starttime",
    "read_record",
    "record_path",
    "records",
    "remove_record",
    "run_dir",
    "run_dir_path",
    "sweep",
    "write_record",
]
