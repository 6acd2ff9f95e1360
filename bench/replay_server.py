"""The replay floor: a do-nothing pyfuse3 server holding a copy of another mount's tree.

``python bench/replay_server.py MOUNTPOINT SOURCE`` serves until unmounted. Whatever the kernel
asks about a path the first time (its entry, attributes, link target, content, listing), the
server fetches once from the same path under ``SOURCE`` (a pidfs_fuse mount) and keeps; from then
on it answers from dictionaries, with the same caching the kernel is given by pidfs_fuse: hour-long
entry and attribute timeouts, ``keep_cache`` files (``direct_io`` for the files pidfs_fuse
renders per read: those of size 0), negative entries for names a pid directory lacks, uncached
``self`` and ``thread-self``, entries in listings (READDIRPLUS).

So a tool run warm against it makes the requests the same run makes against pidfs_fuse, and each
costs what pyfuse3 and trio cost with no model behind them: ``tools_bench.py`` runs every tool on
both and compares. The tools' own work, the kernel's and the gaps between requests are in both
times. Requests are counted by type in the extended attribute ``user.floor.requests`` of the
root, with ``fetched`` counting the answers that had to go to ``SOURCE`` (after the warm-up run
this stays still, or the replay was not complete). Needs root, like the benchmark.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from collections import Counter
from collections.abc import Callable

import pyfuse3

# served as the plain floor is, with pidfs_fuse's pyfuse3.main settings (mount/server.py)
from floor_server import XATTR, serve  # type: ignore[import-not-found]

LONG = 3600.0  # pidfs_fuse's entry/attribute timeout (mount/fs.py LONG)
UNCACHED_LINKS = frozenset({b"self", b"thread-self"})
#: directories whose missing names pidfs_fuse answers with a negative entry (PidDir)
FIXED_NAMES = re.compile(rb"^(\d+)(/task/\d+)?$")


class Replay(pyfuse3.Operations):
    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source.encode()
        self.requests: Counter[str] = Counter()
        self.paths: dict[int, bytes] = {pyfuse3.ROOT_INODE: b""}
        self.inos: dict[bytes, int] = {b"": pyfuse3.ROOT_INODE}
        self.attrs: dict[int, pyfuse3.EntryAttributes] = {}
        # what SOURCE answered, by its path there (None: no such name)
        self.stats: dict[bytes, os.stat_result | None] = {}
        self.links: dict[bytes, bytes | int] = {}  # an int: the errno it answered
        self.data: dict[bytes, bytes | int] = {}
        self.listings: dict[int, list[tuple[bytes, int]] | int] = {}
        #: a caller outside the table finds its own number at the root: pidfs_fuse answers it
        #: with a stand-in directory, to that caller only and with zero timeouts
        #: (mount/nodes/standin.py); here every such number is the server's own stand-in
        self.alias: dict[bytes, bytes] = {}
        self.own: bytes | None = None

    # -- fetching from SOURCE, once per path there --------------------------------------------

    def _real(self, path: bytes) -> bytes:
        first, sep, rest = path.partition(b"/")
        first = self.alias.get(first, first)
        return first + sep + rest

    def _src(self, path: bytes) -> bytes:
        path = self._real(path)
        return self.source + b"/" + path if path else self.source

    def _stat(self, path: bytes) -> os.stat_result | None:
        real = self._real(path)
        if real in self.stats:
            return self.stats[real]
        self.requests["fetched"] += 1
        try:
            st: os.stat_result | None = os.lstat(self._src(path))
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise pyfuse3.FUSEError(e.errno or errno.EIO) from None
            st = None
        self.stats[real] = st
        return st

    def _fetch(self, path: bytes) -> int | None:
        """The inode for ``path``, its attributes fetched (None: SOURCE has no such name)."""
        ino = self.inos.get(path)
        if ino is not None and ino in self.attrs:
            return ino
        st = self._stat(path)
        if st is None:
            return None
        if ino is None:
            ino = len(self.paths) + 1
            self.paths[ino] = path
            self.inos[path] = ino
        a = pyfuse3.EntryAttributes()
        for f in ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_rdev"):
            setattr(a, f, getattr(st, f))
        a.st_atime_ns, a.st_mtime_ns, a.st_ctime_ns = st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns
        a.st_blksize, a.st_blocks = 4096, 0
        a.st_ino = ino
        if path.partition(b"/")[0] in self.alias or path in UNCACHED_LINKS:
            a.entry_timeout = a.attr_timeout = 0
        else:
            a.entry_timeout = a.attr_timeout = LONG
        self.attrs[ino] = a
        return ino

    def _standin(self, name: bytes, ctx: object) -> int | None:
        """The caller's own number at the root: a stand-in, as pidfs_fuse answers it."""
        if not name.isdigit() or int(name) not in _caller(ctx):
            return None
        if self.own is None:
            self.requests["fetched"] += 1
            self.own = os.readlink(self.source + b"/self").partition(b"/")[0]
            self.alias[self.own] = self.own
        self.alias[name] = self.own
        return self._fetch(name)

    def _once(self, cache: dict[bytes, bytes | int], inode: int,
              fetch: Callable[[bytes], bytes]) -> bytes:
        """``fetch`` of the inode's path under SOURCE, made once and kept (a failure as its
        errno, raised again on every later ask)."""
        real = self._real(self.paths[inode])
        got = cache.get(real)
        if got is None:
            self.requests["fetched"] += 1
            try:
                got = fetch(self._src(self.paths[inode]))
            except OSError as e:
                got = e.errno or errno.EIO
            cache[real] = got
        if isinstance(got, int):
            raise pyfuse3.FUSEError(got)
        return got

    def _child(self, parent: int, name: bytes) -> bytes:
        p = self.paths[parent]
        return p + b"/" + name if p else name

    def _direct(self, ino: int) -> bool:
        """pidfs_fuse serves a file from the page cache with its size, or reports size 0 and
        renders it on every read (``direct_io``: what changes with time, ``sys/``, stand-ins)."""
        return self.attrs[ino].st_size == 0

    # -- requests ----------------------------------------------------------------------------

    async def lookup(self, parent_inode, name, ctx=None):
        self.requests["lookup"] += 1
        path = self._child(parent_inode, name)
        ino = self._fetch(path)
        if ino is None and parent_inode == pyfuse3.ROOT_INODE:
            ino = self._standin(name, ctx)
        if ino is None:
            if FIXED_NAMES.match(self.paths[parent_inode]):
                absent = pyfuse3.EntryAttributes()
                absent.entry_timeout = LONG
                return absent
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self.attrs[ino]

    async def getattr(self, inode, ctx=None):
        self.requests["getattr"] += 1
        if inode == pyfuse3.ROOT_INODE and inode not in self.attrs:
            self._fetch(b"")
        return self.attrs[inode]

    async def forget(self, inode_list):
        self.requests["forget"] += 1

    async def readlink(self, inode, ctx):
        self.requests["readlink"] += 1
        return self._once(self.links, inode, os.readlink)

    async def open(self, inode, flags, ctx):
        self.requests["open"] += 1
        self._once(self.data, inode, _read_file)
        direct = self._direct(inode)
        return pyfuse3.FileInfo(fh=inode, keep_cache=not direct, direct_io=direct)

    async def read(self, fh, off, size):
        self.requests["read"] += 1
        data = self.data[self._real(self.paths[fh])]
        assert isinstance(data, bytes)  # an open that failed gave no fh
        return data[off: off + size]

    async def release(self, fh):
        self.requests["release"] += 1

    async def opendir(self, inode, ctx):
        self.requests["opendir"] += 1
        return inode

    async def readdir(self, fh, start_id, token):
        self.requests["readdir"] += 1
        entries = self.listings.get(fh)
        if entries is None:
            self.requests["fetched"] += 1
            try:
                names = os.listdir(self._src(self.paths[fh]))  # in SOURCE's order
            except OSError as e:
                names = e.errno or errno.EIO
            entries = self.listings[fh] = names if isinstance(names, int) else [
                (name, ino) for name in names
                if (ino := self._fetch(self._child(fh, name))) is not None]
        if isinstance(entries, int):
            raise pyfuse3.FUSEError(entries)
        dots = self.attrs[fh]
        for i, (name, attr) in enumerate(((b".", dots), (b"..", dots)), 1):
            if start_id < i and not pyfuse3.readdir_reply(token, name, attr, i):
                return
        for i in range(max(0, start_id - 2), len(entries)):
            name, ino = entries[i]
            if not pyfuse3.readdir_reply(token, name, self.attrs[ino], i + 3):
                return

    async def releasedir(self, fh):
        self.requests["releasedir"] += 1

    async def statfs(self, ctx):
        self.requests["statfs"] += 1
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_namemax = 255
        return s

    async def getxattr(self, inode, name, ctx):
        if inode == pyfuse3.ROOT_INODE and name == XATTR:
            return "".join(f"{k} {v}\n" for k, v in sorted(self.requests.items())).encode()
        raise pyfuse3.FUSEError(errno.ENODATA)


def _read_file(path: bytes) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _caller(ctx: object) -> tuple[int, ...]:
    """The caller's thread id and its process's (from this machine's /proc)."""
    pid = getattr(ctx, "pid", 0)
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Tgid:"):
                    return pid, int(line.split()[1])
    except OSError:
        pass
    return (pid,)


def main() -> None:
    mountpoint, source = sys.argv[1], sys.argv[2]
    serve(Replay(source), mountpoint, {"fsname=replay", "default_permissions"})


if __name__ == "__main__":
    main()
