""".control speaks lines, whatever the write sizes (issue 9, point 3), on a real mount.

A line split across writes runs once, whole; a write carrying many lines runs them in order
with one reply each; the first failing line fails the write and stops it (nothing after it
runs, not even the tail of the line the write ended in); a line over the limit fails with
E2BIG and changes nothing; a last line without its newline runs at read or at close.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time

from pidfs_fuse import client
from pidfs_fuse.mount.control_file import MAX_LINE

from .conftest import Mount


def _state(m: Mount, pid: int) -> str:
    return m.client.show(pid)["State"][0]


def _open(m: Mount) -> int:
    return os.open(f"{m.path}/.control", os.O_RDWR)


def _write(fd: int, data: bytes) -> int:
    try:
        os.write(fd, data)
    except OSError as e:
        return e.errno or -1
    return 0


def _reply(fd: int) -> str:
    return os.pread(fd, 1 << 20, 0).decode()


def test_a_line_split_across_writes_runs_once_whole(mnt: Mount):
    a = mnt.new()
    fd = _open(mnt)
    try:
        assert _write(fd, b"clo") == 0
        assert _write(fd, b"ne ") == 0
        assert _write(fd, f"{a} comm=joined\n".encode()) == 0
        child = int(_reply(fd))
        assert mnt.client.show(child)["Name"] == "joined"
        assert mnt.client.show(child)["PPid"] == str(a)
        assert _write(fd, b"exit_gr") == 0
        assert _state(mnt, child) == "S"
        assert _write(fd, f"oup {child} 9\nps\n".encode()) == 0
        assert _reply(fd).startswith("PID")  # the reply of the write that completed them
    finally:
        os.close(fd)
    assert _state(mnt, child) == "Z"
    assert mnt.ctl("wait", str(a), f"pid={child}") == f"{child} exited 9\n"
    assert [r.pid for r in mnt.client.ps()].count(child) == 0  # one clone, not two


def test_a_write_of_many_lines_runs_them_in_order_one_reply_each(mnt: Mount):
    a = mnt.new()
    err, reply = mnt.ctl_raw(f"clone {a}\n\nclone {a}\nps\n".encode())
    assert err == 0
    lines = reply.splitlines()
    first, second = int(lines[0]), int(lines[1])
    assert second > first
    assert lines[2].split()[0] == "PID"  # ps's header, after both clones


def test_a_failing_line_stops_its_write_and_the_reply_says_why(mnt: Mount):
    a, b, c = mnt.new(), mnt.new(), mnt.new()
    fd = _open(mnt)
    try:
        data = f"exit_group {a} 1\nkill 99999 TERM\nexit_group {b} 2\nexit_group {c}".encode()
        assert _write(fd, data) == errno.ESRCH
        assert _reply(fd) == "error: ESRCH: no task with pid 99999 in pid namespace 4026531836\n"
        # the line the failed write ended in is refused with it: its tail does not run alone
        assert _write(fd, b" 3\n") == 0
        assert _state(mnt, c) == "S"
        assert _write(fd, f"exit_group {c} 4\n".encode()) == 0
    finally:
        os.close(fd)
    assert (_state(mnt, a), _state(mnt, b), _state(mnt, c)) == ("Z", "S", "Z")
    assert mnt.ctl("wait", "1", f"pid={c}") == f"{c} exited 4\n"


def test_a_line_over_the_limit_fails_with_e2big_and_changes_nothing(mnt: Mount):
    before = mnt.ctl("ps")
    long_comm = "x" * MAX_LINE
    err, reply = mnt.ctl_raw(f"clone 1 comm={long_comm}\n".encode())
    assert err == errno.E2BIG
    assert reply == (f"error: E2BIG: a command line of {MAX_LINE + len('clone 1 comm=')} bytes "
                     f"or more; the limit is {MAX_LINE} bytes (nothing of it was run)\n")
    assert mnt.ctl("ps") == before


def test_an_over_long_line_in_pieces_is_refused_and_the_next_line_runs(mnt: Mount):
    before = mnt.ctl("ps")
    fd = _open(mnt)
    try:
        piece = b"clone 1 comm=" + b"y" * 65536
        assert _write(fd, piece) == 0
        assert _write(fd, b"y" * 65536) == errno.E2BIG
        assert _write(fd, b"y" * 65536) == 0  # more of the refused line: dropped
        assert mnt.ctl("ps") == before
        assert _write(fd, b"yyy\nclone 1\n") == 0
        new = int(_reply(fd))
    finally:
        os.close(fd)
    assert mnt.client.show(new)["PPid"] == "1"


def test_a_max_line_in_1k_pieces_runs_as_one_line(mnt: Mount):
    fd = _open(mnt)
    try:
        assert _write(fd, b"ps") == 0
        for _ in range(MAX_LINE // 1024 - 1):
            assert _write(fd, b" " * 1024) == 0
        assert _write(fd, b"\n") == 0
        assert _reply(fd).startswith("PID")
    finally:
        os.close(fd)


def _settled(m: Mount) -> None:
    """Until the server has answered the requests queued before this one: a release is sent
    after close() returns, ahead of anything asked later (``.control`` read of ``help``)."""
    m.ctl("help")


def _until(cond, what: str) -> None:
    deadline = time.monotonic() + 10
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_a_last_line_without_newline_runs_at_read_and_at_release(mnt: Mount):
    a = mnt.new()
    fd = _open(mnt)
    try:
        assert _write(fd, f"clone {a}".encode()) == 0
        child = int(_reply(fd))  # the read runs it
        assert mnt.client.show(child)["PPid"] == str(a)
        assert _write(fd, f"exit_group {child} 3".encode()) == 0
        assert _state(mnt, child) == "S"
    finally:
        os.close(fd)  # the release after it runs the line
    _until(lambda: _state(mnt, child) == "Z", "the last line did not run at release")


def test_a_failing_last_line_at_release_is_logged_and_changes_nothing():
    # close() has returned before the release runs the line, so it cannot fail: the server
    # logs why instead
    with client.mount_table(prefix="pidfs-test-") as m:
        before = sorted(p for p in os.listdir(m.path) if p.isdigit())
        fd = os.open(m.path / ".control", os.O_RDWR)
        assert os.write(fd, b"kill 99999 TERM") == 15
        os.close(fd)
        _until(lambda: "closed .control file failed" in m.server_log(), "nothing logged")
        assert "the last line of a closed .control file failed (ESRCH): b'kill 99999 TERM'" \
            in m.server_log()
        assert sorted(p for p in os.listdir(m.path) if p.isdigit()) == before


def test_close_sends_no_flush_so_open_read_close_is_two_requests(mnt: Mount):
    path = os.path.join(mnt.path, "1", "status")
    with open(path, "rb") as f:  # the kernel learns there is no flush (one ENOSYS, uncounted)
        f.read()
    _settled(mnt)
    before = client.request_counts(mnt.path)
    for _ in range(10):
        with open(path, "rb") as f:
            assert f.read().startswith(b"Name:\t")
    _settled(mnt)
    d = client.request_delta(before, client.request_counts(mnt.path))
    # the help command's own open, write, read and release are in the count too
    assert "flush" not in d, d
    assert d["open"] == 11 and d["release"] == 11, d


def test_cat_of_10000_exit_group_lines_straddling_every_128k_boundary(mnt: Mount, tmp_path):
    parent = mnt.new()
    pids = [int(x) for x in mnt.ctl("clone", str(parent), "count=10000").split()]
    assert len(pids) == 10000
    keep = mnt.new(parent)
    # pad the lines so that every 128 KiB boundary of the file falls inside a line
    lines, size, boundary = [], 0, 128 * 1024
    for i, p in enumerate(pids):
        line = f"exit_group {p} {i % 256}".encode()
        pad = 40 + (i * 7) % 50
        line = line + b" " * pad + b"\n"
        nxt = size + len(line)
        if nxt % boundary in (0, len(line) - 1) or (size % boundary == 0 and size):
            line = b" " + line  # a boundary would land on a line start or its newline
            nxt = size + len(line)
        lines.append(line)
        size = nxt
    data = b"".join(lines)
    starts, pos = set(), 0
    for line in lines:
        starts.add(pos)
        pos += len(line)
    cuts = range(boundary, len(data), boundary)
    assert len(cuts) >= 5
    for cut in cuts:  # inside a line: not at its start, and the byte before is not a newline
        assert cut not in starts and data[cut - 1:cut] != b"\n"
    f = tmp_path / "lines"
    f.write_bytes(data)
    r = subprocess.run(f"cat {f} > {mnt.path}/.control", shell=True, capture_output=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    rows = {r.pid: r for r in mnt.client.ps()}
    assert all(rows[p].state == "Z" for p in pids)
    assert rows[keep].state != "Z" and rows[parent].state != "Z"
    # collected with one write of 10,000 lines: one reply line each, in order
    err, reply = mnt.ctl_raw(f"wait {parent} nohang\n" * 10000)
    assert err == 0
    got: dict[int, int] = {}
    for row in reply.splitlines():
        nr, how, code = row.split()
        assert how == "exited"
        got[int(nr)] = int(code)
    assert got == {p: i % 256 for i, p in enumerate(pids)}
    assert mnt.ctl("wait", str(parent), "nohang") == "0\n"  # keep is still running
