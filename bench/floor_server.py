"""The floor: a do-nothing pyfuse3 server with one cached file (keep_cache, long timeouts).

``python bench/floor_server.py MOUNTPOINT`` serves ``MOUNTPOINT/f`` until unmounted. Measured
beside pidfs_fuse it shows what any per-open FUSE request costs in pyfuse3 + trio here, which
bounds what the real server can reach for open+read+close.
"""

from __future__ import annotations

import errno
import stat
import sys

import pyfuse3
import trio

DATA = b"Name:\tfloor\n" * 50


class Floor(pyfuse3.Operations):
    def _attr(self, ino: int) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = ino
        a.entry_timeout = a.attr_timeout = 3600
        if ino == pyfuse3.ROOT_INODE:
            a.st_mode = stat.S_IFDIR | 0o555
        else:
            a.st_mode = stat.S_IFREG | 0o444
            a.st_size = len(DATA)
        return a

    async def getattr(self, inode, ctx=None):
        return self._attr(inode)

    async def lookup(self, parent_inode, name, ctx=None):
        if name == b"f":
            return self._attr(2)
        raise pyfuse3.FUSEError(errno.ENOENT)

    async def open(self, inode, flags, ctx):
        return pyfuse3.FileInfo(fh=1, keep_cache=True)

    async def read(self, fh, off, size):
        return DATA[off: off + size]

    async def release(self, fh):
        return None


def main() -> None:
    pyfuse3.init(Floor(), sys.argv[1], {"fsname=floor"})
    try:
        trio.run(pyfuse3.main, 8, 1000)
    finally:
        pyfuse3.close(unmount=True)


if __name__ == "__main__":
    main()
