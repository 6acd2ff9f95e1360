"""The rest of the global files tools read: vmstat, disks, swaps, pressure, net headers, more
sysctls, tty drivers, slabinfo, the boot command line, cgroups, locks; and the mount table.

Issue 10 point 4. What reads them: procps ``vmstat`` (/vmstat, /stat, /meminfo, /diskstats,
/partitions), ``free`` and ``swapon`` (/meminfo, /swaps), ``sysctl -a`` (every file under /sys),
htop (/pressure, /sys/kernel/sched_autogroup_enabled, /swaps, /diskstats), psutil
(/diskstats, /partitions, /swaps, /net/*, /mounts, /pressure through PSI), ``lsof``, ``df``
and ``mount`` (/mounts, the per-pid mountinfo), ``slabtop`` (/slabinfo, root only).

Formats are this machine's Linux 6.18 (copies in ../tests/reference/linux-6.18/global/, made
by capture.sh): the kernel's printf formats (mm/vmstat.c, block/genhd.c, mm/swapfile.c,
kernel/sched/psi.c, net/core/net-procfs.c, net/ipv4/tcp_ipv4.c, drivers/tty/tty_io.c,
mm/slab_common.c, kernel/cgroup/cgroup-v1.c, fs/proc_namespace.c) are followed field by field.

From the model (deterministic: the same model and clock give the same bytes):

- vmstat: the memory counters are /meminfo's (``globals.show_meminfo``) in pages, so ``free``
  and ``vmstat`` agree; event counters grow with the model's clock (ticks) and its forks
  (``Kernel.total_forks``): every fork costs page faults, allocations and frees;
- diskstats: I/O counts grow with the clock (a quiet disk, monotonic for ``vmstat -d``);
- pressure: ``total=`` stall microseconds grow with the clock; averages are 0.00;
- slabinfo: ``task_struct``, ``pid``, ``signal_cache``, ``sighand_cache``, ``mm_struct`` and the
  other per-task caches count the model's live tasks (``Kernel.nr_threads``) and processes;
- sys/kernel/random/boot_id: a UUID derived from ``View.boot_epoch`` (stable for one mount);
  random/uuid from the boot time and the clock (Linux gives a fresh one per read);
- mounts/mountinfo/mountstats: a fixed table of a small Debian machine whose ``proc`` line
  carries this mount's options (``MountOptions.to_text()``).

Fixed and plausible, documented per renderer: filesystems, partitions (one 256 GiB virtio disk
``vda``: root filesystem on vda1, swap on vda2), swaps (vda2, the size /meminfo's SwapTotal
says), net files (headers and a loopback interface; no sockets are modelled), tty drivers, kernel command line, cgroups
(a cgroup2-only system: every controller on hierarchy 0), locks (none: no file locks).

Interface: ``GLOBAL_FILES`` maps a path relative to the mount root (``"pressure/cpu"``,
``"sys/kernel/random/boot_id"``) to ``SystemFile(mode, show, write)``; ``GLOBAL_LINKS`` maps the
root's symlinks to their targets (``mounts -> self/mounts``, ``net -> self/net``, as Linux);
``NET_FILES`` is the table of the per-pid ``net/`` directory the ``net`` link leads to.
Renderers have the global signature ``(view, task) -> bytes`` (``task`` unused, may be None);
writers ``(view, task, data, uid) -> None``. The per-pid mount table files (mounts, mountinfo,
mountstats) live in ``perpid`` and use ``mount_table`` from here.
"""

from __future__ import annotations

import errno
import uuid
from collections.abc import Callable
from typing import NamedTuple

from ..kernel import KernelError, Task
from . import globals as G
from .view import View

Show = Callable[[View, "Task | None"], bytes]
Write = Callable[[View, "Task | None", bytes, int], None]

PAGE_KB = 4


class SystemFile(NamedTuple):
    """One global file: permission bits, renderer and (for 0644/0666 files) writer."""

    mode: int
    show: Show
    write: Write | None = None


def refuse_write(view: View, task: Task | None, data: bytes, uid: int) -> None:
    """Writer of the root-writable sysctls and PSI triggers the model does not change: EPERM
    for a non-root writer (as the kernel's sysctl permission check), EOPNOTSUPP for root (a
    documented departure: Linux would apply the value)."""
    if uid != 0:
        raise KernelError(errno.EPERM, f"uid {uid} may not write this file (only uid 0)")
    raise KernelError(errno.EOPNOTSUPP, "this setting is not modelled; the write is refused")


# -- clock-derived counters ----------------------------------------------------------------------

def _ticks(view: View) -> int:
    return view.ticks(view.kernel.clock())


def _meminfo_kb(view: View) -> dict[str, int]:
    """/meminfo's values in kB (the single source of the machine's memory picture)."""
    out = {}
    for line in G.show_meminfo(view).decode().splitlines():
        key, _, rest = line.partition(":")
        out[key] = int(rest.split()[0])
    return out


# -- /filesystems --------------------------------------------------------------------------------

_FILESYSTEMS = (
    ("nodev", "sysfs"), ("nodev", "tmpfs"), ("nodev", "bdev"), ("nodev", "proc"),
    ("nodev", "cgroup"), ("nodev", "cgroup2"), ("nodev", "cpuset"), ("nodev", "devtmpfs"),
    ("nodev", "binfmt_misc"), ("nodev", "debugfs"), ("nodev", "tracefs"), ("nodev", "securityfs"),
    ("nodev", "sockfs"), ("nodev", "bpf"), ("nodev", "pipefs"), ("nodev", "ramfs"),
    ("nodev", "hugetlbfs"), ("nodev", "devpts"), ("", "ext3"), ("", "ext2"), ("", "ext4"),
    ("", "squashfs"), ("", "vfat"), ("", "fuseblk"), ("nodev", "fuse"), ("nodev", "fusectl"),
    ("nodev", "overlay"), ("", "xfs"), ("nodev", "mqueue"), ("", "btrfs"), ("nodev", "pstore"),
)


def show_filesystems(view: View, task: Task | None = None) -> bytes:
    """/filesystems (fs/filesystems.c): ``"%s\\t%s\\n"``, "nodev" or empty, then the name.
    Fixed: a Debian kernel's usual set."""
    return "".join([f"{flag}\t{name}\n" for flag, name in _FILESYSTEMS]).encode()


# -- /vmstat -------------------------------------------------------------------------------------

#: mm/vmstat.c vmstat_text[] as Linux 6.18 prints it on x86-64 (zone, numa, node, vm events)
VMSTAT_KEYS = (
    "nr_free_pages nr_free_pages_blocks nr_zone_inactive_anon nr_zone_active_anon "
    "nr_zone_inactive_file nr_zone_active_file nr_zone_unevictable nr_zone_write_pending "
    "nr_mlock nr_zspages nr_free_cma numa_hit numa_miss numa_foreign numa_interleave numa_local "
    "numa_other nr_inactive_anon nr_active_anon nr_inactive_file nr_active_file nr_unevictable "
    "nr_slab_reclaimable nr_slab_unreclaimable nr_isolated_anon nr_isolated_file "
    "workingset_nodes workingset_refault_anon workingset_refault_file workingset_activate_anon "
    "workingset_activate_file workingset_restore_anon workingset_restore_file "
    "workingset_nodereclaim nr_anon_pages nr_mapped nr_file_pages nr_dirty nr_writeback "
    "nr_shmem nr_shmem_hugepages nr_shmem_pmdmapped nr_file_hugepages nr_file_pmdmapped "
    "nr_anon_transparent_hugepages nr_vmscan_write nr_vmscan_immediate_reclaim nr_dirtied "
    "nr_written nr_throttled_written nr_kernel_misc_reclaimable nr_foll_pin_acquired "
    "nr_foll_pin_released nr_kernel_stack nr_page_table_pages nr_sec_page_table_pages "
    "nr_iommu_pages nr_swapcached pgpromote_success pgpromote_candidate pgpromote_candidate_nrl "
    "pgdemote_kswapd pgdemote_direct pgdemote_khugepaged pgdemote_proactive nr_hugetlb "
    "nr_balloon_pages nr_kernel_file_pages nr_dirty_threshold nr_dirty_background_threshold "
    "nr_memmap_pages nr_memmap_boot_pages pgpgin pgpgout pswpin pswpout pgalloc_dma "
    "pgalloc_dma32 pgalloc_normal pgalloc_movable pgalloc_device allocstall_dma "
    "allocstall_dma32 allocstall_normal allocstall_movable allocstall_device pgskip_dma "
    "pgskip_dma32 pgskip_normal pgskip_movable pgskip_device pgfree pgactivate pgdeactivate "
    "pglazyfree pgfault pgmajfault pglazyfreed pgrefill pgreuse pgsteal_kswapd pgsteal_direct "
    "pgsteal_khugepaged pgsteal_proactive pgscan_kswapd pgscan_direct pgscan_khugepaged "
    "pgscan_proactive pgscan_direct_throttle pgscan_anon pgscan_file pgsteal_anon pgsteal_file "
    "zone_reclaim_success zone_reclaim_failed pginodesteal slabs_scanned kswapd_inodesteal "
    "kswapd_low_wmark_hit_quickly kswapd_high_wmark_hit_quickly pageoutrun pgrotated "
    "drop_pagecache drop_slab oom_kill numa_pte_updates numa_huge_pte_updates numa_hint_faults "
    "numa_hint_faults_local numa_pages_migrated pgmigrate_success pgmigrate_fail "
    "thp_migration_success thp_migration_fail thp_migration_split compact_migrate_scanned "
    "compact_free_scanned compact_isolated compact_stall compact_fail compact_success "
    "compact_daemon_wake compact_daemon_migrate_scanned compact_daemon_free_scanned "
    "htlb_buddy_alloc_success htlb_buddy_alloc_fail unevictable_pgs_culled "
    "unevictable_pgs_scanned unevictable_pgs_rescued unevictable_pgs_mlocked "
    "unevictable_pgs_munlocked unevictable_pgs_cleared unevictable_pgs_stranded thp_fault_alloc "
    "thp_fault_fallback thp_fault_fallback_charge thp_collapse_alloc thp_collapse_alloc_failed "
    "thp_file_alloc thp_file_fallback thp_file_fallback_charge thp_file_mapped thp_split_page "
    "thp_split_page_failed thp_deferred_split_page thp_underused_split_page thp_split_pmd "
    "thp_scan_exceed_none_pte thp_scan_exceed_swap_pte thp_scan_exceed_share_pte thp_split_pud "
    "thp_zero_page_alloc thp_zero_page_alloc_failed thp_swpout thp_swpout_fallback "
    "balloon_inflate balloon_deflate balloon_migrate swap_ra swap_ra_hit swpin_zero swpout_zero "
    "ksm_swpin_copy cow_ksm zswpin zswpout zswpwb direct_map_level2_splits "
    "direct_map_level3_splits direct_map_level2_collapses direct_map_level3_collapses "
    "nr_unstable"
).split()


def vmstat_counters(view: View) -> dict[str, int]:
    """The /vmstat counters: memory gauges from /meminfo (pages; nr_kernel_stack in kB, as the
    kernel shows it), events from the clock's ticks and the model's forks. Unlisted keys are 0."""
    mem = _meminfo_kb(view)
    ticks = _ticks(view)
    forks = view.kernel.total_forks
    pages = {k: v // PAGE_KB for k, v in mem.items()}
    c = dict.fromkeys(VMSTAT_KEYS, 0)
    c.update({
        "nr_free_pages": pages["MemFree"],
        "nr_free_pages_blocks": pages["MemFree"] * 7 // 8,
        "nr_inactive_anon": pages["Inactive(anon)"],
        "nr_active_anon": pages["Active(anon)"],
        "nr_inactive_file": pages["Inactive(file)"],
        "nr_active_file": pages["Active(file)"],
        "nr_unevictable": pages["Unevictable"],
        "nr_mlock": pages["Mlocked"],
        "nr_slab_reclaimable": pages["SReclaimable"],
        "nr_slab_unreclaimable": pages["SUnreclaim"],
        "nr_anon_pages": pages["AnonPages"],
        "nr_mapped": pages["Mapped"],
        "nr_file_pages": pages["Cached"] + pages["Buffers"] + pages["SwapCached"],
        "nr_dirty": pages["Dirty"],
        "nr_writeback": pages["Writeback"],
        "nr_shmem": pages["Shmem"],
        "nr_kernel_stack": mem["KernelStack"],
        "nr_page_table_pages": pages["PageTables"],
        "nr_swapcached": pages["SwapCached"],
        "nr_dirty_threshold": pages["MemAvailable"] * 20 // 100,
        "nr_dirty_background_threshold": pages["MemAvailable"] * 10 // 100,
        "nr_memmap_pages": pages["MemTotal"] // 64,
        "nr_memmap_boot_pages": pages["MemTotal"] // 512,
        "pgpgin": 1_200_000 + ticks * 2,
        "pgpgout": 400_000 + ticks * 8,
        "pgalloc_dma32": 90_000 + ticks * 40,
        "pgalloc_normal": 2_500_000 + ticks * 400 + forks * 300,
        "pgfault": 3_000_000 + ticks * 500 + forks * 250,
        "pgmajfault": 1_800 + ticks // 100,
        "pgreuse": 200_000 + ticks * 20 + forks * 40,
        "pgactivate": 80_000 + ticks * 5,
        "nr_dirtied": 90_000 + ticks * 6,
        "nr_written": 85_000 + ticks * 6,
        "numa_hit": 2_600_000 + ticks * 440 + forks * 300,
        "numa_local": 2_600_000 + ticks * 440 + forks * 300,
        "thp_fault_alloc": 40,
        "thp_file_mapped": 0,
    })
    zone = {"nr_zone_inactive_anon": "nr_inactive_anon", "nr_zone_active_anon": "nr_active_anon",
            "nr_zone_inactive_file": "nr_inactive_file", "nr_zone_active_file": "nr_active_file",
            "nr_zone_unevictable": "nr_unevictable"}
    for zkey, key in zone.items():
        c[zkey] = c[key]
    c["nr_zone_write_pending"] = c["nr_dirty"] + c["nr_writeback"]
    # every allocated page is freed again but the ones in use
    allocated = c["pgalloc_dma32"] + c["pgalloc_normal"]
    c["pgfree"] = allocated + pages["MemFree"]
    return c


def show_vmstat(view: View, task: Task | None = None) -> bytes:
    """/vmstat (mm/vmstat.c vmstat_show): ``"%s %lu\\n"`` per counter, Linux 6.18's keys."""
    return "".join([f"{k} {v}\n" for k, v in vmstat_counters(view).items()]).encode()


# -- /diskstats, /partitions ------------------------------------------------------------------------

#: (major, minor, name, size in 1 KiB blocks, share of the disk's I/O in percent): one virtio
#: disk, its root filesystem (vda1, the source of / in the mount table) and its swap partition
#: (vda2: /swaps, 2 GiB of which /meminfo's SwapTotal is all but the header page)
DISKS = ((254, 0, "vda", 268_435_456, 100), (254, 1, "vda1", 266_337_280, 99),
         (254, 2, "vda2", 2_097_152, 0))


def show_diskstats(view: View, task: Task | None = None) -> bytes:
    """/diskstats (block/genhd.c diskstats_show): ``"%4d %7d %s"`` then 17 counters (reads,
    merged, sectors, ms; writes, ...; in flight, io ms, weighted ms; discards x4; flushes x2),
    for the disk and each partition. A quiet disk whose counters grow with the clock; the
    root partition does almost all of it, the unused swap partition only its probe reads."""
    t = _ticks(view)
    out = []
    for major, minor, name, _blocks, share in DISKS:
        rd = (28_000 + t // 10) * share // 100 + (60 if share == 0 else 0)
        wr = (6_000 + t // 4) * share // 100
        stats = (rd, rd // 5, rd * 64, rd // 5, wr, wr * 6, wr * 250, wr, 0, (rd + wr) // 7,
                 (rd + wr) // 5 + t // 40 * share // 100, (4_800 + t // 50) * share // 100,
                 30 * share // 100, (187_000 + t * 20) * share // 100, 470 * share // 100,
                 660 * share // 100, 30 * share // 100)
        out.append(f"{major:4d} {minor:7d} {name} " + " ".join(map(str, stats)) + "\n")
    return "".join(out).encode()


def show_partitions(view: View, task: Task | None = None) -> bytes:
    """/partitions (block/genhd.c show_partition): a header, a blank line, then
    ``"%4d  %7d %10llu %pg"`` per disk and partition."""
    rows = "".join([f"{major:4d}  {minor:7d} {blocks:10d} {name}\n"
                    for major, minor, name, blocks, _share in DISKS])
    return ("major minor  #blocks  name\n\n" + rows).encode()


# -- /swaps ---------------------------------------------------------------------------------------

def show_swaps(view: View, task: Task | None = None) -> bytes:
    """/swaps (mm/swapfile.c swap_show): the header, then per swap area the path padded to 40
    columns, type, size and used in kB, priority. One partition of /meminfo's SwapTotal, unused
    (SwapFree == SwapTotal), so ``free`` and ``swapon`` agree."""
    mem = _meminfo_kb(view)
    size, used = mem["SwapTotal"], mem["SwapTotal"] - mem["SwapFree"]
    out = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
    if size:
        path = "/dev/vda2"
        pad = 40 - len(path) if len(path) < 40 else 1
        out += (f"{path}{' ' * pad}partition\t{size}\t{chr(9) if size < 10_000_000 else ''}"
                f"{used}\t{chr(9) if used < 10_000_000 else ''}-2\n")
    return out.encode()


# -- /pressure ----------------------------------------------------------------------------------

def _psi(some_total: int, full_total: int) -> bytes:
    return (f"some avg10=0.00 avg60=0.00 avg300=0.00 total={some_total}\n"
            f"full avg10=0.00 avg60=0.00 avg300=0.00 total={full_total}\n").encode()


def show_pressure_cpu(view: View, task: Task | None = None) -> bytes:
    """/pressure/cpu (kernel/sched/psi.c psi_show): ``some`` and (system-wide always zero)
    ``full`` lines; stall totals in microseconds: 1% of the time since boot."""
    us = view.kernel.clock() // 1000
    return _psi(us // 100, 0)


def show_pressure_memory(view: View, task: Task | None = None) -> bytes:
    """/pressure/memory: no memory pressure in the model (totals 0)."""
    return _psi(0, 0)


def show_pressure_io(view: View, task: Task | None = None) -> bytes:
    """/pressure/io: 0.2% (some) and 0.1% (full) of the time since boot."""
    us = view.kernel.clock() // 1000
    return _psi(us // 500, us // 1000)


# -- /net ---------------------------------------------------------------------------------------

_TCP_HEADER = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
               "timeout inode")
_V6_COLUMNS = ("  sl  local_address                         remote_address                        "
               "st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode")
_UDP_HEADER = ("   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
               "timeout inode ref pointer drops")


def show_net_dev(view: View, task: Task | None = None) -> bytes:
    """/net/dev (net/core/net-procfs.c dev_seq_show): two header lines, then the loopback
    interface (``"%6s:%8lu %7lu %4lu ..."``) with no traffic; no other interface is modelled."""
    head = ("Inter-|   Receive                                                |  Transmit\n"
            " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets "
            "errs drop fifo colls carrier compressed\n")
    lo = (f"{'lo':>6s}:{0:8d} {0:7d} {0:4d} {0:4d} {0:4d} {0:5d} {0:10d} {0:9d} "
          f"{0:8d} {0:7d} {0:4d} {0:4d} {0:4d} {0:5d} {0:7d} {0:10d}\n")
    return (head + lo).encode()


def show_net_tcp(view: View, task: Task | None = None) -> bytes:
    """/net/tcp (net/ipv4/tcp_ipv4.c tcp4_seq_show): the header padded to 149 columns; no
    sockets are modelled."""
    return f"{_TCP_HEADER:<149s}\n".encode()


def show_net_tcp6(view: View, task: Task | None = None) -> bytes:
    """/net/tcp6 (net/ipv6/tcp_ipv6.c): the header; no sockets."""
    return f"{_V6_COLUMNS}\n".encode()


def show_net_udp(view: View, task: Task | None = None) -> bytes:
    """/net/udp (net/ipv4/udp.c udp4_seq_show): the header padded to 127 columns; no sockets."""
    return f"{_UDP_HEADER:<127s}\n".encode()


def show_net_udp6(view: View, task: Task | None = None) -> bytes:
    """/net/udp6 and /net/raw6 (net/ipv6/datagram.c): the header; no sockets."""
    return f"{_V6_COLUMNS} ref pointer drops\n".encode()


def show_net_raw(view: View, task: Task | None = None) -> bytes:
    """/net/raw (net/ipv4/raw.c raw_seq_show): the header, unpadded; no sockets."""
    return f"{_UDP_HEADER[1:]}\n".encode()


def show_net_unix(view: View, task: Task | None = None) -> bytes:
    """/net/unix (net/unix/af_unix.c unix_seq_show): the header; no sockets."""
    return b"Num       RefCount Protocol Flags    Type St Inode Path\n"


def show_net_packet(view: View, task: Task | None = None) -> bytes:
    """/net/packet (net/packet/af_packet.c packet_seq_show): the header; no sockets."""
    return b"sk               RefCnt Type Proto  Iface R Rmem   User   Inode\n"


def show_net_sockstat(view: View, task: Task | None = None) -> bytes:
    """/net/sockstat (net/ipv4/proc.c sockstat_seq_show): nothing in use."""
    return (b"sockets: used 0\nTCP: inuse 0 orphan 0 tw 0 alloc 0 mem 0\nUDP: inuse 0 mem 0\n"
            b"UDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n")


def show_net_sockstat6(view: View, task: Task | None = None) -> bytes:
    """/net/sockstat6 (net/ipv6/proc.c): nothing in use."""
    return (b"TCP6: inuse 0\nUDP6: inuse 0\nUDPLITE6: inuse 0\nRAW6: inuse 0\n"
            b"FRAG6: inuse 0 memory 0\n")


#: the per-pid ``net/`` directory (Linux's /proc/net is a link to self/net)
NET_FILES: dict[str, SystemFile] = {
    "dev": SystemFile(0o444, show_net_dev),
    "packet": SystemFile(0o444, show_net_packet),
    "raw": SystemFile(0o444, show_net_raw),
    "raw6": SystemFile(0o444, show_net_udp6),
    "sockstat": SystemFile(0o444, show_net_sockstat),
    "sockstat6": SystemFile(0o444, show_net_sockstat6),
    "tcp": SystemFile(0o444, show_net_tcp),
    "tcp6": SystemFile(0o444, show_net_tcp6),
    "udp": SystemFile(0o444, show_net_udp),
    "udp6": SystemFile(0o444, show_net_udp6),
    "unix": SystemFile(0o444, show_net_unix),
}


# -- /sys ---------------------------------------------------------------------------------------

HOSTNAME = "pidfs"


def _text(value: str) -> Show:
    data = f"{value}\n".encode()

    def show(view: View, task: Task | None = None) -> bytes:
        return data
    show.__doc__ = f"A fixed sysctl value: {value!r}."
    return show


def show_boot_id(view: View, task: Task | None = None) -> bytes:
    """kernel.random.boot_id: a random v4-shaped UUID fixed for the boot; here derived from
    the view's boot time, so it is stable for a mount and differs between mounts."""
    u = uuid.uuid5(uuid.NAMESPACE_OID, f"pidfs-boot-{view.boot_epoch!r}")
    return f"{uuid.UUID(bytes=u.bytes, version=4)}\n".encode()


def show_random_uuid(view: View, task: Task | None = None) -> bytes:
    """kernel.random.uuid: Linux gives a fresh UUID per read; here one per boot and clock
    value (deterministic)."""
    u = uuid.uuid5(uuid.NAMESPACE_OID, f"pidfs-uuid-{view.boot_epoch!r}-{view.kernel.clock()}")
    return f"{uuid.UUID(bytes=u.bytes, version=4)}\n".encode()


def show_kernel_version(view: View, task: Task | None = None) -> bytes:
    """kernel.version: the build part of /version's banner (``#1 SMP PREEMPT_DYNAMIC ...``)."""
    banner = G.show_version(view).decode()
    return (banner[banner.index("#"):].rstrip("\n") + "\n").encode()


def show_file_nr(view: View, task: Task | None = None) -> bytes:
    """fs.file-nr: allocated handles (32 per process-sized share of the model's threads),
    0 free, the maximum; tab-separated."""
    return f"{480 + 8 * view.kernel.nr_threads}\t0\t{FILE_MAX}\n".encode()


FILE_MAX = 9223372036854775807

#: sysctls besides the existing pid_max, ns_last_pid, threads-max and osrelease (tables.SYS_KERNEL)
SYSCTL_FILES: dict[str, SystemFile] = {
    "sys/kernel/cap_last_cap": SystemFile(0o444, _text("40")),
    "sys/kernel/core_pattern": SystemFile(0o644, _text("core"), refuse_write),
    "sys/kernel/dmesg_restrict": SystemFile(0o644, _text("0"), refuse_write),
    "sys/kernel/domainname": SystemFile(0o644, _text("(none)"), refuse_write),
    "sys/kernel/hostname": SystemFile(0o644, _text(HOSTNAME), refuse_write),
    "sys/kernel/kptr_restrict": SystemFile(0o644, _text("0"), refuse_write),
    "sys/kernel/ngroups_max": SystemFile(0o444, _text("65536")),
    "sys/kernel/ostype": SystemFile(0o444, _text("Linux")),
    "sys/kernel/overflowgid": SystemFile(0o644, _text("65534"), refuse_write),
    "sys/kernel/overflowuid": SystemFile(0o644, _text("65534"), refuse_write),
    "sys/kernel/panic": SystemFile(0o644, _text("0"), refuse_write),
    "sys/kernel/perf_event_paranoid": SystemFile(0o644, _text("2"), refuse_write),
    "sys/kernel/printk": SystemFile(0o644, _text("4\t4\t1\t7"), refuse_write),
    "sys/kernel/random/boot_id": SystemFile(0o444, show_boot_id),
    "sys/kernel/random/entropy_avail": SystemFile(0o444, _text("256")),
    "sys/kernel/random/poolsize": SystemFile(0o444, _text("256")),
    "sys/kernel/random/uuid": SystemFile(0o444, show_random_uuid),
    "sys/kernel/randomize_va_space": SystemFile(0o644, _text("2"), refuse_write),
    "sys/kernel/sched_autogroup_enabled": SystemFile(0o644, _text("1"), refuse_write),
    "sys/kernel/sem": SystemFile(0o644, _text("32000\t1024000000\t500\t32000"), refuse_write),
    "sys/kernel/shmall": SystemFile(0o644, _text("18446744073692774399"), refuse_write),
    "sys/kernel/shmmax": SystemFile(0o644, _text("18446744073692774399"), refuse_write),
    "sys/kernel/shmmni": SystemFile(0o644, _text("4096"), refuse_write),
    "sys/kernel/tainted": SystemFile(0o644, _text("0"), refuse_write),
    "sys/kernel/version": SystemFile(0o444, show_kernel_version),
    "sys/vm/max_map_count": SystemFile(0o644, _text("65530"), refuse_write),
    "sys/vm/overcommit_memory": SystemFile(0o644, _text("0"), refuse_write),
    "sys/vm/swappiness": SystemFile(0o644, _text("60"), refuse_write),
    "sys/fs/file-max": SystemFile(0o644, _text(str(FILE_MAX)), refuse_write),
    "sys/fs/file-nr": SystemFile(0o444, show_file_nr),
    "sys/fs/nr_open": SystemFile(0o644, _text("1048576"), refuse_write),
    "sys/fs/pipe-max-size": SystemFile(0o644, _text("1048576"), refuse_write),
}


# -- /tty/drivers ---------------------------------------------------------------------------------

#: (driver, device name, major, minor start, count, type)
TTY_DRIVERS = (
    ("/dev/tty", "tty", 5, 0, 1, "system:/dev/tty"),
    ("/dev/console", "console", 5, 1, 1, "system:console"),
    ("/dev/ptmx", "ptmx", 5, 2, 1, "system"),
    ("/dev/vc/0", "vc/0", 4, 0, 1, "system:vtmaster"),
    ("serial", "ttyS", 4, 64, 32, "serial"),
    ("pty_slave", "pts", 136, 0, 1048576, "pty:slave"),
    ("pty_master", "ptm", 128, 0, 1048576, "pty:master"),
    ("unknown", "tty", 4, 1, 63, "console"),
)


def show_tty_drivers(view: View, task: Task | None = None) -> bytes:
    """/tty/drivers (fs/proc/proc_tty.c show_tty_range): ``"%-20s /dev/%-8s "``, then
    ``"%3d %7d "`` for one minor or ``"%3d %d-%d "`` for a range, then the type. Fixed: a
    virtual machine's drivers (console, serial, pty)."""
    out = []
    for driver, name, major, minor, num, kind in TTY_DRIVERS:
        dev = f"{major:3d} {minor}-{minor + num - 1} " if num > 1 else f"{major:3d} {minor:7d} "
        out.append(f"{driver:<20s} /dev/{name:<8s} {dev}{kind}\n")
    return "".join(out).encode()


# -- /slabinfo ------------------------------------------------------------------------------------

#: (name, object size, objects per slab, pages per slab, what it counts): 'threads', 'procs'
#: (thread groups), 'pids' or a fixed number of active objects
_SLABS: tuple[tuple[str, int, int, int, str | int], ...] = (
    ("pid_namespace", 344, 23, 2, 0),
    ("proc_inode_cache", 696, 23, 4, 1158),
    ("filp", 192, 21, 1, 945),
    ("inode_cache", 624, 13, 2, 240),
    ("dentry", 192, 21, 1, 75894),
    ("vm_area_struct", 192, 21, 1, 2327),
    ("files_cache", 704, 23, 4, "procs"),
    ("fs_cache", 64, 64, 1, "procs"),
    ("signal_cache", 1152, 14, 4, "procs"),
    ("sighand_cache", 2112, 15, 8, "procs"),
    ("task_struct", 5888, 5, 8, "threads"),
    ("anon_vma", 104, 39, 1, 651),
    ("pid", 192, 21, 1, "threads"),
    ("cred_jar", 192, 21, 1, "threads"),
    ("mm_struct", 1600, 20, 8, "procs"),
    ("kmalloc-64", 64, 64, 1, 2068),
)


def _process_count(view: View) -> int:
    kernel = view.kernel
    return sum(1 for _ in kernel.iter_tgids(kernel.root_ns))


def show_slabinfo(view: View, task: Task | None = None) -> bytes:
    """/slabinfo (mm/slab_common.c cache_show, version 2.1), mode 0400: the per-task caches
    count the model's live tasks and processes; the others are fixed. ``"%-17s %6lu %6lu %6u
    %4u %4d : tunables %4u %4u %4u : slabdata %6lu %6lu %6lu"``. O(processes)."""
    counts = {"threads": view.kernel.nr_threads, "procs": _process_count(view)}
    out = ["slabinfo - version: 2.1\n",
           "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : "
           "tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> "
           "<sharedavail>\n"]
    for name, size, per_slab, pages, what in _SLABS:
        active = counts[what] if isinstance(what, str) else what
        slabs = -(-active // per_slab)
        total = slabs * per_slab
        out.append(f"{name:<17s} {active:6d} {total:6d} {size:6d} {per_slab:4d} {pages:4d} : "
                   f"tunables {0:4d} {0:4d} {0:4d} : slabdata {slabs:6d} {slabs:6d} {0:6d}\n")
    return "".join(out).encode()


# -- /cmdline, /cgroups, /locks ---------------------------------------------------------------------

def show_cmdline(view: View, task: Task | None = None) -> bytes:
    """/cmdline (fs/proc/cmdline.c): the boot command line and a newline. Fixed."""
    return f"BOOT_IMAGE=/boot/vmlinuz-{G.OSRELEASE} root=/dev/vda1 ro quiet\n".encode()


_CGROUP_SUBSYS = ("cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer", "net_cls",
                  "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc")


def show_cgroups(view: View, task: Task | None = None) -> bytes:
    """/cgroups (kernel/cgroup/cgroup-v1.c proc_cgroupstats_show): ``"%s\\t%d\\t%d\\t%d\\n"``.
    A cgroup2-only system: every controller on the default hierarchy (0), one cgroup (the
    root, where /<pid>/cgroup puts every process), enabled."""
    head = "#subsys_name\thierarchy\tnum_cgroups\tenabled\n"
    return (head + "".join([f"{s}\t0\t1\t1\n" for s in _CGROUP_SUBSYS])).encode()


def show_locks(view: View, task: Task | None = None) -> bytes:
    """/locks (fs/locks.c): one line per file lock; the model holds none, so it is empty."""
    return b""


# -- the mount table ----------------------------------------------------------------------------

class Mount(NamedTuple):
    """One row of the fixed mount table (struct mount as fs/proc_namespace.c shows it)."""

    mnt_id: int
    parent_id: int
    dev: str  # major:minor
    mountpoint: str
    opts: str  # per-mount options (rw,nosuid,...,relatime)
    optional: str  # mountinfo optional fields ("shared:1"), may be empty
    fstype: str
    source: str
    super_opts: str  # superblock options


def mount_table(view: View) -> tuple[Mount, ...]:
    """The mounts a process of the table sees: a small Debian system with this mount as its
    ``/proc`` (fixed mount ids 20..28; the proc row carries this mount's procfs options)."""
    proc_opts = view.options.to_text()
    proc_super = "rw" + ("," + proc_opts if proc_opts else "")
    return (
        Mount(21, 1, "254:1", "/", "rw,relatime", "shared:1", "ext4", "/dev/vda1",
              "rw,errors=remount-ro"),
        Mount(22, 21, "0:21", "/proc", "rw,nosuid,nodev,noexec,relatime", "shared:12", "proc",
              "proc", proc_super),
        Mount(23, 21, "0:22", "/sys", "rw,nosuid,nodev,noexec,relatime", "shared:7", "sysfs",
              "sysfs", "rw"),
        Mount(24, 21, "0:5", "/dev", "rw,nosuid,relatime", "shared:2", "devtmpfs", "udev",
              "rw,size=4065776k,nr_inodes=1016444,mode=755"),
        Mount(25, 24, "0:23", "/dev/pts", "rw,nosuid,noexec,relatime", "shared:3", "devpts",
              "devpts", "rw,gid=5,mode=620,ptmxmode=000"),
        Mount(26, 24, "0:24", "/dev/shm", "rw,nosuid,nodev", "shared:4", "tmpfs", "tmpfs",
              "rw,inode64"),
        Mount(27, 21, "0:25", "/run", "rw,nosuid,nodev,noexec,relatime", "shared:5", "tmpfs",
              "tmpfs", "rw,size=813156k,mode=755,inode64"),
        Mount(28, 23, "0:26", "/sys/fs/cgroup", "rw,nosuid,nodev,noexec,relatime", "shared:8",
              "cgroup2", "cgroup2", "rw,nsdelegate,memory_recursiveprot"),
    )


def show_mounts_table(view: View) -> bytes:
    """/<pid>/mounts (fs/proc_namespace.c show_vfsmnt): ``source mountpoint fstype opts 0 0``,
    where opts are the superblock's rw/ro, the mount flags, then the superblock options."""
    out = []
    for m in mount_table(view):
        sb_extra = m.super_opts.split(",", 1)[1] if "," in m.super_opts else ""
        opts = m.opts + ("," + sb_extra if sb_extra else "")
        out.append(f"{m.source} {m.mountpoint} {m.fstype} {opts} 0 0\n")
    return "".join(out).encode()


def show_mountinfo_table(view: View) -> bytes:
    """/<pid>/mountinfo (show_mountinfo): ``id parent major:minor root mountpoint opts
    [optional...] - fstype source superopts``."""
    out = []
    for m in mount_table(view):
        optional = f" {m.optional}" if m.optional else ""
        out.append(f"{m.mnt_id} {m.parent_id} {m.dev} / {m.mountpoint} {m.opts}{optional} - "
                   f"{m.fstype} {m.source} {m.super_opts}\n")
    return "".join(out).encode()


def show_mountstats_table(view: View) -> bytes:
    """/<pid>/mountstats (show_vfsstat): ``device S mounted on M with fstype T`` per mount
    (no filesystem here adds statistics: NFS would)."""
    return "".join([f"device {m.source} mounted on {m.mountpoint} with fstype {m.fstype}\n"
                    for m in mount_table(view)]).encode()


# -- the tables ---------------------------------------------------------------------------------

#: path relative to the mount root -> SystemFile, for every file this module adds
GLOBAL_FILES: dict[str, SystemFile] = {
    "cgroups": SystemFile(0o444, show_cgroups),
    "cmdline": SystemFile(0o444, show_cmdline),
    "diskstats": SystemFile(0o444, show_diskstats),
    "filesystems": SystemFile(0o444, show_filesystems),
    "locks": SystemFile(0o444, show_locks),
    "partitions": SystemFile(0o444, show_partitions),
    "pressure/cpu": SystemFile(0o666, show_pressure_cpu, refuse_write),
    "pressure/io": SystemFile(0o666, show_pressure_io, refuse_write),
    "pressure/memory": SystemFile(0o666, show_pressure_memory, refuse_write),
    "slabinfo": SystemFile(0o400, show_slabinfo),
    "swaps": SystemFile(0o444, show_swaps),
    "tty/drivers": SystemFile(0o444, show_tty_drivers),
    "vmstat": SystemFile(0o444, show_vmstat),
    **SYSCTL_FILES,
}

#: the root's symlinks (both are links into self/ on Linux)
GLOBAL_LINKS: dict[str, str] = {
    "mounts": "self/mounts",
    "net": "self/net",
}
