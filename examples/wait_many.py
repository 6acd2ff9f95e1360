#!/usr/bin/env python3
"""Wait for many processes of a pidfs-fuse mount at once and print each end as it happens.

The pattern (the same as with real pidfds from pidfd_open(2)):

1. open ``MOUNT/PID/pidfd`` for every process first. The open binds the descriptor to that
   process, so a number given to a new process later can never be confused with it;
2. register every descriptor in one ``select.epoll``. A handle becomes readable (EPOLLIN) when
   its process has ended (all of its threads), and also hangs up (EPOLLHUP) once it is reaped;
3. when one is readable, read it: the first line is ``exited N``, ``killed N`` or ``dumped N``,
   then ``Key:<TAB>value`` lines (``Pid``, ``NSpid``, ``Ino``, and ``ExitCode`` once reaped).

Only the standard library is used. Run it with any Python 3.9+.
"""

from __future__ import annotations

import argparse
import errno
import os
import resource
import select
import signal
import sys
import time

EXAMPLES = """\
examples:
  %(prog)s /tmp/m 1234 1235 1236
      1235 exited 0
      1234 killed by signal 15 (SIGTERM)
      1236 exited 3
  %(prog)s --timeout 5 /tmp/m 1234     give up after 5 seconds (exit status 3)
  %(prog)s --first /tmp/m 1234 1235    stop at the first end
  %(prog)s --verbose /tmp/m 1234       also print the handle's Key: value lines

exit status: 0 when every process (or, with --first, one) ended; 1 when a PID cannot be
waited for (no such process, or a thread: use MOUNT/TGID/task/TID/pidfd); 2 on bad usage;
3 on timeout.
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\nOnly the standard library")[0],
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mount", metavar="MOUNT", help="where pidfs-fuse is mounted")
    ap.add_argument("pids", metavar="PID", nargs="+", type=positive_int,
                    help="process ids as the mount shows them")
    ap.add_argument("--timeout", metavar="SECONDS", type=float, default=None,
                    help="give up after this long (default: wait as long as it takes)")
    ap.add_argument("--first", action="store_true", help="stop after the first process ends")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="print the whole text each handle returns, indented")
    return ap.parse_args(argv)


def positive_int(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}")
    return int(text)


def describe(pid: int, text: str) -> str:
    """One line for the first line of a handle's text ("killed 9" -> "killed by signal 9 ...")."""
    how, _, code = text.partition("\n")[0].partition(" ")
    if how == "exited":
        return f"{pid} exited {code}"
    try:
        name = signal.Signals(int(code)).name
    except ValueError:
        name = "?"
    end = " and dumped core" if how == "dumped" else ""
    return f"{pid} killed by signal {code} ({name}){end}"


def open_handles(mount: str, pids: list[int]) -> dict[int, int]:
    """fd -> pid for every pid; exits with status 1 naming the first pid that cannot be opened."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = len(pids) + 64
    if soft != resource.RLIM_INFINITY and soft < want:  # many handles: raise the soft limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY
                                                    else min(want, hard), hard))
    fds: dict[int, int] = {}
    for pid in dict.fromkeys(pids):
        try:
            # O_NONBLOCK: a read never sleeps in the server; we only read what epoll says is ready
            fds[os.open(f"{mount}/{pid}/pidfd", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)] = pid
        except OSError as e:
            why = {errno.ENOENT: "no such process (or a thread: wait for its process)",
                   errno.ESRCH: "already reaped"}.get(e.errno, e.strerror)
            sys.exit(f"{sys.argv[0]}: {pid}: {why}")
    return fds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not os.path.exists(os.path.join(args.mount, ".control")):
        print(f"{sys.argv[0]}: {args.mount} is not a pidfs-fuse mount", file=sys.stderr)
        return 1
    fds = open_handles(args.mount, args.pids)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    with select.epoll() as ep:
        for fd in fds:
            ep.register(fd, select.EPOLLIN)
        while fds:
            left = -1 if deadline is None else max(0.0, deadline - time.monotonic())
            events = ep.poll(left)
            if not events and deadline is not None and time.monotonic() >= deadline:
                print(f"{sys.argv[0]}: timed out; still running: "
                      + " ".join(str(p) for p in sorted(fds.values())), file=sys.stderr)
                return 3
            for fd, _ in events:
                text = os.pread(fd, 4096, 0).decode()
                pid = fds.pop(fd)
                ep.unregister(fd)
                os.close(fd)
                print(describe(pid, text), flush=True)
                if args.verbose:
                    print("".join(f"    {ln}\n" for ln in text.splitlines()[1:]), end="", flush=True)
                if args.first:
                    return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
