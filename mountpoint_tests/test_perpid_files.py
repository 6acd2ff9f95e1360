"""Issue 10 points 3 and 7 on a real mount: every per-pid file a tool reads, with the mode and
the answer Linux 6.18 gives each kind of reader, as measured on this machine
(pidfs_fuse/tests/reference/kernel_facts.json: a live process, a zombie, a zombie leader).

A probe forked as root or as uid 65534 opens, reads, lists or reads the link of each name and
reports only the outcome's kind: ``ok``, ``ok (empty)``, ``open EACCES``, ``open ok, read EPERM``,
``EACCES`` ... so that contents (which differ between the model and the probe process Linux was
measured with) do not matter, but where and how a read is refused does.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import write_once

FACTS = json.loads((Path(__file__).resolve().parent.parent / "pidfs_fuse" / "tests" / "reference"
                    / "kernel_facts.json").read_text())
NOBODY = 65534
#: ns/ is another engineer's (issue 10 point 2); the rest of the measured names are checked
SKIP = {"ns/", "ns/pid", "ns/pid_for_children"}
LINKS = {"exe", "cwd", "root", "ns/pid"}

PROBE = r"""
import errno, json, os, sys
base, uid, names, links = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), set(json.loads(sys.argv[4]))
if uid:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)

def err(e):
    return errno.errorcode[e.errno]

def one(name):
    path = os.path.join(base, name.rstrip("/"))
    if name.endswith("/"):
        try:
            return "ok (empty)" if not os.listdir(path) else "ok"
        except OSError as e:
            return err(e)
    if name in links:
        try:
            os.readlink(path)
        except OSError as e:
            return err(e)
        return "ok"
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return "open " + err(e)
    try:
        data = os.read(fd, 65536)
    except OSError as e:
        return "open ok, read " + err(e)
    finally:
        os.close(fd)
    return "ok (empty)" if not data else "ok " + repr(data.decode(errors="replace")) if len(data) < 24 else "ok"

print(json.dumps({n: one(n) for n in names}))
"""


def kind(fact: str) -> str:
    """A measured answer reduced to what the probe reports."""
    if fact.startswith("ok (empty)"):
        return "ok (empty)"
    if fact.startswith("ok"):
        return "ok"
    return fact


def probe(base: str, uid: int, names: list[str]) -> dict[str, str]:
    r = subprocess.run([sys.executable, "-c", PROBE, base, str(uid), json.dumps(names),
                        json.dumps(sorted(LINKS))], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


@pytest.fixture
def public(mount_table):
    return mount_table("-o", "allow_other", public=True)


def test_modes_are_linuxs(public):
    pid = public.new(1, "comm=probe")
    for name, fact in FACTS["perpid_access"].items():
        if name in SKIP or name in LINKS:
            continue
        st = os.lstat(os.path.join(public.path, str(pid), name.rstrip("/")))
        assert oct(stat.S_IMODE(st.st_mode))[2:].zfill(4) == fact["mode"], name
        assert stat.S_ISDIR(st.st_mode) == name.endswith("/"), name


def test_live_process_answers_each_reader_as_linux(public):
    """Root and uid 65534 read a root process's files and 65534 its own: every outcome as
    measured (open EACCES for maps to others, read EPERM for timerslack_ns, read EACCES for
    its own stack, read EIO at mem's offset 0, wchan "0" for others)."""
    root_pid = public.new(1, "comm=rootproc")
    public.ctl("set", str(root_pid), "state=S")
    own_pid = public.new(1, f"uid={NOBODY}", f"gid={NOBODY}", "comm=ownproc")
    public.ctl("set", str(own_pid), "state=S")
    for parent in (root_pid, own_pid):  # a descriptor each (a pidfd), so fd/ lists something
        public.ctl("clone", str(parent), "pidfd")
    names = [n for n in FACTS["perpid_access"] if n not in SKIP]
    want = {reader: {n: kind(f[reader]) for n, f in FACTS["perpid_access"].items() if n not in SKIP}
            for reader in ("root reads root's", "65534 reads root's", "65534 reads its own")}
    got = {"root reads root's": probe(f"{public.path}/{root_pid}", 0, names),
           "65534 reads root's": probe(f"{public.path}/{root_pid}", NOBODY, names),
           "65534 reads its own": probe(f"{public.path}/{own_pid}", NOBODY, names)}
    for reader in got:
        # the small answers are compared by value where they do not depend on the process
        for n in ("wchan",):
            assert got[reader][n] == ("ok '0'" if reader == "65534 reads root's"
                                      else "ok 'do_epoll_wait'"), reader
            got[reader][n] = "ok"
        for n, v in got[reader].items():
            if v.startswith("ok '"):
                got[reader][n] = "ok"
        assert got[reader] == want[reader], reader


@pytest.mark.parametrize("case", ["zombie", "zombie_leader"])
def test_zombie_answers_as_linux(public, case):
    """A zombie (the whole process exited, not reaped) and a zombie leader (the leader exited,
    another thread lives): each file as Linux 6.18 answers root and uid 65534."""
    facts = (FACTS["zombie"]["root-owned zombie"] if case == "zombie" else FACTS["zombie_leader"]["/<pid>/"])
    pid = public.new(1, "comm=dying")
    if case == "zombie":
        public.ctl("exit_group", str(pid), "0")
    else:
        public.ctl("clone", str(pid), "thread")
        public.ctl("exit", str(pid), "0")
    names = [n for n in facts if n not in SKIP]
    for reader, uid in (("root", 0), ("65534", NOBODY)):
        got = probe(f"{public.path}/{pid}", uid, names)
        got = {n: "ok" if v.startswith("ok '") else v for n, v in got.items()}
        assert got == {n: kind(facts[n][reader]) for n in names}, reader


def test_zombie_owner_follows_task_dump_owner(public):
    owners = next(v for k, v in FACTS["zombie"].items() if k.startswith("owner uid:gid"))
    pid = public.new(1, f"uid={NOBODY}", f"gid={NOBODY}", "comm=z")
    public.ctl("exit_group", str(pid), "0")
    for name, owner in owners.items():
        if name + "/" in SKIP or name in SKIP or name == "ns":
            continue
        st = os.lstat(os.path.join(public.path, str(pid), name) if name else
                      os.path.join(public.path, str(pid)))
        assert f"{st.st_uid}:{st.st_gid}" == owner, name


# -- the rows Linux 6.18 has beside these: attr/, numa_maps, timens_offsets, projid_map, clear_refs

def test_listings_have_linuxs_rows_in_linuxs_order(mnt):
    """/<pid>/ and /<pid>/task/<tid>/ list every name this kernel's /proc/self lists, in its
    order, and nlink counts the same directories (attr/ among them)."""
    pid = mnt.new(1)
    me = os.getpid()
    for ours, real in ((f"{mnt.path}/{pid}", f"/proc/{me}"),
                       (f"{mnt.path}/{pid}/task/{pid}", f"/proc/{me}/task/{me}")):
        assert [n for n in os.listdir(ours) if n != "pidfd"] == os.listdir(real)
        assert os.stat(ours).st_nlink == os.stat(real).st_nlink
    assert os.listdir(f"{mnt.path}/{pid}/attr") == os.listdir(f"/proc/{me}/attr")


def test_new_rows_answer_writes_as_linux(mnt):
    """What root's reads and writes of each new row give, beside the real /proc: the constant
    files by value, the write errnos of another process's files as measured on pid 1's."""
    pid = mnt.new(1)
    me, base = os.getpid(), f"{mnt.path}/{pid}"
    for name in ("timens_offsets", "projid_map"):
        assert Path(f"{base}/{name}").read_bytes() == Path(f"/proc/{me}/{name}").read_bytes()
    # written by root: timens_offsets parses first (EINVAL), then finds the offsets frozen
    for data in (b"garbage\n", b"monotonic 1 2000000000\n", b"monotonic 1 0\n", b"7 -1 0\n"):
        assert write_once(f"{base}/timens_offsets", data) == write_once(f"/proc/{me}/timens_offsets", data)
    assert write_once(f"{base}/timens_offsets", b"monotonic 1 0\n") == "write EACCES"
    for data in (b"1", b"5\n", b"6", b"x"):
        assert write_once(f"{base}/clear_refs", data) == write_once(f"/proc/{me}/clear_refs", data)
    assert write_once(f"{base}/clear_refs", b"4") == 1
    assert write_once(f"{base}/projid_map", b"0 0 1\n") == "write EPERM"
    assert write_once(f"/proc/{me}/projid_map", b"0 0 1\n") == "write EPERM"
    with pytest.raises(OSError) as e:
        Path(f"{base}/clear_refs").read_bytes()
    assert e.value.errno == errno.EINVAL
    for name in ("current", "prev", "exec", "fscreate", "keycreate", "sockcreate"):
        with pytest.raises(OSError) as e:
            Path(f"{base}/attr/{name}").read_bytes()
        assert e.value.errno == errno.EINVAL, name
        # another task's attributes: pid 1 on this machine answers the same
        assert write_once(f"{base}/attr/{name}", b"x") == "write EPERM", name
    assert write_once("/proc/1/attr/current", b"x") == "write EPERM"


def test_numa_maps_follows_maps_and_smaps(mnt):
    """One numa_maps line per vma of maps (not [vsyscall]), starting at its address, and the
    pages each line counts are smaps' Rss of that vma."""
    pid = mnt.new(1)
    mnt.ctl("set", str(pid), "rss=5000", "vsize=200000000")
    base = f"{mnt.path}/{pid}"
    maps = [ln for ln in Path(f"{base}/maps").read_text().splitlines() if "[vsyscall]" not in ln]
    rss = [int(ln.split()[1]) for ln in Path(f"{base}/smaps").read_text().splitlines()
           if ln.startswith("Rss:")][:len(maps)]
    numa = Path(f"{base}/numa_maps").read_text().splitlines()
    assert [ln.split()[0] for ln in numa] == [ln.split("-")[0] for ln in maps]
    assert [int(ln.split(" N0=")[1].split()[0]) * 4 if " N0=" in ln else 0 for ln in numa] == rss
    vmrss = next(ln for ln in Path(f"{base}/status").read_text().splitlines() if ln.startswith("VmRSS:"))
    assert sum(rss) == int(vmrss.split()[1]) == 5000 * 4  # rss= is in pages
    assert any(" heap anon=" in ln for ln in numa)
    assert all(ln.split()[1] == "default" for ln in numa)
    mnt.ctl("exit_group", str(pid), "0")
    assert Path(f"{base}/numa_maps").read_bytes() == b""
    assert Path(f"{base}/timens_offsets").read_bytes() == b""
