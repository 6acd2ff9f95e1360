#!/usr/bin/env python3
"""Facts of this machine's Linux about per-pid files of dying and dead processes, as JSON.

Run as root (it changes uid to 65534 in forked probes):

    python3 pidfs_fuse/tests/reference/kernel_facts.py > pidfs_fuse/tests/reference/kernel_facts.json

What it measures (issue 10, points 3 and 7), each read done in a fresh forked probe process
running as the reader's uid (setresuid, no supplementary groups):

- ``perpid_access``: for a live, sleeping target owned by root and one owned by 65534 (made
  dumpable again after its setresuid, as an exec'd user process is), each per-pid file's mode
  and what reading it gives to root, to 65534 (another uid) and to 65534 (the owner);
- ``zombie``: a child that exited and was not reaped (owned by root; read by root and by
  65534), and one owned by 65534 read by its owner;
- ``zombie_leader``: a process whose leader called exit(2) (SYS_exit, not exit_group) while
  another thread lives on: /<pid>/ and /<pid>/task/<pid>/ of the leader;
- ``reaped``: what an already-open /<pid>/status descriptor, an already-open /<pid>/ or
  /<pid>/task/ directory descriptor, and new opens answer after the pid is reaped.

A result is ``"ok"`` with a short description of what came back (byte count, a small content,
a link target, the names listed) or the errno's name. The targets are this script's own
children; every one is killed and reaped before it exits.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable

NOBODY = 65534
SYS_EXIT = 60  # x86-64
PR_SET_DUMPABLE = 4

FILES = ["environ", "cmdline", "comm", "status", "stat", "statm", "maps", "smaps", "smaps_rollup",
         "wchan", "io", "stack", "syscall", "limits", "oom_score", "oom_score_adj", "oom_adj",
         "sched", "schedstat", "autogroup", "timers", "uid_map", "gid_map", "setgroups",
         "personality", "coredump_filter", "timerslack_ns", "cpuset", "arch_status", "ksm_stat",
         "ksm_merging_pages", "auxv", "mem", "pagemap", "mounts", "mountinfo", "mountstats",
         "cgroup", "loginuid", "sessionid", "numa_maps", "timens_offsets", "projid_map",
         "clear_refs", "attr/current", "attr/prev", "attr/exec"]
DIRS = ["fd", "fdinfo", "map_files", "task", "ns", "net", "attr"]
LINKS = ["exe", "cwd", "root", "ns/pid"]

ZOMBIE_READS = ["environ", "cmdline", "comm", "status", "stat", "statm", "maps", "smaps",
                "smaps_rollup", "wchan", "io", "stack", "syscall", "mounts", "mountinfo", "auxv",
                "numa_maps", "timens_offsets", "attr/current", "clear_refs"]
ZOMBIE_DIRS = ["fd", "fdinfo", "task", "map_files", "ns", "attr"]
ZOMBIE_LINKS = ["exe", "cwd", "root", "ns/pid", "ns/pid_for_children"]


def _errname(e: OSError) -> str:
    return errno.errorcode.get(e.errno or 0, str(e.errno))


def _describe(data: bytes, path: str) -> str:
    if not data:
        return "ok (empty)"
    if os.path.basename(path) == "status":
        state = [ln for ln in data.split(b"\n") if ln.startswith(b"State:")]
        return f"ok ({len(data)} bytes, {state[0].decode() if state else 'no State line'})"
    if len(data) <= 32 and data.rstrip(b"\n").isascii() and b"\0" not in data:
        return f"ok {data.decode()!r}"
    return f"ok ({len(data)} bytes)"


def op_read(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return "open " + _errname(e)
    try:
        data = os.read(fd, 1 << 20)
    except OSError as e:
        return "open ok, read " + _errname(e)
    finally:
        os.close(fd)
    return _describe(data, path)


def op_listdir(path: str) -> str:
    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        return _errname(e)
    shown = names if len(names) <= 6 else names[:6] + ["..."]
    return f"ok ({len(names)} entries: {' '.join(shown)})" if names else "ok (empty)"


def op_readlink(path: str) -> str:
    try:
        return f"ok {os.readlink(path)!r}"
    except OSError as e:
        return _errname(e)


OPS: dict[str, Callable[[str], str]] = {"read": op_read, "listdir": op_listdir,
                                         "readlink": op_readlink}


def as_uid(uid: int, op: str, path: str) -> str:
    """Run OPS[op](path) in a forked probe with uid/gid ``uid`` and no groups."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            if uid != 0:
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
            out = OPS[op](path)
        except BaseException as e:  # report anything that went wrong in the probe
            out = f"probe failed: {e!r}"
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _become(uid: int) -> None:
    if uid:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        _libc().prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # as after exec; setresuid cleared it


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except OSError:
        return "?"
    return text[text.rindex(b")") + 2:][:1].decode()


def _wait_state(pid: int, states: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _state(pid) not in states:
        if time.monotonic() > deadline:
            raise RuntimeError(f"pid {pid} never reached state {states!r} (is {_state(pid)!r})")
        time.sleep(0.01)


def _close_others(keep: int) -> None:
    """In a new child: close every descriptor but stdio and ``keep`` (another child's pipe end
    inherited by fork would keep that child from ever seeing EOF)."""
    os.closerange(3, keep)
    os.closerange(keep + 1, 4096)


def spawn_sleeper(uid: int) -> tuple[int, int]:
    """A child blocked reading a pipe (state S). Returns (pid, write end to release it)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _close_others(r)
        _become(uid)
        os.read(r, 1)
        os._exit(0)
    os.close(r)
    _wait_state(pid, "S")
    return pid, w


def spawn_zombie(uid: int) -> int:
    pid = os.fork()
    if pid == 0:
        _close_others(2)
        _become(uid)
        os._exit(3)
    _wait_state(pid, "Z")
    return pid


def spawn_zombie_leader() -> tuple[int, int]:
    """A process whose leader exited with SYS_exit while a second thread blocks on a pipe.
    Returns (pid, write end that releases the thread)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _close_others(r)
        t = threading.Thread(target=os.read, args=(r, 1))
        t.start()
        _libc().syscall(SYS_EXIT, 0)  # only this thread exits
        os._exit(99)  # not reached
    os.close(r)
    _wait_state(pid, "Z")
    return pid, w


def reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


def probe_set(base: str, readers: dict[str, int], reads: list[str], dirs: list[str],
              links: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for kind, names in (("read", reads), ("listdir", dirs), ("readlink", links)):
        for name in names:
            label = name + ("/" if kind == "listdir" else "")
            out[label] = {who: as_uid(uid, kind, f"{base}/{name}") for who, uid in readers.items()}
    return out


def perpid_access() -> dict[str, dict[str, str]]:
    root_pid, root_w = spawn_sleeper(0)
    nob_pid, nob_w = spawn_sleeper(NOBODY)
    try:
        out: dict[str, dict[str, str]] = {}
        for kind, names in (("read", FILES), ("listdir", DIRS), ("readlink", LINKS)):
            for name in names:
                st = os.lstat(f"/proc/{root_pid}/{name}")
                label = name + ("/" if kind == "listdir" else "")
                out[label] = {
                    "mode": f"{st.st_mode & 0o7777:04o}",
                    "root reads root's": as_uid(0, kind, f"/proc/{root_pid}/{name}"),
                    "65534 reads root's": as_uid(NOBODY, kind, f"/proc/{root_pid}/{name}"),
                    "65534 reads its own": as_uid(NOBODY, kind, f"/proc/{nob_pid}/{name}"),
                }
        return out
    finally:
        for pid, w in ((root_pid, root_w), (nob_pid, nob_w)):
            os.close(w)
            os.waitpid(pid, 0)


def zombie_facts() -> dict[str, object]:
    zr = spawn_zombie(0)
    zn = spawn_zombie(NOBODY)
    try:
        owners = {name: f"{st.st_uid}:{st.st_gid}" for name in
                  ("", "status", "environ", "stat", "fd", "fdinfo", "task", "ns", "exe", "maps")
                  for st in [os.lstat(f"/proc/{zn}/{name}")]}
        return {
            "owner uid:gid of /<pid>/<name> of a 65534-owned zombie (task_dump_owner: no mm, "
            "root owns all but the 0555 directories)": owners,
            "root-owned zombie": probe_set(f"/proc/{zr}", {"root": 0, "65534": NOBODY},
                                           ZOMBIE_READS, ZOMBIE_DIRS, ZOMBIE_LINKS),
            "65534-owned zombie read by its owner": probe_set(
                f"/proc/{zn}", {"65534": NOBODY}, ZOMBIE_READS, ZOMBIE_DIRS, ZOMBIE_LINKS),
        }
    finally:
        reap(zr)
        reap(zn)


def zombie_leader_facts() -> dict[str, object]:
    pid, w = spawn_zombie_leader()
    try:
        readers = {"root": 0, "65534": NOBODY}
        return {
            "/<pid>/": probe_set(f"/proc/{pid}", readers, ZOMBIE_READS, ZOMBIE_DIRS, ZOMBIE_LINKS),
            "/<pid>/task/<pid>/": probe_set(f"/proc/{pid}/task/{pid}", readers, ZOMBIE_READS,
                                            ["fd"], ["exe", "cwd"]),
        }
    finally:
        os.close(w)
        os.waitpid(pid, 0)


def reaped_facts() -> dict[str, str]:
    pid = spawn_zombie(0)
    status_fd = os.open(f"/proc/{pid}/status", os.O_RDONLY)
    first = os.read(status_fd, 4096)
    dir_fd = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY)
    task_fd = os.open(f"/proc/{pid}/task", os.O_RDONLY | os.O_DIRECTORY)
    os.waitpid(pid, 0)
    out: dict[str, str] = {"read of the open status fd before the reap": _describe(first, "status")}

    def attempt(what: str, fn: Callable[[], object]) -> None:
        try:
            res = fn()
            out[what] = _describe(res, "status") if isinstance(res, bytes) else f"ok {res!r}"
        except OSError as e:
            out[what] = _errname(e)

    attempt("pread(open status fd, 0) after the reap", lambda: os.pread(status_fd, 4096, 0))
    attempt("read(open status fd) continuing after the reap", lambda: os.read(status_fd, 4096))
    attempt("open /<pid>/status after the reap", lambda: os.open(f"/proc/{pid}/status", os.O_RDONLY))
    attempt("listdir /<pid>/task after the reap", lambda: os.listdir(f"/proc/{pid}/task"))
    attempt("stat /<pid> after the reap", lambda: os.stat(f"/proc/{pid}").st_mode)
    attempt("listdir of an open /<pid>/task fd after the reap", lambda: os.listdir(task_fd))
    attempt("openat(open /<pid> fd, 'status') after the reap",
            lambda: os.open("status", os.O_RDONLY, dir_fd=dir_fd))
    attempt("fstat(open /<pid> fd) after the reap", lambda: oct(os.fstat(dir_fd).st_mode))
    for fd in (status_fd, dir_fd, task_fd):
        os.close(fd)
    return out


def main() -> int:
    if os.geteuid() != 0:
        print("kernel_facts.py: run as root (probes switch to uid 65534)", file=sys.stderr)
        return 2
    facts = {
        "kernel": platform.release(),
        "note": "each result is from a forked probe with that uid; 'ok (...)' describes the "
                "bytes, listing or link target, anything else is the errno's name",
        "perpid_access": perpid_access(),
        "zombie": zombie_facts(),
        "zombie_leader": zombie_leader_facts(),
        "reaped": reaped_facts(),
    }
    json.dump(facts, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
