"""The real backend: agents in a fresh pid namespace, read through that namespace's /proc.

``RealSide()`` starts ``unshare --pid --fork --mount-proc PYTHON agent.py SOCKET`` (root only);
the agent it runs is the namespace's init. The driver listens on a SOCK_SEQPACKET socket in a
private temporary directory; every task the sequence creates connects to it and says hello, and
SO_PEERCRED gives the driver its process's host pid, from which it opens a pidfd of its own: a
kill "from the host" is sent through that pidfd, never through a number that could be reused by
an unrelated host process.

The namespace's /proc (the one ``--mount-proc`` mounted) is read from outside through
``/proc/<host pid of its init>/root/proc``: no reader process is added to the namespace.

``close()`` kills the namespace's init with SIGKILL through the driver's pidfd (the kernel then
kills every other member), waits for ``unshare`` (killing it by its pid if it lingers), and
removes the directory. It runs in ``finally`` of every user; nothing outlives a run.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import compare as C
from .ops import Op

AGENT = Path(__file__).with_name("agent.py")
REPLY_TIMEOUT = float(os.environ.get("PIDFS_ORACLE_REPLY_TIMEOUT", "5"))
CLONE_PIDFD, CLONE_PARENT, CLONE_NEWPID = 0x1000, 0x8000, 0x20000000


class AgentError(Exception):
    """The real side broke (an agent crashed, did not answer, or answered with a bug)."""


def available() -> str | None:
    """Why the real side cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the real side needs root (unshare --pid, clone3 set_tid, ns_last_pid)"
    if shutil.which("unshare") is None:
        return "unshare(1) is not installed"
    return None


class RealSide:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="pidfs-oracle-")
        self.path = os.path.join(self.dir, "sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        self.listener.bind(self.path)
        self.listener.listen(64)
        self.channels: dict[int, socket.socket] = {}  # oracle-namespace tid -> its agent thread
        self.host_pidfd: dict[int, int] = {}  # oracle-namespace tid -> the driver's pidfd of its process
        self._pidfd_of_host_pid: dict[int, int] = {}
        self.seq = 0
        self.proc: subprocess.Popen | None = None
        self.init_pidfd: int | None = None
        self.proc_fd: int | None = None
        self.log = open(os.path.join(self.dir, "agents.log"), "w+b")  # noqa: SIM115 - closed in close()
        try:
            self.proc = subprocess.Popen(
                ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-S", "-E", "-B",
                 str(AGENT), self.path],
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, close_fds=True)
            hello = self.accept()
            if hello.get("kind") != "init" or hello["nspid"] != [1]:
                raise AgentError(f"the first agent is not the namespace's init: {hello}")
            self.pid_max = hello["pid_max"]
            self.init_host_pid = hello["host_pid"]
            self.init_pidfd = self.host_pidfd[1]
            # held open: the path through /proc/<init>/root stops working once init's leader
            # thread exits, the mount it reached does not
            self.proc_fd = os.open(f"/proc/{self.init_host_pid}/root/proc", os.O_PATH | os.O_DIRECTORY)
            self.proc_root = f"/proc/self/fd/{self.proc_fd}"
        except BaseException:
            self.close()
            raise

    # -- connections ---------------------------------------------------------------------------

    def accept(self) -> dict:
        self.listener.settimeout(REPLY_TIMEOUT)
        try:
            conn, _ = self.listener.accept()
        except TimeoutError:
            raise AgentError(f"no new task connected within {REPLY_TIMEOUT}s ({self.agent_log()})") from None
        conn.settimeout(REPLY_TIMEOUT)
        hello = json.loads(conn.recv(1 << 16))
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        host_pid = struct.unpack("3i", creds)[0]
        hello["host_pid"] = host_pid
        tid = hello["nspid"][0]
        old = self.channels.pop(tid, None)
        if old is not None:
            old.close()
        self.channels[tid] = conn
        if hello["kind"] != "thread" or host_pid not in self._pidfd_of_host_pid:
            fd = os.pidfd_open(host_pid)
            stale = self._pidfd_of_host_pid.pop(host_pid, None)
            self._pidfd_of_host_pid[host_pid] = fd
            if stale is not None:
                self._retire_pidfd(stale)
        self.host_pidfd[tid] = self._pidfd_of_host_pid[host_pid]
        return hello

    def _retire_pidfd(self, fd: int) -> None:
        if fd not in self.host_pidfd.values():
            os.close(fd)

    def send(self, tid: int, req: dict) -> int:
        self.seq += 1
        req["seq"] = self.seq
        conn = self.channels.get(tid)
        if conn is None:
            raise AgentError(f"no agent for task {tid}")
        try:
            conn.send(json.dumps(req).encode())
        except OSError as e:
            raise AgentError(f"task {tid} does not take commands: {e}") from None
        return self.seq

    def reply(self, tid: int, seq: int, timeout: float = REPLY_TIMEOUT) -> dict:
        conn = self.channels[tid]
        deadline = time.monotonic() + timeout
        while True:
            conn.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                data = conn.recv(1 << 16)
            except (TimeoutError, OSError):
                raise AgentError(f"task {tid} did not answer command {seq} in {timeout}s") from None
            if not data:
                raise AgentError(f"task {tid} closed its channel before answering command {seq}")
            rep = json.loads(data)
            if "bug" in rep:
                raise AgentError(f"agent {tid} failed: {rep['bug']}")
            if rep.get("seq") == seq:
                return rep

    def call(self, tid: int, req: dict, timeout: float = REPLY_TIMEOUT) -> dict:
        return self.reply(tid, self.send(tid, req), timeout)

    # -- operations ----------------------------------------------------------------------------

    def apply(self, op: Op, expect_reply: bool) -> tuple | None:
        """Run ``op``; its result as ("ok", value) / ("errno", name), or None when no reply is
        expected (the acting task exits or stops by its own call)."""
        fn = getattr(self, "op_" + op.name)
        return fn(op, expect_reply)

    def _simple(self, op: Op, expect: bool, req: dict) -> tuple | None:
        seq = self.send(op.who, req)  # type: ignore[arg-type]
        if not expect:
            return None
        return self._result(self.reply(op.who, seq))  # type: ignore[arg-type]

    @staticmethod
    def _result(rep: dict) -> tuple:
        if "errno" in rep:
            e = rep["errno"]
            return ("errno", "?" if e == -1 else errno.errorcode.get(e, str(e)))
        return ("ok", rep["ok"])

    def op_clone(self, op: Op, expect: bool):
        flags = ((CLONE_PARENT if op.flag("parent") else 0) | (CLONE_NEWPID if op.flag("newpid") else 0)
                 | (CLONE_PIDFD if "pidfd" in op.opts else 0))
        set_tid = [int(x) for x in op.opts["set_tid"].split(",")] if op.opts.get("set_tid") else []
        req = {"op": "clone", "flags": flags, "exit_signal": op.num("exit_signal", 17),
               "set_tid": set_tid, "handle": op.num("pidfd")}
        res = self._simple(op, True, req)
        if res[0] == "ok":  # type: ignore[index]
            self.accept()
        return res

    def op_thread(self, op: Op, expect: bool):
        res = self._simple(op, True, {"op": "thread"})
        if res[0] == "ok":  # type: ignore[index]
            self.accept()
        return res

    def op_exit(self, op: Op, expect: bool):
        self.send(op.who, {"op": "exit", "code": op.pos[1]})  # type: ignore[arg-type]

    def op_exit_group(self, op: Op, expect: bool):
        self.send(op.who, {"op": "exit_group", "code": op.pos[1]})  # type: ignore[arg-type]

    def op_kill(self, op: Op, expect: bool):
        nr, sig = op.pos
        if op.who is None:
            fd = self.host_pidfd.get(nr)
            if fd is None:
                raise AgentError(f"the driver has no pidfd for task {nr}")
            try:
                signal.pidfd_send_signal(fd, sig)
            except OSError as e:
                return ("errno", errno.errorcode.get(e.errno or 0, str(e.errno)))
            return ("ok", 0)
        return self._simple(op, expect, {"op": "kill", "pid": nr, "sig": sig})

    def op_sigaction(self, op: Op, expect: bool):
        return self._simple(op, expect, {"op": "sigaction", "sig": op.pos[1], "ignore": op.flag("ign")})

    def op_setsid(self, op: Op, expect: bool):
        return self._simple(op, expect, {"op": "setsid"})

    def op_setpgid(self, op: Op, expect: bool):
        return self._simple(op, expect, {"op": "setpgid", "pid": op.pos[1], "pgid": op.pos[2]})

    def op_subreaper(self, op: Op, expect: bool):
        return self._simple(op, expect, {"op": "subreaper", "on": op.flag("on")})

    def op_unshare(self, op: Op, expect: bool):
        return self._simple(op, expect, {"op": "unshare"})

    def op_setns(self, op: Op, expect: bool):
        return self._simple(op, expect, {"op": "setns", "pid": op.pos[1]})

    def op_ns_last_pid(self, op: Op, expect: bool):
        return self._simple(op, expect, {"op": "ns_last_pid", "value": op.pos[1]})

    def op_pidfd_open(self, op: Op, expect: bool):
        flags = (0o200 if op.flag("thread") else 0) | (os.O_NONBLOCK if op.flag("nonblock") else 0)
        return self._simple(op, expect, {"op": "pidfd_open", "pid": op.pos[1], "flags": flags,
                                         "handle": op.num("handle")})

    def op_pidfd_close(self, op: Op, expect: bool):
        return self._simple(op, expect, {"op": "pidfd_close", "handle": op.pos[1]})

    def op_pidfd_kill(self, op: Op, expect: bool):
        return self._simple(op, expect, {"op": "pidfd_kill", "handle": op.pos[1], "sig": op.pos[2]})

    def op_exec(self, op: Op, expect: bool):
        tid = op.who
        seq = self.send(tid, {"op": "exec", "comm": op.opts["comm"]})  # type: ignore[arg-type]
        rep = self.reply(tid, seq)  # type: ignore[arg-type]
        res = self._result(rep)
        if res[0] == "ok" and res[1] != tid:  # a non-leader took over the leader's pid
            self.channels[res[1]] = self.channels.pop(tid)  # type: ignore[arg-type]
            self.host_pidfd[res[1]] = self.host_pidfd[tid]  # type: ignore[index]
        return res

    def op_wait(self, op: Op, expect: bool):
        idtype, ident, handle = 0, 0, None
        if "pidfd" in op.opts:
            idtype, handle = os.P_PIDFD, op.num("pidfd")
        elif "pid" in op.opts:
            idtype, ident = os.P_PID, op.num("pid")
        elif "pgid" in op.opts:
            idtype, ident = os.P_PGID, op.num("pgid")
        res = self._simple(op, expect, {"op": "waitid", "idtype": idtype, "id": ident,
                                        "options": op.num("options"), "handle": handle})
        if res is not None and res[0] == "ok" and res[1] is not None:
            si_pid, si_code, si_status = res[1]
            kind = {1: "exited", 2: "killed", 3: "dumped", 5: "stopped", 6: "continued"}.get(si_code, f"code{si_code}")
            res = ("ok", [si_pid, kind, si_status])
        return res

    # -- what is compared ----------------------------------------------------------------------

    def _read(self, path: str) -> str | None:
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8", "surrogateescape")
        except OSError:
            return None

    def snapshot(self, askers: dict[int, int]) -> dict:
        """The namespace's /proc as the comparison needs it; ``askers`` maps each process
        (tgid) whose handles are compared to the thread (tid) to ask."""
        root = self.proc_root
        snap: dict = {}
        labels = C.Labels()
        try:
            tgids = sorted(int(n) for n in os.listdir(root) if n.isdigit())
        except OSError as e:
            raise AgentError(f"cannot list {root}: {e}") from None
        for tgid in tgids:
            base = f"{root}/{tgid}"
            C.add_group_stat(snap, tgid, self._read(f"{base}/stat"))
            try:
                tids = [int(n) for n in os.listdir(f"{base}/task")]
            except OSError:
                snap[f"{tgid}/task"] = "unreadable"
                continue
            # task/ lists the leader first, then the others in creation order; readdir gives that
            for tid in tids:
                tb = f"{base}/task/{tid}"
                status = self._read(f"{tb}/status")
                C.add_task_files(snap, tgid, tid, status, self._read(f"{tb}/stat"))
                for link in ("pid", "pid_for_children"):
                    try:
                        snap[f"{tgid}/{tid}/ns:{link}"] = labels(os.readlink(f"{tb}/ns/{link}"))
                    except OSError as e:
                        snap[f"{tgid}/{tid}/ns:{link}"] = errno.errorcode.get(e.errno or 0, "?")
            snap[f"{tgid}/task"] = " ".join(map(str, tids))
        snap["ls"] = " ".join(map(str, tgids))
        for tgid, tid in askers.items():
            try:
                rep = self.call(tid, {"op": "handles"}, timeout=2.0)
            except AgentError as e:
                snap[f"fds:{tgid}"] = f"no answer: {e}"
                continue
            if "ok" not in rep:
                snap[f"fds:{tgid}"] = f"errno {rep.get('errno')}"
                continue
            hs = {int(h): v for h, v in rep["ok"].items()}
            snap[f"fds:{tgid}"] = " ".join(map(str, sorted(hs)))
            for h, (mask, code, pid_line) in hs.items():
                snap[f"pidfd:{h}:poll"] = mask
                snap[f"pidfd:{h}:exit"] = code
                snap[f"pidfd:{h}:fdinfo_pid"] = pid_line
        return snap

    def agent_log(self) -> str:
        try:
            self.log.flush()
            self.log.seek(0)
            text = self.log.read().decode(errors="replace").strip()
            self.log.seek(0, 2)
        except (OSError, ValueError):
            return "no agent log"
        return ("agent log:\n" + text[-3000:]) if text else "agent log empty"

    # -- teardown ------------------------------------------------------------------------------

    def close(self) -> None:
        try:
            if self.init_pidfd is not None:
                try:
                    signal.pidfd_send_signal(self.init_pidfd, signal.SIGKILL)
                except OSError:
                    pass
            if self.proc is not None:
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()  # unshare itself, by its pid (Popen knows it)
                    self.proc.wait(timeout=10)
        finally:
            for conn in self.channels.values():
                conn.close()
            self.channels.clear()
            for fd in set(self._pidfd_of_host_pid.values()):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._pidfd_of_host_pid.clear()
            if self.proc_fd is not None:
                os.close(self.proc_fd)
                self.proc_fd = None
            self.host_pidfd.clear()
            self.listener.close()
            self.log.close()
            shutil.rmtree(self.dir, ignore_errors=True)
