"""Who asks: a request's caller as it knows itself, in its own pid namespace.

FUSE reports the caller's pid in the server's pid namespace. A caller in a deeper pid namespace
(``pidfs-fuse exec`` runs commands in one) knows itself by another number: ``getpid()`` is its
number in its innermost namespace, and that is what ``/proc/self`` must name and
``/proc/<getpid()>`` must answer, as a procfs mounted in that namespace does (procps reads
both, and psutil's ``Process()`` reads ``/proc/<getpid()>``). The kernel tells the server the
caller's numbers: the ``NStgid:`` and ``NSpid:`` lines of ``/proc/<pid>/status`` list them from
the namespace of that /proc (the server's) down to the innermost.

A caller in the server's own namespace is left exactly as before (the FUSE pid). The server
reads the host's /proc only when it is a real procfs (were it itself a pidfs-fuse mount, the
read could be a request to this very server); otherwise every caller counts as one of its own.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

PROC_SUPER_MAGIC = 0x9FA0


def _is_procfs(path: str = "/proc") -> bool:
    buf = ctypes.create_string_buffer(256)  # struct statfs; f_type is its first field
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.statfs(path.encode(), buf) != 0:
        return False
    return ctypes.c_long.from_buffer(buf).value == PROC_SUPER_MAGIC


class Callers:
    """``numbers(pid)``: (tgid, tid) of the FUSE caller ``pid`` in its innermost pid namespace
    when that is deeper than the server's, else None."""

    def __init__(self) -> None:
        self.enabled = _is_procfs()
        if not self.enabled:
            log.warning("/proc is not a procfs here: callers in other pid namespaces see "
                        "themselves by their numbers in the server's")

    def numbers(self, pid: int) -> tuple[int, int] | None:
        if not self.enabled or pid <= 0:
            return None
        try:
            with open(f"/proc/{pid}/status", "rb") as f:
                data = f.read()
        except OSError:
            return None
        tgids: list[bytes] = []
        tids: list[bytes] = []
        for line in data.splitlines():
            if line.startswith(b"NStgid:"):
                tgids = line.split()[1:]
            elif line.startswith(b"NSpid:"):
                tids = line.split()[1:]
                break
        if len(tids) < 2 or len(tgids) != len(tids) or int(tids[0]) != pid:
            return None
        return int(tgids[-1]), int(tids[-1])

    def self_numbers(self, pid: int) -> tuple[int, int]:
        """What ``self`` and ``thread-self`` name for the caller ``pid``: (tgid, tid)."""
        inner = self.numbers(pid)
        return inner if inner is not None else (pid, pid)

    def is_caller(self, pid: int, nr: int) -> bool:
        """True when ``nr`` is how the caller ``pid`` names itself (its pid or thread id)."""
        inner = self.numbers(pid)
        return nr == pid if inner is None else nr in inner


__all__ = ["Callers"]
