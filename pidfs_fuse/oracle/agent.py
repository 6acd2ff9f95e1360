"""The real side's agent: a small process that obeys commands over a socket, one thread per task.

Run as a script (``python -S -E -B agent.py SOCKET``), never imported by the package: it uses the
standard library only and starts in a few tens of milliseconds. The first agent is the init of
a fresh pid namespace (``unshare --pid --fork --mount-proc``); every other task of the run is
made by a command to an agent, so the namespace holds exactly the tasks the sequence asked for.

Each task (thread) has its own SOCK_SEQPACKET connection to the driver: on start it connects to
SOCKET and says hello (its tid and pid as seen from inside); then it runs one command at a time
and answers ``{"ok": value}`` or ``{"errno": n}``. A forked child closes its parent's sockets and
pidfds (they were copies) and connects anew. Nothing here creates a thread or a process that a
command did not ask for: processes come from raw clone3() (with Python's own before/after fork
hooks, exactly what os.fork() does), threads from ``threading.Thread``, exit from the raw
exit()/exit_group() system calls.

execve re-executes this script with the new comm; the exec'ing thread's socket is the only
descriptor kept across it (everything else is close-on-exec, as every pidfd is), and the new
image restores the exact set of ignored signals it had (Python itself would ignore SIGPIPE and
SIGXFSZ and catch SIGINT) before answering.
"""

import ctypes
import errno
import fcntl
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import traceback

libc = ctypes.CDLL(None, use_errno=True)  # releases the GIL around calls
libc_gil = ctypes.PyDLL(None, use_errno=True)  # holds it (clone3: the child must own the GIL)
pyapi = ctypes.pythonapi

SYS_exit = 60
SYS_rt_sigaction = 13
SYS_clone3 = 435
SYS_gettid = 186
CLONE_PIDFD = 0x1000
CLONE_NEWPID = 0x20000000
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
SIG_DFL, SIG_IGN = 0, 1
PIDFD_GET_INFO = (3 << 30) | (64 << 16) | (0xFF << 8) | 11  # _IOWR(PIDFS_IOCTL_MAGIC, 11, 64 bytes)
PIDFD_INFO_EXIT = 0x8

libc.signal.restype = ctypes.c_void_p
libc.signal.argtypes = (ctypes.c_int, ctypes.c_void_p)

SOCK_PATH = ""
channels: dict = {}  # tid -> socket of this process's threads
handles: dict = {}  # handle id (the driver's) -> descriptor
lock = threading.Lock()


def gettid():
    return libc.syscall(SYS_gettid)


def set_comm(comm):
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(comm.encode()), 0, 0, 0)


def set_ignored(mask):
    """Exactly the signals in ``mask`` (bit n-1 for signal n, as SigIgn shows) are ignored."""
    for sig in range(1, 65):
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        handler = SIG_IGN if mask >> (sig - 1) & 1 else SIG_DFL
        if 32 <= sig <= 33:  # glibc's signal() refuses its reserved ones: rt_sigaction() itself
            act = ctypes.create_string_buffer(struct.pack("4Q", handler, 0, 0, 0), 32)
            libc.syscall(SYS_rt_sigaction, sig, act, None, 8)
        else:
            libc.signal(sig, handler)


def nspid():
    """This thread's numbers from the oracle namespace down (its /proc is that namespace's)."""
    with open("/proc/thread-self/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return [int(x) for x in line.split()[1:]]
    return []


def ignored_mask():
    with open("/proc/thread-self/status") as f:
        for line in f:
            if line.startswith("SigIgn:"):
                return int(line.split()[1], 16)
    return 0


def fail(e):
    return {"errno": e.errno if getattr(e, "errno", None) else -1}


def connect(hello):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    s.connect(SOCK_PATH)
    hello = dict(hello, tid=gettid(), pid=os.getpid(), nspid=nspid())
    s.send(json.dumps(hello).encode())
    with lock:
        channels[gettid()] = s
    return s


def serve(s):
    while True:
        data = s.recv(1 << 16)
        if not data:  # the driver is gone: so are we
            os._exit(0)
        req = json.loads(data)
        try:
            rep = COMMANDS[req["op"]](req, s)
        except OSError as e:
            rep = fail(e)
        except Exception:  # a bug in the agent: say so, never guess an errno
            rep = {"bug": traceback.format_exc()}
        if rep is not None:
            rep["seq"] = req.get("seq")
            s.send(json.dumps(rep).encode())


# -- commands -----------------------------------------------------------------------------------


def child_main(hello):
    """A new process: drop the parent's channels and pidfds (copies), connect, serve."""
    try:
        for s in list(channels.values()):
            s.close()
        channels.clear()
        for fd in handles.values():
            try:
                os.close(fd)
            except OSError:
                pass
        handles.clear()
        serve(connect(hello))
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(99)


def do_clone(req, s):
    set_tid = req.get("set_tid") or []
    flags = req["flags"]
    pidfd = ctypes.c_int(-1)
    tids = (ctypes.c_int * max(len(set_tid), 1))(*set_tid)
    args = ctypes.create_string_buffer(struct.pack(
        "11Q", flags, ctypes.addressof(pidfd) if flags & CLONE_PIDFD else 0, 0, 0,
        req["exit_signal"] & (2**64 - 1), 0, 0, 0, ctypes.addressof(tids) if set_tid else 0,
        len(set_tid), 0), 88)
    pyapi.PyOS_BeforeFork()
    r = libc_gil.syscall(ctypes.c_long(SYS_clone3), args, ctypes.c_size_t(88))
    if r == 0:
        pyapi.PyOS_AfterFork_Child()
        child_main({"kind": "process"})
    err = ctypes.get_errno()
    pyapi.PyOS_AfterFork_Parent()
    if r < 0:
        return {"errno": err}
    if flags & CLONE_PIDFD:
        handles[req["handle"]] = pidfd.value
    return {"ok": r}


def do_thread(req, s):
    started = threading.Event()

    def run():
        try:
            t = connect({"kind": "thread"})
            started.set()
            serve(t)
        except BaseException:
            traceback.print_exc()
            os._exit(98)

    try:
        threading.Thread(target=run, daemon=True).start()
    except RuntimeError:  # pthread_create failed; Python does not say with which errno
        return {"errno": -1}
    started.wait()
    return {"ok": 0}


def do_exit(req, s):
    libc.syscall(SYS_exit, req["code"])


def do_exit_group(req, s):
    os._exit(req["code"])


def do_kill(req, s):
    os.kill(req["pid"], req["sig"])
    return {"ok": 0}


def do_sigaction(req, s):
    libc.signal(req["sig"], SIG_IGN if req["ignore"] else SIG_DFL)
    return {"ok": 0}


def do_setsid(req, s):
    return errno_of(libc.setsid())  # os.setsid() does not return the new session id


def do_setpgid(req, s):
    os.setpgid(req["pid"], req["pgid"])
    return {"ok": 0}


def errno_of(r):
    return {"errno": ctypes.get_errno()} if r < 0 else {"ok": r}


def do_subreaper(req, s):
    return errno_of(libc.prctl(PR_SET_CHILD_SUBREAPER, int(req["on"]), 0, 0, 0))


def do_unshare(req, s):
    return errno_of(libc.unshare(CLONE_NEWPID))


def do_setns(req, s):
    fd = os.open(f"/proc/{req['pid']}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return errno_of(libc.setns(fd, CLONE_NEWPID))
    finally:
        os.close(fd)


def do_ns_last_pid(req, s):
    fd = os.open("/proc/sys/kernel/ns_last_pid", os.O_WRONLY)
    try:
        os.write(fd, str(req["value"]).encode())
    finally:
        os.close(fd)
    return {"ok": 0}


def do_pidfd_open(req, s):
    handles[req["handle"]] = os.pidfd_open(req["pid"], req["flags"])
    return {"ok": 0}


def do_pidfd_close(req, s):
    os.close(handles.pop(req["handle"]))
    return {"ok": 0}


def do_pidfd_kill(req, s):
    signal.pidfd_send_signal(handles[req["handle"]], req["sig"])
    return {"ok": 0}


def do_waitid(req, s):
    ident = handles[req["handle"]] if req["idtype"] == os.P_PIDFD else req["id"]
    options = req["options"]
    if options >= 1 << 31:  # __WCLONE is the sign bit of the C int
        options -= 1 << 32
    r = os.waitid(req["idtype"], ident, options)
    if r is None:
        return {"ok": None}
    return {"ok": [r.si_pid, r.si_code, r.si_status]}


def handle_state(fd):
    """(poll mask, PIDFD_INFO_EXIT's exit code or None, fdinfo's Pid: line)."""
    p = select.poll()
    p.register(fd, select.POLLIN | select.POLLRDNORM)
    mask = 0
    for _fd, ev in p.poll(0):
        mask |= ev
    buf = bytearray(64)
    code = pid_line = None
    struct.pack_into("Q", buf, 0, PIDFD_INFO_EXIT)
    try:
        fcntl.ioctl(fd, PIDFD_GET_INFO, buf)
        got, = struct.unpack_from("Q", buf, 0)
        code = struct.unpack_from("i", buf, 60)[0] if got & PIDFD_INFO_EXIT else None
    except OSError as e:
        code = None if e.errno == errno.ESRCH else f"errno {e.errno}"
    try:  # thread-self: /proc/self is the leader, which has no files once it exited
        with open(f"/proc/thread-self/fdinfo/{fd}") as f:
            pid_line = next((ln.split()[1] for ln in f if ln.startswith("Pid:")), None)
    except OSError as e:
        pid_line = f"errno {e.errno}"
    return [mask, code, pid_line]


def do_handles(req, s):
    return {"ok": {h: handle_state(fd) for h, fd in handles.items()}}


def do_exec(req, s):
    mask = ignored_mask()
    os.set_inheritable(s.fileno(), True)
    exe = sys.executable
    os.execv(exe, [exe, "-S", "-E", "-B", os.path.abspath(__file__), SOCK_PATH, "--exec",
                   str(s.fileno()), req["comm"], str(mask), json.dumps(handles), str(req["seq"])])


def do_ping(req, s):
    return {"ok": gettid()}


COMMANDS = {
    "clone": do_clone, "thread": do_thread, "exit": do_exit, "exit_group": do_exit_group,
    "kill": do_kill, "sigaction": do_sigaction, "setsid": do_setsid, "setpgid": do_setpgid,
    "subreaper": do_subreaper, "unshare": do_unshare, "setns": do_setns,
    "ns_last_pid": do_ns_last_pid, "pidfd_open": do_pidfd_open, "pidfd_close": do_pidfd_close,
    "pidfd_kill": do_pidfd_kill, "waitid": do_waitid, "handles": do_handles, "exec": do_exec,
    "ping": do_ping,
}


def main(argv):
    global SOCK_PATH
    SOCK_PATH = argv[1]
    if len(argv) > 2 and argv[2] == "--exec":
        fd, comm, mask, old_handles, seq = int(argv[3]), argv[4], int(argv[5]), json.loads(argv[6]), argv[7]
        set_ignored(mask)
        set_comm(comm)
        for h, hfd in old_handles.items():  # only those that survived the exec (none: CLOEXEC)
            try:
                if os.readlink(f"/proc/self/fd/{hfd}").startswith(("anon_inode:[pidfd]", "pidfd:")):
                    handles[h] = hfd
            except OSError:
                pass
        s = socket.socket(fileno=fd)
        os.set_inheritable(fd, False)
        with lock:
            channels[gettid()] = s
        s.send(json.dumps({"ok": nspid()[0], "seq": int(seq)}).encode())
        serve(s)
    # the namespace's init: a session of its own, the model's comm, no inherited dispositions
    os.setsid()
    set_ignored(0)
    set_comm("init")
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    serve(connect({"kind": "init", "pid_max": pid_max}))


if __name__ == "__main__":
    try:
        main(sys.argv)
    except BaseException:
        traceback.print_exc()
    os._exit(97)
