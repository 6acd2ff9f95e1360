"""The ceiling's cheap cases on a real mount (issue 13 point 6; ``bench/ceiling_bench.py``
measures the big ones): 32 nested pid namespaces and no 33rd, and a pid namespace filled to its
pid_max. Each model test has a twin that runs the same steps on this machine's kernel, so the
errnos asserted are Linux's: ENOSPC from ``create_pid_namespace()`` past MAX_PID_NS_LEVEL (32),
EAGAIN from ``alloc_pid()`` when the namespace's idr has no number left, and after the first
wrap no number below RESERVED_PIDS (300) is handed out again."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from .conftest import in_private_proc

LEVELS = 32


def _field(text: str, key: str) -> list[str]:
    return next(line for line in text.splitlines() if line.startswith(key + ":")).split()[1:]


def _tasks(mnt) -> int:
    return int((mnt / "loadavg").read_text().split()[3].split("/")[1])


def _real(program: str) -> str:
    r = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


# the real kernel: unshare(CLONE_NEWPID) and fork until unshare fails; prints the depth reached,
# the errno's name, and the NSpid numbers of the process at the deepest level (the host's /proc)
NEST = r"""
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
depth = 0
while True:
    if libc.unshare(0x20000000) != 0:
        line = next(l for l in open("/proc/self/status") if l.startswith("NSpid:"))
        print(depth, errno.errorcode[ctypes.get_errno()], *line.split()[1:])
        os._exit(0)
    pid = os.fork()
    if pid:
        os._exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    depth += 1
"""


def test_linux_nests_32_pid_namespaces_and_refuses_a_33rd_with_enospc():
    depth, err, *nspid = _real(NEST).split()
    assert (depth, err, len(nspid)) == ("32", "ENOSPC", LEVELS + 1)
    assert nspid[1:] == [str(n) for n in range(LEVELS, 0, -1)]  # 32 .. 2, 1: level 32's init


def test_32_nested_namespaces_and_no_33rd(mnt):
    p = 1
    for level in range(1, LEVELS + 1):
        p = mnt.new(p, "newpid", f"comm=init{level}")
    deep = mnt.new(p, "comm=deep")
    status = (mnt / f"{deep}/status").read_text()
    # its number in the root namespace, then at levels 1..32: each init is 2 in its parent's
    want = [str(deep), *(str(n) for n in range(LEVELS + 1, 1, -1))]
    assert len(want) == LEVELS + 1
    assert _field(status, "NSpid") == want
    assert _field(status, "NStgid") == want

    pidns = os.readlink(mnt / f"{deep}/ns/pid")
    view = mnt / ".pidns" / pidns[len("pid:["):-1]
    assert sorted(int(x) for x in os.listdir(view) if x.isdigit()) == [1, 2]
    assert _field((view / "2/status").read_text(), "NSpid") == ["2"]
    r = in_private_proc(view, "ps -e -o pid=,ppid=,comm=")
    assert r.returncode == 0, r.stderr
    assert [line.split() for line in r.stdout.splitlines()] == [["1", "0", "init32"],
                                                                ["2", "1", "deep"]]

    tasks = _tasks(mnt)
    for line in (f"clone {deep} newpid", f"unshare {deep} newpid", f"clone {p} newpid"):
        assert mnt.ctl_raw(line + "\n") == (
            errno.ENOSPC, "error: ENOSPC: pid namespaces nest at most 32 levels deep\n"), line
    assert _tasks(mnt) == tasks  # nothing was made
    assert os.readlink(mnt / f"{deep}/ns/pid_for_children") == pidns  # nothing unshared
    mnt.new(deep)  # an ordinary clone at level 32 still works
    assert _tasks(mnt) == tasks + 1


# the real kernel: a new pid namespace with pid_max 301 (PID_MAX_MIN) filled by its init; then
# the errno of the next fork, of a fork after a number below 300 was freed, and the pid a fork
# gets after 300 was freed (needs a kernel whose pid_max is per namespace: 6.14 and later)
FULL = r"""
import ctypes, errno, os, time
assert ctypes.CDLL(None).unshare(0x20000000 | 0x00020000) == 0  # CLONE_NEWPID | CLONE_NEWNS
init = os.fork()
if init == 0:
    os.system("mount --make-rprivate / && mount -t proc proc /proc")
    try:
        open("/proc/sys/kernel/pid_max", "w").write("301")
    except OSError:
        print("unsupported"); os._exit(0)
    kids, out = [], []
    def fork():
        try:
            k = os.fork()
        except OSError as e:
            return errno.errorcode[e.errno]
        if k == 0:
            time.sleep(60); os._exit(0)
        kids.append(k)
        return k
    while isinstance(fork(), int):
        pass
    out.append(max(kids))
    for freed in (8, 300):
        os.kill(freed, 9); os.waitpid(freed, 0); kids.remove(freed)
        out.append(fork())
    for k in kids:
        os.kill(k, 9)
    for k in kids:
        os.waitpid(k, 0)
    print(*out); os._exit(0)
os.waitpid(init, 0)
"""


def test_linux_full_pid_namespace_fails_fork_with_eagain():
    out = _real(FULL).split()
    if out == ["unsupported"]:
        pytest.skip("this kernel's pid_max is not per pid namespace")
    assert out == ["300", "EAGAIN", "300"]


def test_a_namespace_filled_to_its_pid_max_refuses_the_next_clone(mnt):
    init = mnt.new(1, "newpid", "comm=cinit")
    mnt.ctl("pid_max", str(init), "301")
    inum = os.readlink(mnt / f"{init}/ns/pid_for_children")[len("pid:["):-1]
    kids = mnt.client.clone(init, comm="filler", count=299)
    # inside: 2..300, every number below pid_max 301
    assert [_field((mnt / f"{k}/status").read_text(), "NSpid")[1] for k in kids[:2] + kids[-1:]] \
        == ["2", "3", "300"]
    view = mnt / ".pidns" / inum
    assert sorted(int(x) for x in os.listdir(view) if x.isdigit()) == list(range(1, 301))
    assert (view / "sys/kernel/ns_last_pid").read_text() == "300\n"

    refusal = (errno.EAGAIN, f"error: EAGAIN: no free pid in namespace {inum} (level 1, "
                             "pid_max 301)\n")
    tasks = _tasks(mnt)
    assert mnt.ctl_raw(f"clone {init}\n") == refusal
    assert mnt.ctl_raw(f"clone {init} thread\n") == refusal  # a thread needs a pid too
    assert _tasks(mnt) == tasks  # nothing was made
    assert (view / "sys/kernel/ns_last_pid").read_text() == "300\n"  # the cursor did not move

    # inside 8 exits and is reaped: after the wrap allocation starts at 300, so 8 stays unused
    eight = kids[8 - 2]
    mnt.ctl("exit_group", str(eight))
    mnt.ctl("wait", str(init), f"pid={eight}")
    assert mnt.ctl_raw(f"clone {init}\n") == refusal
    # 300 is freed: the next clone gets it
    mnt.ctl("exit_group", str(kids[-1]))
    mnt.ctl("wait", str(init), f"pid={kids[-1]}")
    again = mnt.new(init, "comm=again")
    assert _field((mnt / f"{again}/status").read_text(), "NSpid")[1:] == ["300"]
    assert sorted(int(x) for x in os.listdir(view) if x.isdigit()) == [
        n for n in range(1, 301) if n != 8]
