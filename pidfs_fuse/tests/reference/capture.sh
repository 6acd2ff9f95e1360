#!/bin/bash
# Regenerate the reference copies of this machine's /proc files that the shape tests of
# procfs/system.py and procfs/perpid.py compare with (field names and order, field counts,
# column widths, trailing newlines; values are free to differ).
#
#   sudo pidfs_fuse/tests/reference/capture.sh        # as root: slabinfo, mountstats need it
#
# Global files go to linux-6.18/global/<path with / as __>, per-pid files of a live python3
# process go to linux-6.18/perpid/<name>; kernel_facts.py (zombie and reap behaviour) is run
# separately: python3 kernel_facts.py > kernel_facts.json
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/linux-6.18"
rm -rf "$out"
mkdir -p "$out/global" "$out/perpid"
uname -r > "$out/uname_r.txt"

global=(
    filesystems vmstat diskstats partitions swaps pressure/cpu pressure/memory pressure/io
    net/dev net/tcp net/tcp6 net/udp net/udp6 net/unix net/raw net/raw6 net/netstat net/snmp
    net/sockstat net/sockstat6 net/protocols net/route net/if_inet6 net/packet
    tty/drivers slabinfo version cmdline cgroups locks mounts
    sys/kernel/osrelease sys/kernel/ostype sys/kernel/hostname sys/kernel/domainname
    sys/kernel/version sys/kernel/threads-max sys/kernel/pid_max sys/kernel/ns_last_pid
    sys/kernel/sched_autogroup_enabled sys/kernel/random/boot_id sys/kernel/random/uuid
    sys/kernel/random/entropy_avail sys/kernel/random/poolsize sys/kernel/cap_last_cap
    sys/kernel/ngroups_max sys/kernel/overflowuid sys/kernel/overflowgid sys/kernel/kptr_restrict
    sys/kernel/printk sys/kernel/panic sys/kernel/core_pattern sys/kernel/randomize_va_space
    sys/kernel/pid_max sys/kernel/shmmax sys/kernel/shmall sys/kernel/shmmni sys/kernel/msgmax
    sys/kernel/sem sys/kernel/tainted sys/kernel/perf_event_paranoid sys/kernel/dmesg_restrict
    sys/vm/overcommit_memory sys/vm/swappiness sys/vm/max_map_count sys/fs/file-max sys/fs/file-nr
    sys/fs/nr_open sys/fs/pipe-max-size
)
modes="$out/global_modes.txt"
: > "$modes"
for f in "${global[@]}"; do
    [ -e "/proc/$f" ] || { echo "$f missing" >> "$modes"; continue; }
    name=${f//\//__}
    printf '%s %s\n' "$f" "$(stat -c %a "/proc/$f")" >> "$modes"
    cat "/proc/$f" > "$out/global/$name"
done
readlink /proc/mounts > "$out/global/mounts.readlink"
readlink /proc/net > "$out/global/net.readlink"

# Per-pid files of a python process reading its own entry (a process with heap, anon, stack,
# vdso, shared libraries and the interpreter mapped).
python3 - "$out/perpid" <<'PY'
import os, sys
out = sys.argv[1]
names = ["maps", "smaps", "smaps_rollup", "statm", "status", "wchan", "oom_score", "oom_score_adj",
         "oom_adj", "sched", "schedstat", "autogroup", "syscall", "timers", "uid_map", "gid_map",
         "setgroups", "personality", "coredump_filter", "timerslack_ns", "cpuset", "arch_status",
         "ksm_stat", "ksm_merging_pages", "stack", "mounts", "mountinfo", "mountstats", "cgroup",
         "io", "limits", "loginuid", "sessionid", "projid_map", "stat"]
for n in names:
    try:
        with open(f"/proc/self/{n}", "rb") as f:
            data = f.read()
    except OSError as e:
        data = f"ERRNO {e.errno}\n".encode()
    with open(os.path.join(out, n), "wb") as f:
        f.write(data)
with open("/proc/self/auxv", "rb") as f:
    aux = f.read()
with open(os.path.join(out, "auxv.len"), "w") as f:
    f.write(f"{len(aux)}\n")
with open(os.path.join(out, "map_files.ls"), "w") as f:
    f.write("\n".join(sorted(os.listdir("/proc/self/map_files"))[:5]) + "\n")
PY
echo "captured into $out"
