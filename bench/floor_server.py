"""The floor: a do-nothing pyfuse3 server (same pyfuse3, trio and worker settings as ours).

``python bench/floor_server.py MOUNTPOINT`` serves until unmounted:

- ``f``: a file served from the page cache (keep_cache, hour-long timeouts): open+read+close
  costs an ``open`` and a ``release``, as a warm file of ours does; ``f0``, ``f1``... are as
  many more such files (distinct inodes), to cycle through as many files as a table has
- ``g``: a file whose attributes are never cached: each ``stat`` is one ``getattr``
- ``n<anything>``: files whose entries are never cached: each ``stat`` is one ``lookup``
- ``r``: a ``direct_io`` file: each ``pread`` is one ``read``
- ``l``: a symbolic link: each ``readlink`` is one ``readlink``
- ``d``: an empty directory: each listing is ``opendir``, ``readdir`` and ``releasedir``

It answers ENOSYS to ``flush``, as pidfs_fuse does (``mount/fs.py``), and counts requests by
type in the extended attribute ``user.floor.requests`` of its root (reading it is not counted).
Measured beside pidfs_fuse it shows what each kind of request costs any pyfuse3 + trio server
here: ``tools_bench.py`` prices a tool's requests with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import stat
import sys
from collections import Counter

import pyfuse3
import trio

DATA = b"Name:\tfloor\n" * 50
ROOT = pyfuse3.ROOT_INODE
F, G, R, L, D = 2, 3, 4, 5, 6
NAMES = {b"f": F, b"g": G, b"r": R, b"l": L, b"d": D}
N_BASE = 1000  # inode of n<name>: one for all of them
F_BASE = 10_000  # inode of f<i>: F_BASE + i
XATTR = b"user.floor.requests"
#: pidfs_fuse's pyfuse3.main settings (mount/server.py MIN_TASKS, MAX_TASKS)
MIN_TASKS, MAX_TASKS = 8, 100_000
#: the pid of the benchmark that started the server (``floor.py`` sets it)
PARENT_ENV = "PIDFS_FLOOR_PARENT"


class Floor(pyfuse3.Operations):
    def __init__(self) -> None:
        super().__init__()
        self.requests: Counter[str] = Counter()

    def _attr(self, ino: int) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = ino
        a.entry_timeout = 0 if ino == N_BASE else 3600
        a.attr_timeout = 0 if ino == G else 3600
        if ino in (ROOT, D):
            a.st_mode = stat.S_IFDIR | 0o555
        elif ino == L:
            a.st_mode = stat.S_IFLNK | 0o777
        else:
            a.st_mode = stat.S_IFREG | 0o444
            a.st_size = len(DATA)
        return a

    async def getattr(self, inode, ctx=None):
        self.requests["getattr"] += 1
        return self._attr(inode)

    async def lookup(self, parent_inode, name, ctx=None):
        self.requests["lookup"] += 1
        if parent_inode == ROOT and name in NAMES:
            return self._attr(NAMES[name])
        if parent_inode == ROOT and name.startswith(b"n"):
            return self._attr(N_BASE)
        if parent_inode == ROOT and name[:1] == b"f" and name[1:].isdigit():
            return self._attr(F_BASE + int(name[1:]))
        raise pyfuse3.FUSEError(errno.ENOENT)

    async def forget(self, inode_list):
        self.requests["forget"] += 1

    async def open(self, inode, flags, ctx):
        self.requests["open"] += 1
        return pyfuse3.FileInfo(fh=inode, keep_cache=inode != R, direct_io=inode == R)

    async def read(self, fh, off, size):
        self.requests["read"] += 1
        return DATA[off: off + size]

    async def release(self, fh):
        self.requests["release"] += 1

    async def readlink(self, inode, ctx):
        self.requests["readlink"] += 1
        return b"f"

    async def opendir(self, inode, ctx):
        self.requests["opendir"] += 1
        return inode

    async def readdir(self, fh, start_id, token):
        self.requests["readdir"] += 1

    async def releasedir(self, fh):
        self.requests["releasedir"] += 1

    async def getxattr(self, inode, name, ctx):
        if inode == ROOT and name == XATTR:
            return "".join(f"{k} {v}\n" for k, v in sorted(self.requests.items())).encode()
        raise pyfuse3.FUSEError(errno.ENODATA)


def serve(ops: pyfuse3.Operations, mountpoint: str, options: set[str]) -> None:
    """Serve ``ops`` at ``mountpoint`` until it is unmounted, or until this server gets SIGTERM
    or SIGHUP, which unmount it: the benchmark that started it sends SIGTERM by dying
    (PR_SET_PDEATHSIG), so a killed benchmark leaves no floor mount behind."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    parent = os.environ.get(PARENT_ENV)
    if parent and os.getppid() != int(parent):
        sys.exit("floor server: the benchmark that started it is gone")

    async def until_signalled() -> None:
        async with trio.open_nursery() as nursery:
            async def stop() -> None:
                with trio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()
            nursery.start_soon(stop)
            await pyfuse3.main(MIN_TASKS, MAX_TASKS)
            nursery.cancel_scope.cancel()  # unmounted from outside

    pyfuse3.init(ops, mountpoint, options)
    try:
        trio.run(until_signalled)
    finally:
        pyfuse3.close(unmount=True)


def main() -> None:
    serve(Floor(), sys.argv[1], {"fsname=floor"})


if __name__ == "__main__":
    main()
