#!/usr/bin/env python3
"""Run the real consumers of the new global and per-pid files on their renderings, before the
mount serves them: a harness for the mountpoint tests to come.

    sudo .venv/bin/python pidfs_fuse/tests/reference/tools_check.py

It writes a directory laid out like /proc (the root files of procfs/globals.py and
procfs/system.py, ``sys/``, ``net/``, and ``self/`` plus ``<pid>/`` for one table process with
its status, stat, statm, maps, smaps, smaps_rollup, mounts, mountinfo), then in a private mount
namespace (``unshare -m``; nothing is left mounted when it exits) bind-mounts it over /proc and
runs ``vmstat 1 2``, ``vmstat -s``, ``vmstat -d``, ``free``, ``sysctl -a``, ``swapon --show``,
``findmnt --kernel``, ``df``, ``mount``, ``pmap -x <pid>`` and psutil's readers. Prints each
command, its exit status and its output. Needs root (unshare -m and mount --bind).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from pidfs_fuse.kernel import Kernel
from pidfs_fuse.kernel.fields import set_fields
from pidfs_fuse.procfs import files as F
from pidfs_fuse.procfs import globals as G
from pidfs_fuse.procfs import perpid as P
from pidfs_fuse.procfs import system as S
from pidfs_fuse.procfs.tables import ROOT_FILES, SYS_KERNEL
from pidfs_fuse.procfs.view import View

SEC = 1_000_000_000

COMMANDS = [
    "vmstat 1 2", "vmstat -s", "vmstat -d", "free", "swapon --show",
    "sysctl -a 2>&1 | head -40", "sysctl kernel.hostname kernel.random.boot_id kernel.pid_max",
    "findmnt --kernel", "df -h", "mount", "pmap -x {pid}",
    # psutil decides at import whether smaps exist from its own /proc/<pid>: give it one (the
    # caller's own entry, issue 10 point 5)
    "{python} -c 'import os; os.symlink(\"self\", f\"/proc/{{os.getpid()}}\"); import psutil; "
    "p=psutil.Process({pid}); print(p.memory_full_info()); "
    "print(len(p.memory_maps())); print(psutil.disk_partitions()); print(psutil.swap_memory()); "
    "print(psutil.net_io_counters(pernic=True)); print(psutil.disk_io_counters())'",
]


def build(root: Path) -> int:
    now = [100 * SEC]
    k = Kernel(clock=lambda: now[0])
    app = k.clone(k.init, comm="app").task
    set_fields(k, app, [("vsize", 173_092_864), ("rss", 3321), ("exe", "/usr/sbin/app"),
                        ("state", "S")])
    view = View(k, k.root_ns, boot_epoch=1795442708.9)
    for e in ROOT_FILES:
        if e.show is not None:
            (root / e.name).write_bytes(e.show(view, None))
    for e in SYS_KERNEL:
        (root / "sys/kernel").mkdir(parents=True, exist_ok=True)
        (root / "sys/kernel" / e.name).write_bytes(e.show(view, None) if e.show else b"")
    for path, f in S.GLOBAL_FILES.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(f.show(view, None))
    pid = app.pid.nr
    for d in ("self", str(pid)):
        base = root / d
        (base / "net").mkdir(parents=True)
        for name, nf in S.NET_FILES.items():
            (base / "net" / name).write_bytes(nf.show(view, None))
        for name, pf in P.PERPID_FILES.items():
            if pf.read_at is None:
                try:
                    (base / name).write_bytes(pf.show(view, app))
                except Exception as e:  # report which renderer failed, keep going
                    print(f"{name}: {e!r}", file=sys.stderr)
        for name, show in (("status", F.show_status), ("stat", F.show_tgid_stat),
                           ("statm", F.show_statm), ("cmdline", F.show_cmdline)):
            (base / name).write_bytes(show(view, app))
    os.symlink("self/mounts", root / "mounts")
    os.symlink("self/net", root / "net")
    _ = G  # the globals are reached through ROOT_FILES
    return pid


def main() -> int:
    if os.geteuid() != 0:
        print("tools_check.py: run as root (unshare -m, mount --bind)", file=sys.stderr)
        return 2
    # on tmpfs, whose readdir gives . and .. first: procps sysctl skips the first two entries
    with tempfile.TemporaryDirectory(prefix="pidfs-tools-", dir="/dev/shm") as tmp:
        root = Path(tmp)
        pid = build(root)
        for cmd in COMMANDS:
            cmd = cmd.format(pid=pid, python=sys.executable)
            script = f"mount --bind {tmp} /proc && {cmd}"
            r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                               capture_output=True, text=True, timeout=60)
            print(f"$ {cmd}   [exit {r.returncode}]")
            print((r.stdout + r.stderr).rstrip()[:3000])
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
