"""More per-pid files: the memory map (maps, smaps, smaps_rollup, map_files/, pagemap, auxv, mem),
scheduler and syscall state (wchan, sched, schedstat, autogroup, syscall, stack, timers,
timerslack_ns), OOM scores, identity maps (uid_map, gid_map, setgroups, personality), small
constant files, and the mount table files (mounts, mountinfo, mountstats).

Issue 10 point 3. Models fs/proc/task_mmu.c (``show_map_vma``, ``show_smap``,
``show_smaps_rollup``, ``pagemap_read``), fs/proc/base.c (wchan, oom_score, oom_adj, syscall,
stack, auxv, timers, timerslack_ns, coredump_filter, personality, map_files), kernel/sched/debug.c
(``proc_sched_show_task``), kernel/sched/stats.c (schedstat), kernel/sched/autogroup.c,
kernel/user_namespace.c (uid_map, gid_map, setgroups), fs/proc_namespace.c (mount table) and
mm/ksm.c. Formats are this machine's Linux 6.18 (../tests/reference/linux-6.18/perpid/: a
python3 process reading its own files).

**The memory map is synthesized from the model's vsize and rss**, through the same split that
``files._mem_kb`` gives status and statm (VmSize, VmRSS, RssAnon, RssFile, VmData, VmStk, VmExe,
VmLib): a typical dynamically linked x86-64 process (the executable in five mappings, heap, an
anonymous arena, the locale archive, libc and ld.so in five mappings each, libc's bss, vvar,
vvar_vclock, vdso, stack, vsyscall). Every region is a whole number of pages and

- the regions' sizes sum to VmSize, except ``[vsyscall]``, which Linux also shows in maps while
  it is not part of the mm (so ``pmap`` totals exceed VmSize by 4 kB, as on Linux);
- r-xp regions of the executable sum to VmExe, the other executable ones (libraries, vdso) to
  VmLib, private writable non-stack ones to VmData, ``[stack]`` to VmStk;
- Rss sums to VmRSS, Anonymous to RssAnon (anonymous pages fill stack, heap, arena, bss and
  the libraries' written data pages; file pages fill the file mappings, text first);
- anonymous pages are private and dirty (Pss = Rss); file pages are clean and shared with one
  other process (Pss = Rss / 2, Shared_Clean = Rss), so psutil's ``memory_full_info`` gives
  uss = RssAnon <= pss <= rss, and swap 0 (VmSwap 0).
Only when a scenario sets an rss larger than its vsize can hold do Rss values exceed a region's
Size (the excess goes to the largest anonymous or file region), keeping the sums true. The
addresses are those of a 47-bit address space: for a vsize beyond some tens of TiB (which no
x86-64 process with 4-level page tables can have) the sizes stay exact but regions may overlap.

Scenario keys (``ThreadGroup.extra``, text): ``wchan`` (a kernel function name, per process),
``oom_score_adj`` (-1000..1000). Without them: wchan follows the state (R and zombies ``0``;
S ``do_epoll_wait``; D ``io_schedule``; T ``do_signal_stop``; t ``ptrace_stop``; I
``worker_thread``), oom_score_adj 0.

Exited tasks follow kernel_facts.json (a real zombie on this machine): maps and smaps empty,
smaps_rollup and auxv ESRCH, mounts/mountinfo/mountstats EINVAL, syscall ``-1 0x0 0x0``,
wchan ``0``, stack empty, coredump_filter empty.

Who may read, per file, is ``PERPID_FILES[name].access`` (see ``ACCESS_*``): the mount applies
it with ``access.may_ptrace`` and the caller's uid, as it does for environ and io today.
"""

from __future__ import annotations

import errno
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from ..kernel import ExitState, KernelError, Task
from . import files as F
from . import system as SYS
from .view import View

Show = Callable[[View, Task], bytes]

PAGE = 4096
PAGE_KB = 4
#: the mm's layout constants, shared with stat's fields 26-28 and 45-51
START_CODE = F._START_CODE
START_BRK = F._START_BRK
ARG_START = F._ARG_START
_MMAP_BASE = 0x7F3A5C000000
_STACK_TOP_MIN = 0x7FFD2C8E9000
#: the guard between the heap, the mmap area and the stack (as mmap_base leaves below the stack)
_GAP = 0x10000000
_VSYSCALL = 0xFFFFFFFFFF600000
_EXE_DEV = "fe:01"
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
LD_SO = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
LOCALE = "/usr/lib/locale/locale-archive"

# VmFlags as this machine shows them per kind of mapping
_VMF_RO = "rd mr mw me"
_VMF_RO_AC = "rd mr mw me ac"
_VMF_TEXT = "rd ex mr mw me"
_VMF_RW = "rd wr mr mw me ac"
_VMF_STACK = "rd wr mr mw me gd ac"
_VMF_VVAR = "rd mr pf io de dd"
_VMF_VDSO = "rd ex mr mw me de"
_VMF_VSYSCALL = "ex"


# -- the synthesized memory map ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Region:
    """One vm_area_struct as maps/smaps show it. Sizes in kB."""

    start: int
    end: int
    perms: str  # "r-xp"
    offset: int
    dev: str  # "fe:01" or "00:00"
    inode: int
    name: str  # path, "[heap]", "[stack]", ... or "" (anonymous)
    vmflags: str
    anon_kb: int = 0  # resident anonymous pages
    file_kb: int = 0  # resident file pages (clean, shared)
    in_mm: bool = True  # False for [vsyscall] (the gate area is no vma of the mm)

    @property
    def size_kb(self) -> int:
        return (self.end - self.start) >> 10

    @property
    def rss_kb(self) -> int:
        return self.anon_kb + self.file_kb

    @property
    def pss_kb(self) -> int:
        return self.anon_kb + self.file_kb // 2

    @property
    def is_file(self) -> bool:
        return self.inode != 0


class _Plan(NamedTuple):
    """A region to be placed: kind picks where its resident pages come from."""

    key: str
    size_kb: int
    perms: str
    name: str
    vmflags: str
    kind: str  # "anon" | "file" | "special"
    offset_kb: int = 0


def _take(budget: list[int], want: int) -> int:
    got = min(budget[0], want) & ~3
    budget[0] -= got
    return got


def _escape_path(path: str, esc: str = "\n") -> str:
    """seq_path(.., esc): each character of ``esc`` in a path as an octal escape (maps: a
    newline shows as \\012)."""
    return "".join(f"\\{ord(c):03o}" if c in esc else c for c in path)


def _inode(path: str) -> int:
    return 100_000 + zlib.crc32(path.encode()) % 3_000_000


def _plans(task: Task) -> list[_Plan]:
    """The mappings and their sizes (kB): exactly VmExe, VmLib, VmData, VmStk and the rest."""
    size, _rss, _anon, _file, data, stack, exe, lib, _pte = F._mem_kb(task)
    other = [size - data - stack - exe - lib]
    libs = [lib]
    dat = [data]
    exe_path = _escape_path(task.group.exe or f"/usr/bin/{task.comm}")
    vdso = _take(libs, 8)
    ld_x = _take(libs, 156)
    libc_x = libs[0]
    exe_rw, ld_rw, libc_rw, libc_bss = (_take(dat, 4), _take(dat, 8), _take(dat, 8),
                                        _take(dat, 52))
    heap = (dat[0] // 4) & ~3
    arena = dat[0] - heap
    vvar, vclock = _take(other, 16), _take(other, 8)
    exe_hdr, exe_ro, exe_relro = _take(other, 4), _take(other, 8), _take(other, 4)
    ld_hdr, ld_ro, ld_relro = _take(other, 4), _take(other, 36), _take(other, 8)
    libc_hdr, libc_ro, libc_relro = _take(other, 152), _take(other, 332), _take(other, 16)
    locale = other[0]
    exe_plans = [
        _Plan("exe_hdr", exe_hdr, "r--p", exe_path, _VMF_RO, "file", 0),
        _Plan("exe_text", exe, "r-xp", exe_path, _VMF_TEXT, "file", exe_hdr),
        _Plan("exe_ro", exe_ro, "r--p", exe_path, _VMF_RO, "file", exe_hdr + exe),
        _Plan("exe_relro", exe_relro, "r--p", exe_path, _VMF_RO_AC, "file", exe_hdr + exe + exe_ro),
        _Plan("exe_rw", exe_rw, "rw-p", exe_path, _VMF_RW, "anon",
              exe_hdr + exe + exe_ro + exe_relro),
        _Plan("heap", heap, "rw-p", "[heap]", _VMF_RW, "anon"),
    ]
    mmap_plans = [
        _Plan("arena", arena, "rw-p", "", _VMF_RW, "anon"),
        _Plan("locale", locale, "r--p", LOCALE, _VMF_RO, "file"),
        _Plan("libc_hdr", libc_hdr, "r--p", LIBC, _VMF_RO, "file", 0),
        _Plan("libc_text", libc_x, "r-xp", LIBC, _VMF_TEXT, "file", libc_hdr),
        _Plan("libc_ro", libc_ro, "r--p", LIBC, _VMF_RO, "file", libc_hdr + libc_x),
        _Plan("libc_relro", libc_relro, "r--p", LIBC, _VMF_RO_AC, "file",
              libc_hdr + libc_x + libc_ro),
        _Plan("libc_rw", libc_rw, "rw-p", LIBC, _VMF_RW, "anon",
              libc_hdr + libc_x + libc_ro + libc_relro),
        _Plan("libc_bss", libc_bss, "rw-p", "", _VMF_RW, "anon"),
        _Plan("ld_hdr", ld_hdr, "r--p", LD_SO, _VMF_RO, "file", 0),
        _Plan("ld_text", ld_x, "r-xp", LD_SO, _VMF_TEXT, "file", ld_hdr),
        _Plan("ld_ro", ld_ro, "r--p", LD_SO, _VMF_RO, "file", ld_hdr + ld_x),
        _Plan("ld_relro", ld_relro, "r--p", LD_SO, _VMF_RO_AC, "file", ld_hdr + ld_x + ld_ro),
        _Plan("ld_rw", ld_rw, "rw-p", LD_SO, _VMF_RW, "anon", ld_hdr + ld_x + ld_ro + ld_relro),
        _Plan("vvar", vvar, "r--p", "[vvar]", _VMF_VVAR, "special"),
        _Plan("vvar_vclock", vclock, "r--p", "[vvar_vclock]", _VMF_VVAR, "special"),
        _Plan("vdso", vdso, "r-xp", "[vdso]", _VMF_VDSO, "special"),
    ]
    return exe_plans + mmap_plans + [_Plan("stack", stack, "rw-p", "[stack]", _VMF_STACK, "anon")]


#: where resident pages go first (text and stack are touched before the rest)
_ANON_ORDER = ("stack", "heap", "libc_bss", "exe_rw", "libc_rw", "ld_rw", "arena")
_FILE_ORDER = ("exe_text", "libc_text", "ld_text", "exe_hdr", "ld_hdr", "libc_hdr", "exe_ro",
               "exe_relro", "libc_ro", "libc_relro", "ld_ro", "ld_relro", "locale")


def _fill(plans: list[_Plan], order: tuple[str, ...], total: int) -> dict[str, int]:
    sizes = {p.key: p.size_kb for p in plans if p.size_kb}
    out: dict[str, int] = {}
    left = total
    for key in order:
        if key in sizes and left > 0:
            out[key] = min(sizes[key], left)
            left -= out[key]
    if left > 0 and sizes:  # rss beyond what vsize holds: keep the sums true
        candidates = [k for k in order if k in sizes] or list(sizes)
        big = max(candidates, key=lambda k: sizes[k])
        out[big] = out.get(big, 0) + left
    return out


def _stack_top(task: Task) -> int:
    g = task.group
    env_end = ARG_START + sum(len(a) + 1 for a in g.argv) + sum(len(e) + 1 for e in g.environ)
    top = (env_end + 8 + PAGE - 1) & ~(PAGE - 1)
    return max(top, _STACK_TOP_MIN)


def regions(view: View, task: Task) -> tuple[Region, ...]:
    """The synthesized vmas of ``task``'s mm in address order, then [vsyscall]; () without an
    mm (exited tasks, kernel threads)."""
    if not F._has_mm(task):
        return ()
    plans = _plans(task)
    _size, _rss, anon, file, *_ = F._mem_kb(task)
    anon_at = _fill(plans, _ANON_ORDER, anon)
    file_at = _fill(plans, _FILE_ORDER, file)
    out: list[Region] = []

    def place(start: int, group: list[_Plan]) -> int:
        addr = start
        for p in group:
            if not p.size_kb:
                continue
            end = addr + (p.size_kb << 10)
            is_path = p.name.startswith("/")
            out.append(Region(addr, end, p.perms, p.offset_kb << 10 if is_path else 0,
                              _EXE_DEV if is_path else "00:00", _inode(p.name) if is_path else 0,
                              p.name, p.vmflags, anon_at.get(p.key, 0), file_at.get(p.key, 0)))
            addr = end
        return addr

    exe_group = plans[:5]
    heap_group = plans[5:6]
    mmap_group = plans[6:-1]
    stack = plans[-1]
    stack_start = _stack_top(task) - (stack.size_kb << 10)
    place(START_CODE - (exe_group[0].size_kb << 10), exe_group)
    heap_end = place(START_BRK, heap_group)
    # the mmap area grows down from below the stack (mm->mmap_base), never into the heap
    mmap_kb = sum(p.size_kb for p in mmap_group)
    mmap_start = max(heap_end + _GAP, min(_MMAP_BASE, stack_start - _GAP - (mmap_kb << 10)))
    place(mmap_start, mmap_group)
    if stack.size_kb:
        place(stack_start, [stack])
    out.append(Region(_VSYSCALL, _VSYSCALL + PAGE, "--xp", 0, "00:00", 0, "[vsyscall]",
                      _VMF_VSYSCALL, in_mm=False))
    return tuple(out)


def _map_line(r: Region) -> str:
    """show_vma_header_prefix() + the name padded to column 73 (seq_pad)."""
    head = f"{r.start:08x}-{r.end:08x} {r.perms} {r.offset:08x} {r.dev} {r.inode} "
    if not r.name:
        return head + "\n"
    return f"{head:<73s}{r.name}\n"


def show_maps(view: View, task: Task) -> bytes:
    """/<pid>/maps: one line per region; empty without an mm."""
    return "".join([_map_line(r) for r in regions(view, task)]).encode()


def _kb(label: str, value: int) -> str:
    return f"{label + ':':<16s}{value:8d} kB\n"


def _smap_counters(rss: int, pss: int, anon: int, file: int) -> list[tuple[str, int]]:
    """The counters shared by smaps and smaps_rollup, after Rss and Pss (Pss_Dirty onwards)."""
    return [("Pss_Dirty", anon), ("Shared_Clean", file), ("Shared_Dirty", 0),
            ("Private_Clean", 0), ("Private_Dirty", anon), ("Referenced", rss),
            ("Anonymous", anon), ("KSM", 0), ("LazyFree", 0), ("AnonHugePages", 0),
            ("ShmemPmdMapped", 0), ("FilePmdMapped", 0), ("Shared_Hugetlb", 0),
            ("Private_Hugetlb", 0), ("Swap", 0), ("SwapPss", 0), ("Locked", 0)]


def show_smaps(view: View, task: Task) -> bytes:
    """/<pid>/smaps (show_smap): each maps line, then Size .. Locked in kB, THPeligible and
    VmFlags; empty without an mm."""
    out = []
    for r in regions(view, task):
        out.append(_map_line(r))
        out.append(_kb("Size", r.size_kb) + _kb("KernelPageSize", 4) + _kb("MMUPageSize", 4)
                   + _kb("Rss", r.rss_kb) + _kb("Pss", r.pss_kb))
        counters = _smap_counters(r.rss_kb, r.pss_kb, r.anon_kb, r.file_kb)
        out.append("".join([_kb(k, v) for k, v in counters]))
        out.append(f"{'THPeligible:':<16s}{0:8d}\nVmFlags: {r.vmflags} \n")
    return "".join(out).encode()


def show_numa_maps(view: View, task: Task) -> bytes:
    """/<pid>/numa_maps (show_numa_map): a line per vma of the mm (no gate vma): its start, the
    ``default`` policy, what backs it (``file=PATH``, ``heap``, ``stack``, nothing for anonymous
    and special mappings), then its resident pages as smaps has them: anonymous ones private
    and dirty and none on the active list (``anon= dirty= active=0``), file ones ``mapped=``
    and shared with one other process (``mapmax=2``), all on node 0, and the page size. A vma
    without resident pages ends after its name; empty without an mm."""
    out = []
    for r in regions(view, task):
        if not r.in_mm:
            continue
        line = f"{r.start:08x} default"
        if r.is_file:
            line += " file=" + _escape_path(r.name, "\t= ")  # seq_path(.., "\\n\\t= ")
        elif r.name in ("[heap]", "[stack]"):
            line += " " + r.name[1:-1]
        pages = r.rss_kb // PAGE_KB
        if pages:
            anon = r.anon_kb // PAGE_KB
            active = pages - anon  # file pages are active, anonymous ones are not
            if anon:
                line += f" anon={anon} dirty={anon}"
            if pages != anon:
                line += f" mapped={pages}"
            if r.file_kb:
                line += " mapmax=2"
            if active < pages:
                line += f" active={active}"
            line += f" N0={pages} kernelpagesize_kB={PAGE_KB}"
        out.append(line + "\n")
    return "".join(out).encode()


def show_smaps_rollup(view: View, task: Task) -> bytes:
    """/<pid>/smaps_rollup: a ``[rollup]`` header spanning the mm's vmas, then the sums, with
    Pss split into Pss_Anon, Pss_File, Pss_Shmem. ESRCH without an mm (as Linux: the open
    fails)."""
    if not F._has_mm(task):
        raise KernelError(errno.ESRCH, f"task {task.pid.nr} has no mm (exited or a kernel thread)")
    rs = [r for r in regions(view, task) if r.in_mm]
    anon = sum(r.anon_kb for r in rs)
    file = sum(r.file_kb for r in rs)
    rss = anon + file
    pss_file = sum(r.file_kb // 2 for r in rs)
    pss = anon + pss_file
    start = rs[0].start if rs else 0
    end = rs[-1].end if rs else 0
    head = f"{start:08x}-{end:08x} ---p 00000000 00:00 0 "
    counters = _smap_counters(rss, pss, anon, file)
    lines = [f"{head:<73s}[rollup]\n", _kb("Rss", rss), _kb("Pss", pss), _kb("Pss_Dirty", anon),
             _kb("Pss_Anon", anon), _kb("Pss_File", pss_file), _kb("Pss_Shmem", 0)]
    lines += [_kb(k, v) for k, v in counters[1:]]
    return "".join(lines).encode()


def list_map_files(view: View, task: Task) -> list[str]:
    """/<pid>/map_files/: ``start-end`` (``%lx-%lx``) of every file-backed region; empty
    without an mm."""
    return [f"{r.start:x}-{r.end:x}" for r in regions(view, task) if r.is_file]


def readlink_map_file(view: View, task: Task, name: str) -> str:
    """/<pid>/map_files/<start-end>: the mapped file's path; ENOENT for no such region.
    (Linux also requires CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN: root in the model.)"""
    for r in regions(view, task):
        if r.is_file and f"{r.start:x}-{r.end:x}" == name:
            return r.name.replace("\\012", "\n")
    raise KernelError(errno.ENOENT, f"task {task.pid.nr} has no file mapping {name!r}")


def read_pagemap(view: View, task: Task, offset: int, size: int) -> bytes:
    """/<pid>/pagemap (pagemap_read), read at ``offset``: one little-endian u64 per virtual
    page from ``offset // 8``; bit 63 "present" for resident pages (the first rss pages of each
    region), bit 61 "file/shared" for file pages, bit 62 swapped never; PFNs are zero (Linux
    hides them from readers without CAP_SYS_ADMIN; the model has none). EINVAL for an offset
    or size that is not a multiple of 8, as Linux. Empty without an mm."""
    if offset % 8 or size % 8:
        raise KernelError(errno.EINVAL, "pagemap reads are whole 8-byte entries")
    rs = [r for r in regions(view, task) if r.in_mm]
    if not rs or size <= 0:
        return b""
    first = offset // 8
    n = min(size // 8, (1 << 36) - first)
    out = bytearray()
    for vpn in range(first, first + max(0, n)):
        addr = vpn * PAGE
        entry = 0
        for r in rs:
            if r.start <= addr < r.end:
                page = (addr - r.start) >> 12
                if page < r.rss_kb // PAGE_KB:
                    entry = 1 << 63
                    if page >= r.anon_kb // PAGE_KB:
                        entry |= 1 << 61
                break
        out += struct.pack("<Q", entry)
    return bytes(out)


# -- auxv, mem ----------------------------------------------------------------------------------

_AT = {"AT_NULL": 0, "AT_PHDR": 3, "AT_PHENT": 4, "AT_PHNUM": 5, "AT_PAGESZ": 6, "AT_BASE": 7,
       "AT_FLAGS": 8, "AT_ENTRY": 9, "AT_UID": 11, "AT_EUID": 12, "AT_GID": 13, "AT_EGID": 14,
       "AT_PLATFORM": 15, "AT_HWCAP": 16, "AT_CLKTCK": 17, "AT_SECURE": 23, "AT_RANDOM": 25,
       "AT_HWCAP2": 26, "AT_RSEQ_FEATURE_SIZE": 27, "AT_RSEQ_ALIGN": 28, "AT_EXECFN": 31,
       "AT_SYSINFO_EHDR": 33, "AT_MINSIGSTKSZ": 51}


def auxv_pairs(view: View, task: Task) -> list[tuple[int, int]]:
    """The ELF auxiliary vector as (type, value): 22 entries and AT_NULL, as an x86-64 process
    of this machine has (368 bytes). Addresses point into the synthesized map."""
    rs = {r.name: r for r in regions(view, task)}
    vdso = rs.get("[vdso]")
    ld = next((r for r in regions(view, task) if r.name == LD_SO), None)
    top = _stack_top(task)
    g = task.group
    values = [
        ("AT_SYSINFO_EHDR", vdso.start if vdso else 0), ("AT_MINSIGSTKSZ", 3632),
        ("AT_HWCAP", 0x178BFBFF), ("AT_PAGESZ", PAGE), ("AT_CLKTCK", view.hz),
        ("AT_PHDR", START_CODE - PAGE + 64), ("AT_PHENT", 56), ("AT_PHNUM", 13),
        ("AT_BASE", ld.start if ld else 0), ("AT_FLAGS", 0), ("AT_ENTRY", START_CODE + 0x1A0),
        ("AT_UID", g.uid), ("AT_EUID", g.uid), ("AT_GID", g.gid), ("AT_EGID", g.gid),
        ("AT_SECURE", 0), ("AT_RANDOM", top - 0x1000 + 0x1C9), ("AT_HWCAP2", 0x2),
        ("AT_EXECFN", top - 0x1000 + 0xFE0), ("AT_PLATFORM", top - 0x1000 + 0x1D9),
        ("AT_RSEQ_FEATURE_SIZE", 28), ("AT_RSEQ_ALIGN", 32), ("AT_NULL", 0),
    ]
    return [(_AT[k], v) for k, v in values]


def show_auxv(view: View, task: Task) -> bytes:
    """/<pid>/auxv (proc_pid_auxv): the vector as native u64 pairs. ESRCH without an mm."""
    if not F._has_mm(task):
        raise KernelError(errno.ESRCH, f"task {task.pid.nr} has no mm")
    return b"".join([struct.pack("<QQ", t, v) for t, v in auxv_pairs(view, task)])


def read_mem(view: View, task: Task, offset: int, size: int) -> bytes:
    """/<pid>/mem read at ``offset`` (mem_rw): the model holds no memory contents, so every
    mapped page reads as zeros and an unmapped address fails with EIO, as Linux (offset 0 is
    never mapped: this machine gives EIO there)."""
    for r in regions(view, task):
        if r.in_mm and r.start <= offset < r.end:
            return bytes(min(size, r.end - offset))
    raise KernelError(errno.EIO, f"address {offset:#x} is not mapped in task {task.pid.nr}")


# -- scheduler, syscall, wchan --------------------------------------------------------------------

_WCHAN_BY_STATE = {"S": "do_epoll_wait", "D": "io_schedule", "T": "do_signal_stop",
                   "t": "ptrace_stop", "I": "worker_thread"}
#: syscall numbers (x86-64) of the functions the default wchans sleep in
_SYSCALL_OF_WCHAN = {"do_epoll_wait": 232, "hrtimer_nanosleep": 230, "do_nanosleep": 230,
                     "anon_pipe_read": 0, "pipe_read": 0, "do_wait": 61, "do_select": 23,
                     "do_sys_poll": 7, "futex_wait_queue": 202, "do_sigtimedwait": 128,
                     "unix_stream_read_generic": 45, "io_schedule": 0, "do_signal_stop": 34}


def wchan_symbol(task: Task) -> str:
    """The function a sleeping task waits in: ``extra['wchan']``, else one per state; "0" for
    running, exited and stopped-by-group tasks whose state is R, Z or X (get_wchan() is 0)."""
    state = task.display_state
    if state in ("R", "Z", "X"):
        return "0"
    given = F._extra(task, "wchan", "")
    if given and given.isascii() and given.replace("_", "a").isalnum():
        return given
    return _WCHAN_BY_STATE.get(state, "0")


def show_wchan(view: View, task: Task, *, ptrace_ok: bool = True) -> bytes:
    """/<pid>/wchan (proc_pid_wchan): the symbol, no newline; "0" for a reader that may not
    ptrace the task (this machine: uid 65534 reads root's sleeping task as "0")."""
    return (wchan_symbol(task) if ptrace_ok else "0").encode()


def _run_ns(task: Task) -> int:
    return (task.utime + task.stime) * 10_000_000


def _switches(task: Task) -> tuple[int, int]:
    return (F._extra_count(task, "voluntary_ctxt_switches"),
            F._extra_count(task, "nonvoluntary_ctxt_switches"))


def show_sched(view: View, task: Task) -> bytes:
    """/<pid>/sched (kernel/sched/debug.c proc_sched_show_task): ``comm (pid, #threads: n)``,
    a rule, then ``"%-45s:%21Ld"`` integers and ``"%-45s:%14Ld.%06ld"`` milliseconds. Runtime
    from utime+stime, switches from the status counters, priority from nice."""
    run = _run_ns(task)
    start = task.start_time
    vol, invol = _switches(task)
    nthreads = len(task.group.threads) if task.exit_state is not ExitState.DEAD else 0
    weight = _NICE_WEIGHT[task.nice + 20] * 1024

    def ms(name: str, ns: int) -> str:
        return f"{name:<45s}:{ns // 1_000_000:14d}.{ns % 1_000_000:06d}\n"

    def num(name: str, value: int) -> str:
        return f"{name:<45s}:{value:21d}\n"

    out = [f"{task.comm} ({task.pid.nr_in(view.ns)}, #threads: {nthreads})\n", "-" * 67 + "\n",
           ms("se.exec_start", start + run), ms("se.vruntime", run),
           ms("se.sum_exec_runtime", run), num("se.nr_migrations", (vol + invol) // 8),
           num("nr_switches", vol + invol), num("nr_voluntary_switches", vol),
           num("nr_involuntary_switches", invol), num("se.load.weight", weight),
           num("se.avg.load_sum", 0), num("se.avg.runnable_sum", 0), num("se.avg.util_sum", 0),
           num("se.avg.load_avg", 0), num("se.avg.runnable_avg", 0), num("se.avg.util_avg", 0),
           num("se.avg.last_update_time", (start + run) // 1024 * 1024),
           num("se.avg.util_est", 0), num("policy", 0), num("prio", 120 + task.nice),
           num("se.slice", 1_400_000), num("clock-delta", 40)]
    if F._has_mm(task):
        out.append(num("mm->numa_scan_seq", 0))
    out += [num("numa_pages_migrated", 0), num("numa_preferred_nid", -1),
            num("total_numa_faults", 0), "current_node=0, numa_group_id=0\n",
            "numa_faults node=0 task_private=0 task_shared=0 group_private=0 group_shared=0\n"]
    return "".join(out).encode()


#: sched_prio_to_weight[] (kernel/sched/core.c), nice -20..19
_NICE_WEIGHT = (88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916, 9548, 7620,
                6100, 4904, 3906, 3121, 2501, 1991, 1586, 1277, 1024, 820, 655, 526, 423, 335,
                272, 215, 172, 137, 110, 87, 70, 56, 45, 36, 29, 23, 18, 15)


def show_schedstat(view: View, task: Task) -> bytes:
    """/<pid>/schedstat: run time (ns), wait time (ns, 0), timeslices (the switch count)."""
    vol, invol = _switches(task)
    return f"{_run_ns(task)} 0 {vol + invol}\n".encode()


def show_autogroup(view: View, task: Task) -> bytes:
    """/<pid>/autogroup: ``/autogroup-N nice 0``, one autogroup per session (setsid creates
    one, as sched_autogroup_create_attach), numbered by the session's root-namespace pid."""
    sid = task.group.session
    n = sid.numbers[0] if sid is not None and task.exit_state is not ExitState.DEAD else 0
    return f"/autogroup-{n} nice 0\n".encode()


def show_syscall(view: View, task: Task) -> bytes:
    """/<pid>/syscall (proc_pid_syscall): ``running`` for a running task; ``-1 sp pc`` for
    one not in a system call (exited: ``-1 0x0 0x0``); else the number, six arguments, stack
    pointer and program counter of the syscall its wchan implies."""
    state = task.display_state
    if state == "R":
        return b"running\n"
    if state in ("Z", "X"):
        return b"-1 0x0 0x0\n"
    nr = _SYSCALL_OF_WCHAN.get(wchan_symbol(task), 7)
    sp = _stack_top(task) - 0x2A50 if F._has_mm(task) else 0
    pc = _MMAP_BASE + 0x300000 + 0x1B503
    return (f"{nr} 0x3 0x{sp + 0x40:x} 0x1 0xffffffff 0x0 0x0 0x{sp:x} 0x{pc:x}\n").encode()


def show_stack(view: View, task: Task) -> bytes:
    """/<pid>/stack (proc_pid_stack): the kernel stack, ``[<0>] sym+off/len`` lines with the
    addresses hidden; empty for a running or exited task (this machine: a zombie's is empty)."""
    sym = wchan_symbol(task)
    if sym == "0":
        return b""
    return (f"[<0>] {sym}+0x1d6/0x2a0\n"
            "[<0>] do_syscall_64+0x71/0x290\n"
            "[<0>] entry_SYSCALL_64_after_hwframe+0x76/0x7e\n").encode()


def show_timers(view: View, task: Task) -> bytes:
    """/<pid>/timers: the process's POSIX timers; the model has none."""
    return b""


def show_timerslack_ns(view: View, task: Task) -> bytes:
    """/<pid>/timerslack_ns: the default 50 µs slack (readable by root only: the mount refuses
    others with EPERM at read, see ACCESS_CAP_SYS_NICE)."""
    return b"50000\n"


# -- OOM ------------------------------------------------------------------------------------------

OOM_SCORE_ADJ_MIN, OOM_SCORE_ADJ_MAX = -1000, 1000


def oom_score_adj(task: Task) -> int:
    text = F._extra(task, "oom_score_adj", "0")
    try:
        value = int(text)
    except ValueError:
        return 0
    return max(OOM_SCORE_ADJ_MIN, min(OOM_SCORE_ADJ_MAX, value))


def _total_pages(view: View) -> int:
    mem = SYS._meminfo_kb(view)
    return (mem["MemTotal"] + mem["SwapTotal"]) // PAGE_KB


def show_oom_score(view: View, task: Task) -> bytes:
    """/<pid>/oom_score (proc_oom_score): ``(1000 + badness * 1000 / totalpages) * 2 / 3``
    with badness = rss + page tables (+ swap, 0) in pages + adj * totalpages / 1000; 0 for an
    unkillable task (the root namespace's init, kernel threads), an exited one (no mm) or adj
    -1000 (oom_badness returns LONG_MIN). totalpages = MemTotal + SwapTotal of /meminfo."""
    adj = oom_score_adj(task)
    init = task.group.leader.pid.numbers[0] == 1
    if not F._has_mm(task) or init or adj == OOM_SCORE_ADJ_MIN:
        return b"0\n"
    total = _total_pages(view)
    _size, rss, *_rest, pte = F._mem_kb(task)
    badness = (rss + pte) // PAGE_KB + adj * (total // 1000)
    points = max(0, (1000 + badness * 1000 // total) * 2 // 3)
    return f"{points}\n".encode()


def _parse_written_int(data: bytes, lo: int, hi: int, what: str) -> int:
    """kstrtoint() of a write: decimal with surrounding whitespace; EINVAL otherwise."""
    text = data.decode("ascii", errors="replace").strip()
    body = text[1:] if text[:1] in "+-" else text
    if not body.isascii() or not body.isdigit() or len(body) > 11:
        raise KernelError(errno.EINVAL, f"{what}: {text[:40]!r} is not a number")
    value = int(text)
    if not lo <= value <= hi:
        raise KernelError(errno.EINVAL, f"{what}: {value} is outside {lo}..{hi}")
    return value


def _store_oom_score_adj(view: View, task: Task, adj: int, uid: int) -> None:
    """__set_oom_adj(): going below the minimum (0: no one privileged set one) needs
    CAP_SYS_RESOURCE, uid 0 in the model (EACCES; checked on this machine)."""
    if adj < min(0, oom_score_adj(task)) and uid != 0:
        raise KernelError(errno.EACCES, f"uid {uid} may not lower oom_score_adj below "
                          f"{min(0, oom_score_adj(task))} (needs CAP_SYS_RESOURCE)")
    from ..kernel.fields import set_field

    set_field(view.kernel, task, "oom_score_adj", adj)


def write_oom_score_adj(view: View, task: Task, data: bytes, uid: int) -> None:
    """/<pid>/oom_score_adj written: -1000..1000 (EINVAL otherwise), kept as the process's
    ``oom_score_adj`` field."""
    _store_oom_score_adj(view, task, _parse_written_int(
        data, OOM_SCORE_ADJ_MIN, OOM_SCORE_ADJ_MAX, "oom_score_adj"), uid)


def write_oom_adj(view: View, task: Task, data: bytes, uid: int) -> None:
    """/<pid>/oom_adj written (legacy): -17..15, 15 meaning 1000, else adj * 1000 / 17."""
    adj = _parse_written_int(data, -17, 15, "oom_adj")
    _store_oom_score_adj(view, task, OOM_SCORE_ADJ_MAX if adj == 15 else int(adj * 1000 / 17), uid)


def refuse_write(view: View, task: Task, data: bytes, uid: int) -> None:
    """Writer of the per-pid 0644/0666 files the model does not change (sched, autogroup,
    uid_map, gid_map, setgroups, coredump_filter, timerslack_ns, mem): EPERM, a documented
    departure where Linux would apply the write."""
    raise KernelError(errno.EPERM, "this per-process setting is not modelled; the write is refused")


def show_oom_score_adj(view: View, task: Task) -> bytes:
    """/<pid>/oom_score_adj: ``extra['oom_score_adj']`` (-1000..1000), default 0."""
    return f"{oom_score_adj(task)}\n".encode()


def show_oom_adj(view: View, task: Task) -> bytes:
    """/<pid>/oom_adj (legacy): oom_score_adj * 17 / 1000 truncated toward zero, 15 for
    OOM_SCORE_ADJ_MAX (oom_adj_read)."""
    adj = oom_score_adj(task)
    value = 15 if adj == OOM_SCORE_ADJ_MAX else int(adj * 17 / 1000)
    return f"{value}\n".encode()


# -- identity and small constant files ----------------------------------------------------------

_ID_MAP = f"{0:10d} {0:10d} {4294967295:10d}\n".encode()


def show_uid_map(view: View, task: Task) -> bytes:
    """/<pid>/uid_map: the initial user namespace's identity map (``"%10u %10u %10u"``); the
    model has no user namespaces."""
    return _ID_MAP


def show_gid_map(view: View, task: Task) -> bytes:
    """/<pid>/gid_map: as uid_map."""
    return _ID_MAP


def show_projid_map(view: View, task: Task) -> bytes:
    """/<pid>/projid_map: as uid_map (written: EPERM, as Linux once the map is set)."""
    return _ID_MAP


#: proc_timens_show_offsets(): ``"%-10s %10lld %9ld"`` per clock; the model's time namespaces
#: all read the host's clocks, so both offsets are 0
_TIMENS_OFFSETS = b"".join(f"{c:<10s} {0:10d} {0:9d}\n".encode() for c in ("monotonic", "boottime"))
#: the clocks timens_offsets_write() takes, by name or by clockid
_TIMENS_CLOCKS = {"monotonic", "boottime", "1", "7"}


def show_timens_offsets(view: View, task: Task) -> bytes:
    """/<pid>/timens_offsets: the offsets of the time namespace the task's children get; empty
    once the task has exited (no nsproxy), as Linux's."""
    return _TIMENS_OFFSETS if task.exit_state is ExitState.RUNNING else b""


def write_timens_offsets(view: View, task: Task, data: bytes, uid: int) -> None:
    """timens_offsets_write(): up to two lines ``CLOCK SECONDS NANOSECONDS`` (monotonic or
    boottime, by name or id; nanoseconds below 10^9), else EINVAL; then EPERM without
    CAP_SYS_TIME (uid 0 here), and EACCES for root: a namespace's offsets freeze when its
    first process enters it, and every model namespace has one."""
    lines = data.decode("ascii", errors="replace").split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    for line in lines[:2]:
        f = line.split()
        sec = f[1][1:] if len(f) == 3 and f[1][:1] in "+-" else f[1] if len(f) == 3 else ""
        if len(f) != 3 or f[0][:9] not in _TIMENS_CLOCKS or not sec.isdigit() \
                or not f[2].isdigit() or int(f[2]) >= 1_000_000_000:
            raise KernelError(errno.EINVAL, f"timens_offsets: {line[:40]!r} is not 'monotonic|"
                              "boottime SECONDS NANOSECONDS' (nanoseconds below 1000000000)")
    if uid != 0:
        raise KernelError(errno.EPERM, "timens_offsets: setting a time namespace's offsets needs "
                          "CAP_SYS_TIME")
    raise KernelError(errno.EACCES, f"timens_offsets: the offsets of process {task.pid.nr}'s "
                      "time namespace for children are frozen: a process already lives in it")


def write_clear_refs(view: View, task: Task, data: bytes, uid: int) -> None:
    """/<pid>/clear_refs written (clear_refs_write): 1..5 (kstrtoint) is taken and changes
    nothing the model shows (the referenced and soft-dirty bits, and 5's peak RSS, which the
    model keeps equal to the RSS); anything else is EINVAL. Taken from a zombie too."""
    _parse_written_int(data, 1, 5, "clear_refs")


def refuse_read(view: View, task: Task) -> bytes:
    """A read of clear_refs (write-only: no read method, EINVAL at read; the mode lets only
    root open it for reading)."""
    raise KernelError(errno.EINVAL, "clear_refs is write-only")


def show_lsm_attr(view: View, task: Task) -> bytes:
    """/<pid>/attr/* read (proc_pid_attr_read): no security module is modelled, and Linux
    without one answers EINVAL."""
    raise KernelError(errno.EINVAL, "no security module is modelled: attr/ files read EINVAL")


def write_lsm_attr(view: View, task: Task, data: bytes, uid: int) -> None:
    """/<pid>/attr/* written (proc_pid_attr_write): only a task may write its own (EPERM for
    any other), and a reader of the mount is never one of the model's tasks."""
    raise KernelError(errno.EPERM, f"only process {task.pid.nr} itself may write its "
                      "security attributes")


def show_setgroups(view: View, task: Task) -> bytes:
    """/<pid>/setgroups: ``allow`` (the initial user namespace)."""
    return b"allow\n"


def show_personality(view: View, task: Task) -> bytes:
    """/<pid>/personality: PER_LINUX, ``"%08x"``."""
    return b"00000000\n"


def show_coredump_filter(view: View, task: Task) -> bytes:
    """/<pid>/coredump_filter: the default mask 0x33; empty without an mm (as Linux)."""
    return b"00000033\n" if F._has_mm(task) else b""


def show_cpuset(view: View, task: Task) -> bytes:
    """/<pid>/cpuset: the root cpuset (cgroup2, every process in /)."""
    return b"/\n"


def show_arch_status(view: View, task: Task) -> bytes:
    """/<pid>/arch_status (x86): AVX-512 never used."""
    return b"AVX512_elapsed_ms:\t0\n"


def show_ksm_stat(view: View, task: Task) -> bytes:
    """/<pid>/ksm_stat (mm/ksm.c): no merging in the model."""
    return (b"ksm_rmap_items 0\nksm_zero_pages 0\nksm_merging_pages 0\nksm_process_profit 0\n"
            b"ksm_merge_any: no\nksm_mergeable: no\n")


def show_ksm_merging_pages(view: View, task: Task) -> bytes:
    """/<pid>/ksm_merging_pages: 0."""
    return b"0\n"


def show_environ(view: View, task: Task) -> bytes:
    """/<pid>/environ as Linux 6.18 for every task: ESRCH once the mm is gone (a zombie's
    environ fails at open on this machine; files.show_environ gives b"" instead)."""
    if not F._has_mm(task):
        raise KernelError(errno.ESRCH, f"task {task.pid.nr} has no mm")
    return F.show_environ(view, task)


# -- the mount table ------------------------------------------------------------------------------

def _needs_nsproxy(task: Task) -> None:
    """mounts_open_common(): EINVAL once exit_task_namespaces() dropped the nsproxy."""
    if task.exit_state is not ExitState.RUNNING:
        raise KernelError(errno.EINVAL, f"task {task.pid.nr} has exited: no mount namespace")


def show_mounts(view: View, task: Task) -> bytes:
    """/<pid>/mounts: ``system.mount_table`` as /proc/mounts; EINVAL for an exited task."""
    _needs_nsproxy(task)
    return SYS.show_mounts_table(view)


def show_mountinfo(view: View, task: Task) -> bytes:
    """/<pid>/mountinfo; EINVAL for an exited task."""
    _needs_nsproxy(task)
    return SYS.show_mountinfo_table(view)


def show_mountstats(view: View, task: Task) -> bytes:
    """/<pid>/mountstats (0400); EINVAL for an exited task."""
    _needs_nsproxy(task)
    return SYS.show_mountstats_table(view)


# -- the table ------------------------------------------------------------------------------------

#: anyone may read (the mode's other bits allow it)
ACCESS_ANY = "any"
#: open fails with EACCES unless the caller may ptrace the task (mm_access / lock_trace:
#: root or the task's uid in the model)
ACCESS_PTRACE = "ptrace"
#: like ACCESS_ANY, but the content is "0" for a caller that may not ptrace (wchan)
ACCESS_PTRACE_OR_ZERO = "ptrace-or-zero"
#: open is allowed by the mode (0666); read fails with EPERM unless uid 0 (CAP_SYS_NICE)
ACCESS_CAP_SYS_NICE = "root-at-read-eperm"
#: 0400: the owner opens it, read fails with EACCES unless uid 0 (CAP_SYS_ADMIN); others EACCES
#: at open
ACCESS_CAP_SYS_ADMIN = "root-at-read-eacces"


class PerPidFile(NamedTuple):
    """One per-pid row: permission bits, renderer, who may read (ACCESS_*), and for the files
    read by offset (pagemap, mem) a reader ``(view, task, offset, size) -> bytes`` that the
    mount must call per read instead of caching ``show``'s bytes."""

    mode: int
    show: Show
    access: str = ACCESS_ANY
    read_at: Callable[[View, Task, int, int], bytes] | None = None


def _empty(view: View, task: Task) -> bytes:
    return b""


#: file name -> PerPidFile; modes and access measured on this machine (kernel_facts.json,
#: "perpid_access"); the rows go into /<pid>/ and /<pid>/task/<tid>/ alike
PERPID_FILES: dict[str, PerPidFile] = {
    "maps": PerPidFile(0o444, show_maps, ACCESS_PTRACE),
    "numa_maps": PerPidFile(0o444, show_numa_maps, ACCESS_PTRACE),
    "timens_offsets": PerPidFile(0o644, show_timens_offsets),
    "projid_map": PerPidFile(0o644, show_projid_map),
    "smaps": PerPidFile(0o444, show_smaps, ACCESS_PTRACE),
    "smaps_rollup": PerPidFile(0o444, show_smaps_rollup, ACCESS_PTRACE),
    "wchan": PerPidFile(0o444, show_wchan, ACCESS_PTRACE_OR_ZERO),
    "oom_score": PerPidFile(0o444, show_oom_score),
    "oom_score_adj": PerPidFile(0o644, show_oom_score_adj),
    "oom_adj": PerPidFile(0o644, show_oom_adj),
    "sched": PerPidFile(0o644, show_sched),
    "schedstat": PerPidFile(0o444, show_schedstat),
    "autogroup": PerPidFile(0o644, show_autogroup),
    "syscall": PerPidFile(0o400, show_syscall, ACCESS_PTRACE),
    "timers": PerPidFile(0o444, show_timers, ACCESS_PTRACE),
    "uid_map": PerPidFile(0o644, show_uid_map),
    "gid_map": PerPidFile(0o644, show_gid_map),
    "setgroups": PerPidFile(0o644, show_setgroups),
    "personality": PerPidFile(0o400, show_personality, ACCESS_PTRACE),
    "coredump_filter": PerPidFile(0o644, show_coredump_filter),
    "timerslack_ns": PerPidFile(0o666, show_timerslack_ns, ACCESS_CAP_SYS_NICE),
    "cpuset": PerPidFile(0o444, show_cpuset),
    "arch_status": PerPidFile(0o444, show_arch_status),
    "ksm_stat": PerPidFile(0o400, show_ksm_stat, ACCESS_PTRACE),
    "ksm_merging_pages": PerPidFile(0o400, show_ksm_merging_pages, ACCESS_PTRACE),
    "stack": PerPidFile(0o400, show_stack, ACCESS_CAP_SYS_ADMIN),
    "auxv": PerPidFile(0o400, show_auxv, ACCESS_PTRACE),
    "mem": PerPidFile(0o600, _empty, ACCESS_PTRACE, read_mem),
    "pagemap": PerPidFile(0o400, _empty, ACCESS_PTRACE, read_pagemap),
    "mounts": PerPidFile(0o444, show_mounts),
    "mountinfo": PerPidFile(0o444, show_mountinfo),
    "mountstats": PerPidFile(0o400, show_mountstats, ACCESS_PTRACE),
}

#: ``map_files/``: mode 0500, listing needs ptrace access (EACCES), entries are links (mode
#: 0400 for read-only mappings) whose readlink needs uid 0
MAP_FILES_MODE = 0o500


def reader_errno(entry: PerPidFile, caller_uid: int, task: Task, *, at_open: bool) -> int:
    """The errno Linux gives ``caller_uid`` opening (``at_open``) or reading a file of
    ``task`` with this row, or 0. Mode bits are the mount's generic check and come first
    (task owner: ``dump_owner``)."""
    may = caller_uid == 0 or caller_uid == task.group.uid
    if at_open and entry.access == ACCESS_PTRACE and not may:
        return errno.EACCES
    if not at_open and entry.access == ACCESS_CAP_SYS_NICE and caller_uid != 0:
        return errno.EPERM
    if not at_open and entry.access == ACCESS_CAP_SYS_ADMIN and caller_uid != 0:
        return errno.EACCES
    return 0


def dump_owner(task: Task, mode: int, is_dir: bool) -> tuple[int, int]:
    """task_dump_owner(): the uid and gid owning a per-pid inode. Once the task has no mm (a
    zombie, a kernel thread) everything but the 0555 directories belongs to root, so the
    process's own user can no longer read its 0400 files (kernel_facts.json: a 65534-owned
    zombie's environ, fd/ and ns/ give EACCES to 65534)."""
    g = task.group
    if is_dir and mode == 0o555:
        return g.uid, g.gid
    if not F._has_mm(task):
        return 0, 0
    return g.uid, g.gid

