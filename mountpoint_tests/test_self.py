"""``/proc/self`` and ``/proc/thread-self`` are the caller (issue 10, point 5), with real clients.

A caller that the table has no process for sees a stand-in that is its real self where tools
rely on it: ``status``'s Uid/Gid/Groups lines, ``exe``/``cwd``/``root``, ``maps``/``mounts``/
``mountinfo`` and ``fd/`` (whose links open, through a real procfs the caller reaches) are
compared with the caller's own real /proc, read by the same process. Its threads resolve
(``thread-self``, ``task/<tid>``), inside ``pidfs-fuse exec`` too, and no other process
reaches it. (The unprivileged ``ps`` on a hidepid=2 mount is in test_nonroot.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from .conftest import in_private_proc, run_cli

PY = sys.executable


def _py(code: str, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-c", textwrap.dedent(code), *args], capture_output=True,
                          text=True, timeout=60, **kw)


def _exec(mnt, *cmd: str, **kw) -> subprocess.CompletedProcess:
    return run_cli("exec", str(mnt.path), "--", *cmd, check=False, **kw)


def test_status_shows_the_callers_real_ids_and_its_directory_its_uid(mount_table):
    """A caller with different real, effective and saved ids (what a setuid program has) and
    supplementary groups: the mount's status lines are the real /proc's, byte for byte."""
    mnt = mount_table("-o", "allow_other", public=True)
    r = _py("""
        import json, os, sys
        m = sys.argv[1]
        os.setgroups([5, 6])
        os.setresgid(1001, 1002, 1003)
        os.setresuid(65534, 1000, 4242)
        def lines(path):
            with open(path, "rb") as f:
                return [l.decode() for l in f.read().splitlines()
                        if l.split(b"\\t")[0] in (b"Uid:", b"Gid:", b"Groups:")]
        st = os.stat(m + "/self/")
        print(json.dumps([lines("/proc/self/status"), lines(m + "/self/status"),
                          [st.st_uid, st.st_gid]]))
        """, mnt.path)
    assert r.returncode == 0, r.stderr
    real, ours, owner = json.loads(r.stdout)
    assert real == ["Uid:\t65534\t1000\t4242\t1000", "Gid:\t1001\t1002\t1003\t1002",
                    "Groups:\t5 6 "]
    assert ours == real
    assert owner == [1000, 1002]  # the fsuid/fsgid FUSE reports: ids the caller has


def test_exe_cwd_root_and_mount_tables_are_the_callers_own(mnt, tmp_path):
    r = _py("""
        import json, os, sys
        m = sys.argv[1]
        def both(name, read):
            return [read("/proc/self/" + name), read(m + "/self/" + name)]
        def data(p):
            with open(p) as f:
                return f.read()
        def stable(name):  # other mounts come and go (tests running beside): read between two equal reads
            for _ in range(20):
                before, ours, after = [data(p + name) for p in ("/proc/self/", m + "/self/", "/proc/self/")]
                if before == after:
                    break
            return [before, ours]
        out = {n: both(n, os.readlink) for n in ("exe", "cwd", "root")}
        out.update({n: stable(n) for n in ("mounts", "mountinfo")})
        real, ours = both("maps", data)
        paths = lambda t: sorted({l.split()[-1] for l in t.splitlines() if len(l.split()) == 6})
        out["maps"] = [[real.splitlines()[0], paths(real)], [ours.splitlines()[0], paths(ours)]]
        print(json.dumps(out))
        """, mnt.path, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["exe"] == [os.path.realpath(PY)] * 2
    assert got["cwd"] == [str(tmp_path)] * 2
    assert got["root"] == ["/", "/"]
    for name in ("mounts", "mountinfo", "maps"):
        real, ours = got[name]
        assert ours == real, name
    assert f" {mnt.path} fuse.pidfs " in got["mounts"][1]


def test_fd_lists_the_callers_descriptors_and_each_link_opens(mnt):
    r = _py("""
        import json, os, stat, sys
        m = sys.argv[1]
        r, w = os.pipe()
        os.write(w, b"through the pipe")
        os.close(w)
        fds = [sorted(os.listdir("/proc/self/fd"), key=int), sorted(os.listdir(m + "/self/fd"), key=int)]
        link = os.readlink(f"{m}/self/fd/{r}")
        modes = [stat.S_IMODE(os.lstat(f"{p}/self/fd/{r}").st_mode) for p in ("/proc", m)]
        with open(f"{m}/self/fd/{r}", "rb") as f:
            data = f.read().decode()
        print(json.dumps([fds, r, link, modes, data]))
        """, mnt.path)
    assert r.returncode == 0, r.stderr
    (real_fds, fds), rfd, link, modes, data = json.loads(r.stdout)
    assert fds == real_fds and str(rfd) in fds
    assert link == f"/proc/thread-self/fd/{rfd}"  # /proc is a real procfs for this caller
    assert modes == [0o500, 0o500]  # lr-x------: open for reading
    assert data == "through the pipe"


SHELL_FDS = "cat <(echo hi); cat /dev/stdin <<< x; ls /dev/fd/; readlink /dev/fd/0; ls -l /dev/fd/ | wc -l"


def test_process_substitution_dev_stdin_and_dev_fd_work_inside_exec(mnt):
    """Inside exec the mount covers /proc; the real one is on /proc/.host-proc, where fd/
    links lead (relative to the mount, so the walk stays in the caller's copy of it)."""
    r = _exec(mnt, "bash", "-c", SHELL_FDS, stdin=subprocess.DEVNULL)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == "hi\nx\n0\n1\n2\n3\n/dev/null\n5\n"


FILES = """
    import json, os, psutil
    d = os.environ["D"]
    with open(d + "/kept", "w") as f:
        f.write("kept")
    kept = os.open(d + "/kept", os.O_RDONLY)
    gone = os.open(d + "/gone", os.O_RDWR | os.O_CREAT)
    os.write(gone, b"deleted but open")
    os.unlink(d + "/gone")
    r, w = os.pipe()
    links = {n: os.readlink(f"/proc/self/fd/{fd}") for n, fd in (("kept", kept), ("gone", gone),
                                                                  ("pipe", r))}
    data = {n: open(f"/proc/self/fd/{fd}", "rb").read().decode() for n, fd in
            (("kept", kept), ("gone", gone))}
    print(json.dumps([os.getpid(), links, data, [f.path for f in psutil.Process().open_files()]]))
"""


def test_a_files_link_is_its_name_and_a_deleted_ones_still_opens_inside_exec(mnt, tmp_path):
    """Where the name leads the caller to the same file it is the link (lsof, psutil's
    open_files() and ls -l read it); a deleted file, a pipe go through the real procfs."""
    r = _exec(mnt, PY, "-c", textwrap.dedent(FILES), env={**os.environ, "D": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    pid, links, data, open_files = json.loads(r.stdout)
    assert pid == 4_000_000
    fds = {n: int(link.rsplit("/", 1)[1]) for n, link in links.items() if n != "kept"}
    assert links == {"kept": f"{tmp_path}/kept",
                     "gone": f"../../.host-proc/thread-self/fd/{fds['gone']}",
                     "pipe": f"../../.host-proc/thread-self/fd/{fds['pipe']}"}
    assert data == {"kept": "kept", "gone": "deleted but open"}
    assert open_files == [f"{tmp_path}/kept"]


def test_a_manual_bind_over_proc_works_with_the_real_proc_on_host_proc(mnt):
    script = (f"mount --rbind /proc {mnt.path}/.host-proc && mount --rbind {mnt.path} /proc && "
              f"bash -c '{SHELL_FDS}'")
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == "hi\nx\n0\n1\n2\n3\n/dev/null\n5\n"


def test_a_bare_bind_over_proc_gives_the_hosts_link_text(mnt):
    """No real procfs reachable: the link reads as the host's (a path opens, a pipe cannot)."""
    r = in_private_proc(mnt, "readlink /proc/self/fd/0; cat /proc/self/fd/0; "
                             "bash -c 'cat <(echo hi)'", stdin=subprocess.DEVNULL)
    assert r.stdout == "/dev/null\n"
    assert r.returncode == 1
    assert r.stderr == "cat: /dev/fd/63: No such file or directory\n"


THREADS = """
    import json, os, sys, threading
    m = sys.argv[1]
    ready, done = threading.Barrier(4), threading.Event()
    seen = {}
    def work():
        tid = threading.get_native_id()
        seen[tid] = [os.readlink(m + "/thread-self"), os.path.isdir(m + "/thread-self"),
                     open(m + "/thread-self/stat").read().split()[0]]
        ready.wait()
        done.wait()
    ts = [threading.Thread(target=work) for _ in range(3)]
    for t in ts:
        t.start()
    ready.wait()
    me = os.getpid()
    listed = sorted(int(n) for n in os.listdir(m + "/self/task"))
    other = max(seen)
    status = open(f"{m}/self/task/{other}/status").read()
    done.set()
    for t in ts:
        t.join()
    print(json.dumps({"me": me, "self": os.readlink(m + "/self"), "seen": seen, "listed": listed,
                      "main": os.readlink(m + "/thread-self"), "uid": status.split("Uid:")[1].split()[0]}))
"""


def _check_threads(out: str) -> None:
    got = json.loads(out)
    me = got["me"]
    tids = sorted(int(t) for t in got["seen"])
    assert got["self"] == str(me) and got["main"] == f"{me}/task/{me}"
    for tid, (link, is_dir, stat_pid) in got["seen"].items():
        assert (link, is_dir, stat_pid) == (f"{me}/task/{tid}", True, str(me))
    assert got["listed"] == sorted([me, *tids])
    assert got["uid"] == str(os.getuid())


def test_thread_self_and_task_resolve_for_a_threaded_caller(mnt):
    r = _py(THREADS, mnt.path)
    assert r.returncode == 0, r.stderr
    _check_threads(r.stdout)


def test_thread_self_and_task_resolve_inside_exec(mnt):
    r = _exec(mnt, PY, "-c", textwrap.dedent(THREADS), "/proc")
    assert r.returncode == 0, r.stderr
    _check_threads(r.stdout)
    assert json.loads(r.stdout)["me"] == 4_000_000


def test_no_other_process_reaches_a_callers_stand_in(mnt):
    """The caller's own entry answers its process only: ENOENT for anyone else, even while
    the caller holds it open."""
    p = subprocess.Popen([PY, "-c", textwrap.dedent("""
        import os, sys
        fd = os.open(sys.argv[1] + "/self/status", os.O_RDONLY)
        print(os.getpid(), os.read(fd, 6).decode(), flush=True)
        sys.stdin.read()
        """), mnt.path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        pid, head = p.stdout.readline().split()
        assert head == "Name:"
        for path in (f"{mnt.path}/{pid}", f"{mnt.path}/{pid}/status", f"{mnt.path}/{pid}/fd"):
            try:
                os.stat(path)
                raise AssertionError(f"{path} resolved for another process")
            except FileNotFoundError:
                pass
        assert pid not in os.listdir(mnt.path)
    finally:
        p.stdin.close()
        p.wait(timeout=10)
        p.stdout.close()


def test_with_a_trigger_armed_the_host_files_are_still_the_callers(mnt):
    """An armed trigger makes every open render per read: a stand-in's reads stay the host's."""
    mnt.client.on("read", "1/status", "set 1 comm=x", times=1)
    r = _py("""
        import sys
        m = sys.argv[1]
        for _ in range(20):  # other mounts come and go (tests running beside)
            before, ours, after = [open(p + "/self/mountinfo").read() for p in ("/proc", m, "/proc")]
            if before == after:
                break
        print(ours == before)
        """, mnt.path)
    assert (r.returncode, r.stdout) == (0, "True\n"), r.stderr


def test_every_entry_of_a_stand_in_answers_without_an_internal_error(mnt):
    """Each row of the caller's own directory is read, listed or followed by the caller; none
    fails with EIO (the mount's answer to a bug)."""
    r = _py("""
        import errno, os, sys
        m = sys.argv[1] + "/self"
        bad = []
        for name in sorted(os.listdir(m)):
            p = f"{m}/{name}"
            try:
                if os.path.islink(p):
                    os.readlink(p)
                elif os.path.isdir(p):
                    for sub in os.listdir(p):
                        os.lstat(f"{p}/{sub}")
                else:
                    with open(p, "rb") as f:
                        f.read()
            except OSError as e:
                if e.errno == errno.EIO:
                    bad.append(name)
        print(sorted(os.listdir(m + "/map_files")), bad)
        """, mnt.path)
    assert (r.returncode, r.stdout) == (0, "[] []\n"), r.stderr
