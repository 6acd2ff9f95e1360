"""Namespaces on a real mount (issue 10 point 2): every ns/ entry reads as ``TYPE:[INUM]`` and
follows to a file whose ``st_ino`` is INUM, so procps, util-linux and psmisc see the namespaces
the model holds: ``ps -o pidns,...``, ``lsns``, ``pstree -N``/``-S``, ``pgrep --ns``."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from .conftest import in_private_proc

INIT = {"cgroup": 4026531835, "ipc": 4026531839, "mnt": 4026531832, "net": 4026531833,
        "pid": 4026531836, "pid_for_children": 4026531836, "time": 4026531834,
        "time_for_children": 4026531834, "user": 4026531837, "uts": 4026531838}


@pytest.fixture
def netns(mnt):
    """A process ``netd`` that unshared its net namespace, with a child ``kid``: (mount, netd,
    kid, the new namespace's inode number)."""
    c = mnt.new(1, "comm=netd")
    inum = int(mnt.ctl("unshare", str(c), "net"))
    g = mnt.new(c, "comm=kid")
    return mnt, c, g, inum


def test_ns_lists_ten_links_that_follow_to_their_inum(netns):
    mnt, c, g, inum = netns
    d = mnt / f"{g}/ns"
    names = os.listdir(d)
    assert names == ["net", "uts", "ipc", "pid", "pid_for_children", "user", "mnt", "cgroup",
                     "time", "time_for_children"]  # this machine's order
    want = {**INIT, "net": inum}
    for name in names:
        kind = name.removesuffix("_for_children")
        assert os.readlink(d / name) == f"{kind}:[{want[name]}]"
        st = os.stat(d / name)  # followed, as stat -L
        # as this machine's nsfs: a regular 0444 file, one link, size 0, root's
        assert (st.st_ino, st.st_mode, st.st_nlink, st.st_size, st.st_uid) == (
            want[name], stat.S_IFREG | 0o444, 1, 0, 0)
    assert os.stat(mnt / f"{c}/ns/net").st_ino == inum
    assert os.stat(mnt / "1/ns/net").st_ino == INIT["net"]
    with pytest.raises(OSError) as e:  # no ioctl or setns() can be served on it
        os.open(d / "net", os.O_RDONLY)
    assert e.value.errno == errno.EACCES
    with pytest.raises(FileNotFoundError):  # a namespace the task is not in
        os.stat(d / f"net:[{INIT['net']}]")


def test_ps_namespace_columns(netns):
    mnt, c, g, inum = netns
    r = in_private_proc(mnt, f"ps -o pid=,pidns=,mntns=,netns=,ipcns=,utsns=,userns= -p 1,{c},{g}")
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()]
    i = INIT
    base = [i["pid"], i["mnt"], i["net"], i["ipc"], i["uts"], i["user"]]
    assert rows == [[str(x) for x in [1, *base]],
                    [str(x) for x in [c, *base[:2], inum, *base[3:]]],
                    [str(x) for x in [g, *base[:2], inum, *base[3:]]]]


def test_lsns_lists_the_new_namespace_with_its_processes(netns):
    mnt, c, _g, inum = netns
    r = in_private_proc(mnt, "lsns -n -o NS,TYPE,NPROCS,PID")
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()]
    assert [str(inum), "net", "2", str(c)] in rows
    net_root = next(x for x in rows if x[0] == str(INIT["net"]))
    assert net_root[1:2] == ["net"] and net_root[3] == "1"


def test_pstree_shows_namespace_changes(netns):
    mnt, c, g, inum = netns
    r = in_private_proc(mnt, f"pstree -S -p {c}")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"netd({c},net)---kid({g})\n"
    r = in_private_proc(mnt, "pstree -N net -p")
    assert r.returncode == 0, r.stderr
    assert f"[{inum}]\nnetd({c})---kid({g})\n" in r.stdout
    assert r.stdout.startswith(f"[{INIT['net']}]\n")


def test_pgrep_ns_matches_only_that_namespace(netns):
    mnt, c, g, _inum = netns
    r = in_private_proc(mnt, f"pgrep --ns {c} --nslist net")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(c), str(g)]
    r = in_private_proc(mnt, f"pgrep --ns {c}")  # every type: net is the only one that differs
    assert r.stdout.split() == [str(c), str(g)]
    r = in_private_proc(mnt, f"pgrep --ns {c} --nslist uts")  # everyone shares the initial uts
    assert str(1) in r.stdout.split() and str(c) in r.stdout.split()


def test_unshare_setns_through_the_mount_and_bad_type(netns):
    mnt, _c, g, _inum = netns
    assert mnt.ctl("setns", str(g), "1", "net") == ""
    assert os.stat(mnt / f"{g}/ns/net").st_ino == INIT["net"]
    t = int(mnt.ctl("unshare", str(g), "time"))
    assert os.readlink(mnt / f"{g}/ns/time") == f"time:[{INIT['time']}]"
    assert os.readlink(mnt / f"{g}/ns/time_for_children") == f"time:[{t}]"
    out = mnt.ctl("unshare", str(g), "bogus", check=False)
    assert out == ("unshare: unshare: 'bogus' is not a namespace type: pid (newpid), cgroup, ipc, mnt, "
                   "net, time, user, uts (usage: unshare PID newpid|cgroup|ipc|mnt|net|time|user|uts)\n")
    assert os.readlink(mnt / f"{g}/ns/time_for_children") == f"time:[{t}]"
