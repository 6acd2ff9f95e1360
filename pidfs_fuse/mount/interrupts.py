"""Signals reach callers blocked in the server (FUSE_INTERRUPT, without a pyfuse3 hook).

What Linux does (fs/fuse/dev.c ``request_wait_answer``, checked on this machine's 6.18): a task
blocked in a FUSE request that gets a signal is woken, the kernel queues FUSE_INTERRUPT naming
the request, and the task then sleeps *killable* (``ps`` shows D) until the server answers that
request: answering it with EINTR is what ends the system call (the signal is then delivered, or
the task dies). Nothing else frees it, not even SIGKILL (a fatal signal shows up as SIGKILL in
the task's SigPnd, SIGTERM included). A server that never answers leaves the caller in D state.

libfuse records FUSE_INTERRUPT on its request and calls the function registered with
``fuse_req_interrupt_func``; pyfuse3 3.5 registers none, and passes neither the request nor the
caller's pid to ``read``. So a read that blocks goes through ``Interrupts.wait``, which registers
its trio task, and the watcher task (running only while blocked reads exist):

1. finds the request of a newly blocked read once its task is suspended: ``gc.get_referents``
   walks the task's coroutine chain (pyfuse3's session loop -> ``fuse_read_async`` -> its
   scope) to the ``pyfuse3._Container`` of the request, checks that it is this read's (type,
   fh, offset and size must all match) and reads its ``fuse_req_t`` at the offset of the Cython
   struct (``struct __pyx_obj_7pyfuse3__Container`` in pyfuse3's ``__init__.c``); then, through
   ctypes, asks libfuse for the caller's tid (``fuse_req_ctx``) and registers an interrupt
   function (``fuse_req_interrupt_func``; libfuse calls it at once if the interrupt came first);
2. when libfuse reports FUSE_INTERRUPT, reads the caller's ``/proc/<tid>/status``: a pending
   signal (SigPnd | ShdPnd) that is not blocked and is not a stop ends the read with EINTR.
   A stop (SIGSTOP; SIGTSTP/SIGTTIN/SIGTTOU without a handler) does not: Linux cannot restart
   an interrupted FUSE read, so EINTR would make ``cat`` fail where a pipe reader stops and
   resumes; such a caller is checked again every ``RECHECK`` seconds (a later SIGKILL brings
   no second FUSE_INTERRUPT) until a signal ends the read or the read is answered;
3. if the request cannot be found (a pyfuse3 whose layout differs: the checks above fail), falls
   back to the process that opened the file: it is checked every ``RECHECK`` seconds, and a
   deliverable signal ends the read only while that task sleeps in a FUSE request.

The request pointer is only read while the read's task is suspended in ``wait`` (the request is
unanswered, so libfuse has not freed it); everything runs on the trio thread.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import logging
import math
import platform
from dataclasses import dataclass, field
from typing import Any

import pyfuse3
import trio

log = logging.getLogger(__name__)

#: seconds between checks of a caller whose signal (or lack of a request) needs watching
RECHECK = 0.05
#: signals whose default action is to stop: bit (signo - 1) in the status masks
SIGSTOP_BIT = 1 << (19 - 1)
TTY_STOP_BITS = (1 << (20 - 1)) | (1 << (21 - 1)) | (1 << (22 - 1))  # SIGTSTP, SIGTTIN, SIGTTOU


class _FuseFileInfo(ctypes.Structure):
    """libfuse 3's ``struct fuse_file_info`` (only its size and alignment matter here)."""

    _fields_ = [("flags", ctypes.c_int), ("bits", ctypes.c_uint), ("padding2", ctypes.c_uint),
                ("fh", ctypes.c_uint64), ("lock_owner", ctypes.c_uint64),
                ("poll_events", ctypes.c_uint32)]


class _Container(ctypes.Structure):
    """pyfuse3 3.5's ``_Container`` object as Cython lays it out (x86_64: struct stat is 144
    bytes)."""

    _fields_ = [("ob_refcnt", ctypes.c_ssize_t), ("ob_type", ctypes.c_void_p),
                ("rdev", ctypes.c_uint64), ("fi", _FuseFileInfo), ("ino", ctypes.c_uint64),
                ("parent", ctypes.c_uint64), ("req", ctypes.c_void_p), ("flags", ctypes.c_int),
                ("mode", ctypes.c_uint32), ("off", ctypes.c_int64), ("size", ctypes.c_size_t),
                ("stat", ctypes.c_char * 144), ("fh", ctypes.c_uint64)]


class _FuseCtx(ctypes.Structure):
    _fields_ = [("uid", ctypes.c_uint32), ("gid", ctypes.c_uint32), ("pid", ctypes.c_int32),
                ("umask", ctypes.c_uint32)]


_INTERRUPT_FUNC = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)


def _libfuse() -> Any:
    if platform.machine() != "x86_64":
        return None
    try:
        lib = ctypes.CDLL("libfuse3.so.3")  # already loaded by pyfuse3: the same library
    except OSError:
        return None
    lib.fuse_req_ctx.restype = ctypes.POINTER(_FuseCtx)
    lib.fuse_req_ctx.argtypes = [ctypes.c_void_p]
    lib.fuse_req_interrupt_func.restype = None
    lib.fuse_req_interrupt_func.argtypes = [ctypes.c_void_p, _INTERRUPT_FUNC, ctypes.c_void_p]
    return lib


_LIB = _libfuse()
#: pyfuse3's per-request record (not in its type stubs)
_PYFUSE3_CONTAINER: type = pyfuse3._Container  # type: ignore[attr-defined]


def deliverable(status: str) -> bool:
    """Whether ``/proc/<tid>/status`` text shows a pending signal that ends a blocked read:
    pending (thread or process), not blocked, not a stop (SIGSTOP, or a tty stop signal the
    task has no handler for). Ignored signals are never pending (Linux drops them when sent)."""
    masks = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("SigPnd", "ShdPnd", "SigBlk", "SigCgt"):
            masks[key] = int(value.strip(), 16)
    pending = (masks.get("SigPnd", 0) | masks.get("ShdPnd", 0)) & ~masks.get("SigBlk", 0)
    stops = SIGSTOP_BIT | (TTY_STOP_BITS & ~masks.get("SigCgt", 0))
    return bool(pending & ~stops)


def _read_proc(tid: int, name: str) -> str | None:
    try:
        with open(f"/proc/{tid}/{name}") as f:
            return f.read()
    except OSError:
        return None


@dataclass(slots=True, eq=False)
class BlockedRead:
    """One read sleeping in the server: its trio task, what identifies its request, and its
    caller once found."""

    key: int
    task: Any
    fh: int
    off: int
    size: int
    opener: int  # tid of the process that opened the file (the fallback's caller)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    tid: int = 0  # the caller, from the request (0: not found yet, or not findable)
    attached: bool = False
    interrupted: bool = False  # libfuse reported FUSE_INTERRUPT for it
    watched: bool = False  # checked every RECHECK seconds (a declined interrupt, or the fallback)
    eintr: bool = False  # answered with EINTR


class Interrupts:
    """The blocked reads of one mount and the watcher that ends them when their caller gets a
    signal (see the module note)."""

    def __init__(self) -> None:
        self.reads: dict[int, BlockedRead] = {}
        self.nursery: trio.Nursery | None = None
        self._next_key = 1
        self._new: list[BlockedRead] = []
        self._reported: list[int] = []
        self._wake = trio.Event()
        self._running = False
        self.fallbacks = 0  # reads whose request could not be found (watched through the opener)
        # one C callback for every request; libfuse passes the read's key as its data pointer
        self._callback = _INTERRUPT_FUNC(self._on_interrupt)

    async def wait(self, event: trio.Event, *, fh: int, off: int, size: int, opener: int) -> None:
        """``await event.wait()`` for the read (fh, off, size); FUSEError(EINTR) if its caller
        gets a signal first. Without a nursery (no server: unit tests) it only waits."""
        if self.nursery is None:
            await event.wait()
            return
        key, self._next_key = self._next_key, self._next_key + 1
        r = BlockedRead(key, trio.lowlevel.current_task(), fh, off, size, opener)
        self.reads[key] = r
        self._new.append(r)
        self._kick()
        try:
            with r.scope:
                await event.wait()
        finally:
            del self.reads[key]
        if r.eintr and not event.is_set():
            raise pyfuse3.FUSEError(errno.EINTR)

    def _kick(self) -> None:
        self._wake.set()
        if not self._running and self.nursery is not None:
            self._running = True
            self.nursery.start_soon(self._watch)

    def _on_interrupt(self, req: Any, data: Any) -> None:
        # called by libfuse (inside pyfuse3's processing of the FUSE_INTERRUPT request, on this
        # thread, with the request's lock held): note it, never touch the request here
        try:
            self._reported.append(int(data or 0))
            self._wake.set()
        except Exception:  # nothing may escape into C
            log.exception("interrupt callback")

    async def _watch(self) -> None:
        try:
            while self.reads:
                new, self._new = self._new, []
                for r in new:
                    if r.key in self.reads:
                        self._attach(r)
                reported, self._reported = self._reported, []
                for key in reported:
                    hit = self.reads.get(key)
                    if hit is not None:
                        hit.interrupted = True
                        self._check(hit)
                watched = [r for r in self.reads.values() if r.watched and not r.eintr]
                for r in watched:
                    self._check(r)
                self._wake = trio.Event()
                if self._new or self._reported:
                    continue
                with trio.move_on_after(RECHECK if watched else math.inf):
                    await self._wake.wait()
        finally:
            self._running = False

    def _attach(self, r: BlockedRead) -> None:
        """Find the request of ``r`` (its task is suspended in ``wait``) and register the
        interrupt function; on failure, watch the opener instead."""
        r.attached = True
        req = self._request_of(r) if _LIB is not None else None
        if req is None:
            self.fallbacks += 1
            r.tid, r.watched = r.opener, True
            return
        r.tid = _LIB.fuse_req_ctx(req).contents.pid
        _LIB.fuse_req_interrupt_func(req, self._callback, r.key)

    def _request_of(self, r: BlockedRead) -> int | None:
        c = _container_of(r.task)
        if c is None:
            return None
        raw = _Container.from_address(id(c))
        if (raw.ob_type != id(_PYFUSE3_CONTAINER) or raw.fh != r.fh or raw.off != r.off
                or raw.size != r.size or not raw.req):
            return None
        return int(raw.req)

    def _check(self, r: BlockedRead) -> None:
        """End the read with EINTR if its caller has a signal to take; otherwise keep watching
        it (an interrupt declined for a stop, or the fallback)."""
        if r.eintr:
            return
        status = _read_proc(r.tid, "status") if r.tid > 0 else None
        if status is None:
            go = r.interrupted  # the caller is gone (or unknown): nobody waits for the answer
        elif not deliverable(status):
            go = False
        elif r.interrupted:
            go = True
        else:  # fallback: the opener has a signal; end the read only if it is the one blocked
            go = (_read_proc(r.tid, "wchan") or "").strip() == "request_wait_answer"
        if go:
            r.eintr = True
            r.scope.cancel()
        else:
            r.watched = True


def _container_of(task: Any) -> Any:
    """The ``pyfuse3._Container`` the coroutine chain of a suspended worker task holds, or
    None. Walks coroutines and Cython closure scopes only, a few levels deep."""
    level = [task.coro]
    for _ in range(8):
        nxt = []
        for obj in level:
            for ref in gc.get_referents(obj):
                if type(ref) is _PYFUSE3_CONTAINER:
                    return ref
                name = type(ref).__name__
                if "coroutine" in name or "scope_struct" in name:
                    nxt.append(ref)
        if not nxt:
            return None
        level = nxt
    return None
