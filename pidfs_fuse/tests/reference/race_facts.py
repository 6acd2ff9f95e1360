#!/usr/bin/env python3
"""What descriptors opened before a process exits or is reaped answer afterwards, and what a
listing of the root that races with a reap returns, as JSON.

Run as root on the machine whose Linux the mount follows:

    python3 pidfs_fuse/tests/reference/race_facts.py > pidfs_fuse/tests/reference/race_facts.json

``run_cases`` is shared with ``mountpoint_tests/test_time_races.py``, which runs the same
system calls on a mount (its spawn/die/reap are control commands) and compares: one procedure,
two sides. No trigger is involved: the exit and the reap happen between the calls.

A result is ``"ok ..."`` with what came back (byte count and the State line, a mode, the names
listed) or the errno's name.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import signal
import struct
import sys
import time
from collections.abc import Callable

SYS_GETDENTS64 = 217  # x86-64


def getdents(fd: int, size: int) -> list[str]:
    """The names one getdents64 call with a ``size``-byte buffer returns."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(size)
    n = libc.syscall(SYS_GETDENTS64, fd, buf, size)
    if n < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    out, off, raw = [], 0, buf.raw[:n]
    while off < n:
        reclen = struct.unpack_from("H", raw, off + 16)[0]
        out.append(raw[off + 19: off + reclen].split(b"\0", 1)[0].decode())
        off += reclen
    return out


def _describe(fn: Callable[[], object]) -> str:
    try:
        r = fn()
    except OSError as e:
        return errno.errorcode[e.errno or 0]
    if isinstance(r, bytes):
        state = [ln for ln in r.decode(errors="replace").splitlines() if ln.startswith("State:")]
        return f"ok {len(r)} bytes" + (f" {state[0]!r}" if state else "") if r else "ok (empty)"
    return f"ok {r}"


def run_cases(root: str, spawn: Callable[[], int], die: Callable[[int], None],
              reap: Callable[[int], None]) -> dict[str, str]:
    """The cases, on the /proc-like tree at ``root``: ``spawn()`` starts a sleeping child and
    returns its pid, ``die(pid)`` makes it a zombie, ``reap(pid)`` has its parent reap it."""
    out: dict[str, str] = {}
    rdonly, rddir = os.O_RDONLY, os.O_RDONLY | os.O_DIRECTORY

    # files and directories opened while alive, read after the reap
    pid = spawn()
    p = f"{root}/{pid}"
    unread = {n: os.open(f"{p}/{n}", rdonly) for n in ("status", "stat", "cmdline", "environ")}
    full = os.open(f"{p}/status", rdonly)
    os.read(full, 65536)
    part = os.open(f"{p}/status", rdonly)
    os.read(part, 100)
    dirs = {n: os.open(f"{p}/{n}", rddir) for n in ("", "task", f"task/{pid}", "fd", "fdinfo",
                                                     "ns", "net", "map_files")}
    die(pid)
    reap(pid)
    for n, fd in unread.items():
        out[f"read an unread {n} fd after the reap"] = _describe(lambda: os.read(fd, 65536))
    out["fstat(status fd) after the reap"] = _describe(lambda: oct(os.fstat(full).st_mode))
    out["read(status fd) at its end after the reap"] = _describe(lambda: os.read(full, 65536))
    out["pread(status fd, 0) after the reap"] = _describe(lambda: os.pread(full, 65536, 0))
    out["read(status fd) after 100 bytes were read before the reap"] = _describe(
        lambda: os.read(part, 100))
    for n, fd in dirs.items():
        name = "/<pid>/" + n.replace(str(pid), "<pid>")
        out[f"fstat(open {name} fd) after the reap"] = _describe(lambda: oct(os.fstat(fd).st_mode))
        out[f"listdir(open {name} fd) after the reap"] = _describe(lambda: os.listdir(fd))
    out["openat(open /<pid>/ fd, 'cmdline') after the reap"] = _describe(
        lambda: os.open("cmdline", rdonly, dir_fd=dirs[""]))
    out["stat /<pid>/status after the reap"] = _describe(lambda: oct(os.stat(f"{p}/status").st_mode))
    out["stat /<pid> after the reap"] = _describe(lambda: oct(os.stat(p).st_mode))
    out["listdir /<pid>/task after the reap"] = _describe(lambda: os.listdir(f"{p}/task"))
    for fd in [*unread.values(), full, part, *dirs.values()]:
        os.close(fd)

    # files opened (and read) while alive, read again after the exit
    pid = spawn()
    p = f"{root}/{pid}"
    st = os.open(f"{p}/status", rdonly)
    os.read(st, 65536)
    opened = {n: os.open(f"{p}/{n}", rdonly) for n in ("environ", "cmdline")}
    die(pid)
    out["pread(status fd, 0) after the exit"] = _describe(lambda: os.pread(st, 65536, 0))
    for n, fd in opened.items():
        out[f"read an unread {n} fd after the exit"] = _describe(lambda: os.read(fd, 65536))
    reap(pid)
    for fd in [st, *opened.values()]:
        os.close(fd)

    # a listing of the root: the first getdents, then a reap of a pid it has not reached yet
    kids = [spawn() for _ in range(3)]
    victim = kids[-1]
    rd = os.open(root, rddir)
    names = getdents(rd, 256)
    assert str(victim) not in names, "the first batch reached the victim: use a smaller one"
    die(victim)
    reap(victim)
    while batch := getdents(rd, 4096):
        names += batch
    os.close(rd)
    out["getdents of the root: a pid reaped before the scan reaches it"] = (
        "listed" if str(victim) in names else "not listed")
    out["getdents of the root: the other pids"] = (
        "listed" if all(str(k) in names for k in kids[:-1]) else "missing")
    die(kids[0])
    out["listdir of the root: a zombie"] = "listed" if str(kids[0]) in os.listdir(root) else "not listed"
    for k in kids[:-1]:
        if k != kids[0]:
            die(k)
        reap(k)
    return out


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def main() -> int:
    if os.geteuid() != 0:
        print("race_facts.py: run as root", file=sys.stderr)
        return 2

    def spawn() -> int:
        pid = os.fork()
        if pid == 0:
            signal.pause()
            os._exit(0)
        while _state(pid) != "S":
            time.sleep(0.005)
        return pid

    def die(pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        while _state(pid) != "Z":
            time.sleep(0.005)

    def reap(pid: int) -> None:
        os.waitpid(pid, 0)

    facts = {"kernel": platform.release(), "cases": run_cases("/proc", spawn, die, reap)}
    json.dump(facts, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
