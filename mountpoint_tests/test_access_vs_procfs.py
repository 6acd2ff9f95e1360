"""hidepid=/gid= against the real thing: the same questions asked of a real procfs mounted with
the same options on this machine and of our mount, by the same kinds of caller.

Two targets exist on each side: "own", a process of uid 65534 (the viewer's own uid), and
"other", a process of uid 1001; a third is the probing process itself ("self": on our mount, the
stand-in a caller that is not in the table gets, listed only under hidepid=invisible/ptraceable).
Three viewers ask: uid 65534 with no groups, uid 65534 in the ``gid=`` group (4242), and root.
Each question is a real system call made by a child process after setresuid/setgroups: is the
pid listed in the root, ``stat`` of ``/<pid>``, ``ls -ld`` of it, entering it (``listdir``,
reading ``status``, ``lstat`` of ``status``, ``stat`` of ``task/<tid>``), and the
ptrace-guarded ``cwd`` link. The real procfs lives in a private mount namespace that dies with
the probe, so nothing is left mounted whatever happens.

``EXPECTED`` pins what Linux 6.18 answers here, so that a probe broken on both sides cannot pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest

OWN_UID, OTHER_UID, GROUP = 65534, 1001, 4242

PROBE = r"""
import errno, json, os, subprocess, sys
root, uid, groups, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
os.setgroups([int(g) for g in groups.split(",") if g])
os.setresgid(uid, uid, uid)
os.setresuid(uid, uid, uid)

def ask(fn):
    try:
        r = fn()
    except OSError as e:
        return errno.errorcode[e.errno]
    return "ok" if r is None else r

def ls_ld(p):
    r = subprocess.run(["ls", "-ld", p], capture_output=True, text=True)
    return "ok" if r.returncode == 0 else r.stderr.strip().rsplit(": ", 1)[-1]

names = set(os.listdir(root))
out = {}
for label, nr in {**targets, "self": os.getpid()}.items():
    p = f"{root}/{nr}"
    out[label] = {
        "listed": str(nr) in names,
        "stat": ask(lambda: oct(os.stat(p).st_mode)),
        "ls -ld": ls_ld(p),
        "listdir": ask(lambda: "status" in os.listdir(p)),
        "read status": ask(lambda: open(p + "/status").read().startswith("Name:")),
        "lstat status": ask(lambda: oct(os.lstat(p + "/status").st_mode)),
        "stat task/<tid>": ask(lambda: oct(os.stat(f"{p}/task/{nr}").st_mode)),
        "readlink cwd": ask(lambda: os.readlink(p + "/cwd") and "ok"),
    }
print(json.dumps(out))
"""

VIEWERS = {"uid 65534": (OWN_UID, ""), "uid 65534 in gid=": (OWN_UID, str(GROUP)), "root": (0, "0")}

DIR = "0o40555"
SEES = {"listed": True, "stat": DIR, "ls -ld": "ok", "listdir": True, "read status": True,
        "lstat status": "0o100444", "stat task/<tid>": DIR, "readlink cwd": "ok"}
#: hidepid=0 (or an exempt viewer): everything but the ptrace-guarded link
READS = {**SEES, "readlink cwd": "EACCES"}
#: listed and stat-able, but entering is refused with EPERM (proc_pid_permission)
NOACCESS = {**SEES, "listdir": "EPERM", "read status": "EPERM", "lstat status": "EPERM",
            "stat task/<tid>": "EPERM", "readlink cwd": "EPERM"}
#: gone from the listing and ENOENT for every path through it
HIDDEN = {"listed": False, "stat": "ENOENT", "ls -ld": "No such file or directory",
          "listdir": "ENOENT", "read status": "ENOENT", "lstat status": "ENOENT",
          "stat task/<tid>": "ENOENT", "readlink cwd": "ENOENT"}

# options -> viewer -> what the viewer gets for "other" (its own process is always SEES)
EXPECTED = {
    "hidepid=0": {"uid 65534": READS, "uid 65534 in gid=": READS, "root": SEES},
    "hidepid=1": {"uid 65534": NOACCESS, "uid 65534 in gid=": NOACCESS, "root": SEES},
    "hidepid=noaccess,gid=4242": {"uid 65534": NOACCESS, "uid 65534 in gid=": READS, "root": SEES},
    "hidepid=2": {"uid 65534": HIDDEN, "uid 65534 in gid=": HIDDEN, "root": SEES},
    "hidepid=invisible,gid=4242": {"uid 65534": HIDDEN, "uid 65534 in gid=": READS, "root": SEES},
    "hidepid=ptraceable,gid=4242": {"uid 65534": HIDDEN, "uid 65534 in gid=": HIDDEN, "root": SEES},
}


def probe(root: str, viewer: str, targets: dict[str, int], *, wrap: list[str] | None = None,
          setup: str = "") -> dict:
    uid, groups = VIEWERS[viewer]
    cmd = [sys.executable, "-c", PROBE, root, str(uid), groups, json.dumps(targets)]
    if wrap is not None:  # run inside a shell that prepares the namespace first
        quoted = " ".join(_sh_quote(a) for a in cmd)
        cmd = [*wrap, f"{setup} && exec {quoted}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


@pytest.fixture(scope="module")
def real_targets():
    """Two sleeping host processes, one per uid; killed by pid at the end."""
    procs = [subprocess.Popen(["setpriv", f"--reuid={u}", f"--regid={u}", "--clear-groups",
                               "sleep", "600"]) for u in (OWN_UID, OTHER_UID)]
    try:
        yield {"own": procs[0].pid, "other": procs[1].pid}
    finally:
        for p in procs:
            p.kill()
            p.wait()


def real_procfs(options: str, viewer: str, targets: dict[str, int]) -> dict:
    d = tempfile.mkdtemp(prefix="pidfs-realproc")
    try:
        # a private mount namespace: the procfs instance goes away with the probe
        return probe(d, viewer, targets, wrap=["unshare", "-m", "--propagation", "private",
                                               "sh", "-c"],
                     setup=f"mount -t proc -o {options} proc {d}")
    finally:
        if os.path.ismount(d):  # cannot happen (other namespace), but never leave one behind
            subprocess.run(["umount", "-l", d], check=False)
        os.rmdir(d)


@pytest.mark.parametrize("options", list(EXPECTED))
def test_hidepid_answers_match_a_real_procfs(options, real_targets, mount_table):
    m = mount_table("-o", f"{options},allow_other", public=True)
    ours = {"own": m.new(1, f"uid={OWN_UID}", f"gid={OWN_UID}", "comm=own"),
            "other": m.new(1, f"uid={OTHER_UID}", f"gid={OTHER_UID}", "comm=other")}
    for viewer, expected_other in EXPECTED[options].items():
        real = real_procfs(options, viewer, real_targets)
        got = probe(m.path, viewer, ours)
        # "ls -ld" of the probe itself is another process's question (ls is its child): on
        # Linux the probe, made non-dumpable by setresuid, is hidden from it under hidepid; on
        # ours, the caller's own entry answers the caller only. Left out for "self".
        real_self, mine = real.pop("self"), got.pop("self")
        del real_self["ls -ld"], mine["ls -ld"]
        sees_self = {k: v for k, v in SEES.items() if k != "ls -ld"}
        assert real == {"own": SEES, "other": expected_other}, (options, viewer)
        assert real_self == sees_self, (options, viewer)
        # the caller's own entry (not in the table) answers as Linux's, its task/<tid> too; it
        # is listed only where hidepid hides the others (issue 10: an unprivileged ps there
        # needs a pid to list); elsewhere the listing is the table's alone
        hides = options.split(",")[0] in ("hidepid=2", "hidepid=invisible", "hidepid=ptraceable")
        assert mine == {**sees_self, "listed": hides}, (options, viewer)
        assert got == real, (options, viewer)
