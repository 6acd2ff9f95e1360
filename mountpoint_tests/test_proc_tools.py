"""Issue 10 point 8: the /proc tools people run, unmodified, on a table, compared with the table.

Each tool runs through ``pidfs-fuse exec DIR -- CMD`` (new mount and pid namespaces with the
mount bound on /proc, so a pid it reads never names a host process). The expected values come
from the mount's own files (which the unit tests tie to the model) or from the control file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from .conftest import CLI

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((REPO / "examples" / "scenarios").glob("*.toml"))
#: psutil methods that make a real system call on the pid (getpriority, ioprio_get,
#: sched_getaffinity, prlimit) instead of reading /proc: inside ``exec`` no such pid exists,
#: so they raise NoSuchProcess (the README's inherent limit); every other one is /proc
SYSCALL_ATTRS = {"nice", "ionice", "cpu_affinity", "rlimit"}


def run(mount, *cmd: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run([*CLI, "exec", mount.path, "--", *cmd], capture_output=True, text=True,
                       timeout=timeout, env=env)
    return r


def read(mount, rel: str) -> str:
    with open(os.path.join(mount.path, rel)) as f:
        return f.read()


def meminfo(mount) -> dict[str, int]:
    return {ln.split(":")[0]: int(ln.split()[1]) for ln in read(mount, "meminfo").splitlines()}


def status(mount, pid: int) -> dict[str, str]:
    return {k: v.strip() for k, v in (ln.split(":", 1) for ln in read(mount, f"{pid}/status").splitlines())}


PSUTIL = r"""
import json, sys, psutil
skip = set(json.loads(sys.argv[1]))
names = [n for n in psutil._as_dict_attrnames if n not in skip]
errors, syscall = {}, {}
for p in psutil.process_iter():
    try:
        p.as_dict(attrs=names)
    except Exception as e:
        errors[p.pid] = repr(e)
    for n in sorted(skip):
        try:
            getattr(p, n)() if n != "rlimit" else p.rlimit(psutil.RLIMIT_NOFILE)
        except psutil.NoSuchProcess:
            syscall.setdefault(n, 0)
            syscall[n] += 1
        except psutil.ZombieProcess:
            pass
print(json.dumps({"errors": errors, "syscall": syscall, "n": len(psutil.pids())}))
"""


@pytest.mark.parametrize("scenario", [None, *SCENARIOS], ids=lambda s: "default" if s is None else s.stem)
def test_psutil_as_dict_raises_nothing_on_any_process(mount_table, scenario):
    """as_dict() with every /proc-backed attribute on every process of the table: nothing
    raises (a zombie's unreadable answers become ZombieProcess, which as_dict turns into its
    default, as on Linux); the syscall-backed ones raise NoSuchProcess for every pid."""
    m = mount_table(*(["--scenario", str(scenario)] if scenario else []))
    r = run(m, sys.executable, "-c", PSUTIL, json.dumps(sorted(SYSCALL_ATTRS)), timeout=600)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["errors"] == {}
    assert got["n"] == len([n for n in os.listdir(m.path) if n.isdigit()])
    assert set(got["syscall"]) == SYSCALL_ATTRS


PROCESS = r"""
import json, sys, psutil
p = psutil.Process(int(sys.argv[1]))
mfi = p.memory_full_info()
maps = p.memory_maps(grouped=False)
out = {"rss": mfi.rss, "vms": mfi.vms, "uss": mfi.uss, "pss": mfi.pss, "swap": mfi.swap,
       "maps": len(maps), "maps_rss": sum(m.rss for m in maps), "open_files": p.open_files(),
       "num_fds": p.num_fds(), "cpu": list(p.cpu_times())[:2], "io": p.io_counters().read_bytes,
       "threads": sorted(t.id for t in p.threads()), "environ": p.environ(),
       "status": p.status(), "name": p.name()}
print(json.dumps(out))
"""


def test_psutil_process_api_agrees_with_the_table(mnt):
    pid = mnt.new(1, "comm=worker")
    mnt.ctl("set", str(pid), "rss=5000", "vsize=200000000", "utime=250", "stime=50",
            "environ=HOME=/root LANG=C", "state=S")
    tids = sorted([pid] + [int(t) for t in mnt.ctl("clone", str(pid), "thread", "count=2").split()])
    mnt.ctl("clone", str(pid), "pidfd")  # one descriptor: the child's pidfd
    r = run(mnt, sys.executable, "-c", PROCESS, str(pid))
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    st = status(mnt, pid)
    rss_kb = int(st["VmRSS"].split()[0])
    assert got["rss"] == rss_kb * 1024 == 5000 * 4096
    assert got["vms"] == 200000000 // 4096 * 4096
    assert got["uss"] == int(st["RssAnon"].split()[0]) * 1024 <= got["pss"] <= got["rss"]
    assert got["swap"] == 0
    assert got["maps"] == len(read(mnt, f"{pid}/maps").splitlines())
    assert got["maps_rss"] == got["rss"]
    assert got["open_files"] == [] and got["num_fds"] == 1
    assert got["cpu"] == [2.5, 0.5] and got["io"] == 0
    assert got["threads"] == tids
    assert got["environ"] == {"HOME": "/root", "LANG": "C"}
    assert (got["status"], got["name"]) == ("sleeping", "worker")


ZOMBIE = r"""
import json, sys, psutil
p = psutil.Process(int(sys.argv[1]))
out = {"status": p.status()}
for n in ("environ", "cmdline", "memory_maps", "open_files", "num_fds", "cwd", "exe"):
    try:
        v = getattr(p, n)()
        out[n] = v if not isinstance(v, list) else len(v)
    except Exception as e:
        out[n] = type(e).__name__
print(json.dumps(out))
"""


def test_psutil_on_a_zombie_answers_as_on_linux(mnt):
    """Linux 6.18: environ's open fails (ESRCH), cmdline and maps read empty, fd/ lists
    nothing, cwd and exe links fail (ENOENT): psutil turns the empty and failed answers of a
    zombie into ZombieProcess."""
    pid = mnt.new(1, "comm=dying")
    mnt.ctl("exit_group", str(pid), "0")
    r = run(mnt, sys.executable, "-c", ZOMBIE, str(pid))
    assert r.returncode == 0, r.stderr
    # what psutil 7 answers for a real zombie on this machine (a forked child that exited)
    assert json.loads(r.stdout) == {"status": "zombie", "environ": "ZombieProcess",
                                    "cmdline": "ZombieProcess", "memory_maps": "ZombieProcess",
                                    "open_files": 0, "num_fds": 0, "cwd": "ZombieProcess",
                                    "exe": "ZombieProcess"}


def test_vmstat_and_free_show_meminfo(shared_mnt):
    mem = meminfo(shared_mnt)
    r = run(shared_mnt, "vmstat", "1", "2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 4 and lines[1].split()[:6] == ["r", "b", "swpd", "free", "buff", "cache"]
    for ln in lines[2:]:
        assert [int(x) for x in ln.split()[2:4]] == [mem["SwapTotal"] - mem["SwapFree"], mem["MemFree"]]
    r = run(shared_mnt, "vmstat", "-s")
    assert r.returncode == 0, r.stderr
    assert f"{mem['MemTotal']} K total memory" in r.stdout
    assert f"{mem['MemFree']} K free memory" in r.stdout
    r = run(shared_mnt, "free")
    assert r.returncode == 0, r.stderr
    row = r.stdout.splitlines()[1].split()
    assert row[0] == "Mem:" and int(row[1]) == mem["MemTotal"] and int(row[3]) == mem["MemFree"]


def test_pmap_x_sums_to_vmsize_and_vmrss(mnt):
    pid = mnt.new(1, "comm=mapped")
    mnt.ctl("set", str(pid), "rss=3321", "vsize=173092864")
    r = run(mnt, "pmap", "-x", str(pid))
    assert r.returncode == 0, r.stderr
    st = status(mnt, pid)
    total = r.stdout.splitlines()[-1].split()
    assert total[:2] == ["total", "kB"]
    # [vsyscall] is listed but is no part of the mm: +4 kB, as on Linux
    assert int(total[2]) == int(st["VmSize"].split()[0]) + 4
    assert int(total[3]) == int(st["VmRSS"].split()[0])


def test_sysctl_a_prints_every_key_under_sys(shared_mnt):
    r = run(shared_mnt, "sysctl", "-a")
    assert r.returncode == 0, r.stderr
    keys = dict(ln.split(" = ", 1) for ln in r.stdout.splitlines())
    files = [os.path.relpath(os.path.join(d, f), os.path.join(shared_mnt.path, "sys"))
             for d, _, fs in os.walk(os.path.join(shared_mnt.path, "sys")) for f in fs]
    assert sorted(keys) == sorted(f.replace("/", ".") for f in files)
    assert keys["kernel.pid_max"] == read(shared_mnt, "sys/kernel/pid_max").strip()
    assert keys["fs.file-max"] == "9223372036854775807"  # the first row: no entry is skipped
    assert keys["kernel.ostype"] == "Linux"


def test_lsof_p_lists_the_process(mnt):
    pid = mnt.new(1, "comm=lsofme")
    r = run(mnt, "lsof", "-p", str(pid))
    assert r.returncode == 0, r.stderr
    rows = [ln.split() for ln in r.stdout.splitlines()[1:]]
    assert {row[3] for row in rows} >= {"cwd", "rtd", "txt"}
    assert all(row[:2] == ["lsofme", str(pid)] for row in rows)


def test_ps_wchan_column_shows_the_table_value(mnt):
    pid = mnt.new(1, "comm=sleeper")
    mnt.ctl("set", str(pid), "state=S", "wchan=hrtimer_nanosleep")
    running = mnt.new(1, "comm=runner")
    mnt.ctl("set", str(running), "state=R")
    r = run(mnt, "ps", "-o", "pid=,wchan:32=", "-p", f"{pid},{running}")
    assert r.returncode == 0, r.stderr
    got = dict(ln.split() for ln in r.stdout.splitlines())
    assert got == {str(pid): "hrtimer_nanosleep", str(running): "-"}


def test_w_and_pidstat_run(shared_mnt):
    r = run(shared_mnt, "w")
    assert r.returncode == 0, r.stderr
    up = read(shared_mnt, "loadavg").split()[:3]
    assert r.stdout.splitlines()[0].rstrip().endswith("load average: " + ", ".join(up))
    r = run(shared_mnt, "pidstat", "-p", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1].split()[-1] == read(shared_mnt, "1/comm").strip()


#: htoprc: PID USER ... Command, then PSS SWAP AGRP LIB (htop 3.2 field numbers 118 119 126 43)
HTOPRC = """fields=0 48 17 18 38 39 40 2 46 47 49 118 119 126 43 1
hide_kernel_threads=1
hide_userland_threads=1
tree_view=0
sort_key=0
sort_direction=1
delay=50
"""


def _lib_kb(maps: str) -> int:
    """htop's LIB: the sizes of every mapping of a file that has an executable mapping."""
    size: dict[str, int] = {}
    executable: set[str] = set()
    for ln in maps.splitlines():
        f = ln.split()
        if len(f) < 6 or not f[5].startswith("/"):
            continue
        a, b = (int(x, 16) for x in f[0].split("-"))
        size[f[5]] = size.get(f[5], 0) + (b - a) // 1024
        if "x" in f[1]:
            executable.add(f[5])
    return sum(size[p] for p in executable)


def test_htop_default_columns_and_pss_swap_agrp_lib_show_table_values(shared_mnt):
    home = tempfile.mkdtemp(prefix="pidfs-htop")
    os.makedirs(os.path.join(home, ".config", "htop"))
    with open(os.path.join(home, ".config", "htop", "htoprc"), "w") as f:
        f.write(HTOPRC)
    sock = f"pidfs-i10-{os.getpid()}"
    cmd = " ".join([*CLI, "exec", shared_mnt.path, "--", "htop"])
    env = {**os.environ, "TERM": "xterm"}  # tmux sizes a detached session by its own TERM
    subprocess.run(["tmux", "-L", sock, "new-session", "-d", "-x", "250", "-y", "60",
                    f"env HOME={home} TERM=xterm {cmd}"], check=True, timeout=30, env=env)
    try:
        screen, last = "", None
        for _ in range(100):  # until a drawn screen stays the same for one capture
            time.sleep(0.3)
            screen = subprocess.run(["tmux", "-L", sock, "capture-pane", "-p"], capture_output=True,
                                    text=True, timeout=30, env=env).stdout
            if re.search(r"^\s+1 root", screen, re.M) and "Command" in screen and screen == last:
                break
            last = screen
    finally:
        subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True, timeout=30, env=env)
    header = next((ln for ln in screen.splitlines() if "PID" in ln and "USER" in ln), screen)
    assert header.split() == ["PID△USER", "PRI", "NI", "VIRT", "RES", "SHR", "S", "CPU%", "MEM%",
                              "TIME+", "PSS", "SWAP", "AGRP", "LIB", "Command"]
    row = next(ln for ln in screen.splitlines() if re.match(r"^\s+1 root", ln)).split()
    st = status(shared_mnt, 1)
    pss = int(next(ln for ln in read(shared_mnt, "1/smaps_rollup").splitlines()
                   if ln.startswith("Pss:")).split()[1])
    agrp = int(read(shared_mnt, "1/autogroup").split()[0].removeprefix("/autogroup-"))
    assert row[:2] == ["1", "root"] and row[5] == st["VmRSS"].split()[0]  # RES in kB
    assert row[11:15] == [str(pss), "0", str(agrp), str(_lib_kb(read(shared_mnt, "1/maps")))]
    assert " ".join(row[15:]) == read(shared_mnt, "1/cmdline").replace("\0", " ").strip()
