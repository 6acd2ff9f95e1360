#!/usr/bin/env bash
# Wait for one process of a pidfs-fuse mount to end, through its handle file, and say how.
#
#   examples/wait-for-exit.sh MOUNT PID
#
#   $ examples/wait-for-exit.sh /tmp/m 1234        # blocks until 1234 ends, then:
#   1234 exited 3
#   1234 was killed by signal 9 (KILL)
#   1234 was killed by signal 11 (SEGV) and dumped core
#
# How it works: opening MOUNT/PID/pidfd binds the descriptor to that process, like
# pidfd_open(2); a later process given the same number is a different file. Reading the handle
# blocks until the process has ended and returns "exited N", "killed N" or "dumped N" on the
# first line, then "Key:<TAB>value" lines (Pid, NSpid, Ino, and ExitCode once reaped).
#
# A read the server has taken cannot be interrupted (the FUSE server has no interrupt hook):
# Ctrl-C takes effect when the process ends. Use a program that polls (examples/wait_many.py)
# when you need a timeout.
#
# Exit status: 0 when the end was reported, 1 when PID cannot be waited for, 2 on bad usage.
set -u

prog=${0##*/}
usage() {
    echo "usage: $prog MOUNT PID"
    echo "Wait until process PID of the pidfs-fuse mount at MOUNT ends and print how it ended."
}

case "${1-}" in
    -h|--help) usage; exit 0 ;;
esac
if [ $# -ne 2 ]; then
    usage >&2
    exit 2
fi
mount=$1 pid=$2

if ! [[ $pid =~ ^[1-9][0-9]*$ ]]; then
    echo "$prog: PID must be a positive number, not '$pid'" >&2
    exit 2
fi
if [ ! -e "$mount/.control" ]; then
    echo "$prog: $mount is not a pidfs-fuse mount (no $mount/.control)" >&2
    exit 1
fi
if [ ! -d "$mount/$pid" ]; then
    echo "$prog: no process $pid in $mount" >&2
    exit 1
fi

handle=$mount/$pid/pidfd
if ! { exec 3<"$handle"; } 2>/dev/null; then
    # /<tid>/pidfd of a thread does not exist (pidfd_open(2) gives ENOENT without
    # PIDFD_THREAD); its process is named by the Tgid line of its status
    tgid=$(sed -n 's/^Tgid:\t//p' "$mount/$pid/status" 2>/dev/null)
    if [ -n "$tgid" ] && [ "$tgid" != "$pid" ]; then
        echo "$prog: $pid is a thread of process $tgid; wait for $tgid, or read $mount/$tgid/task/$pid/pidfd" >&2
    else
        echo "$prog: cannot open $handle (the process is gone)" >&2
    fi
    exit 1
fi

# blocks until the process (every thread of it) has ended
if ! read -r how code <&3; then
    echo "$prog: reading $handle failed" >&2
    exit 1
fi
exec 3<&-

case $how in
    exited) echo "$pid exited $code" ;;
    killed) echo "$pid was killed by signal $code ($(kill -l "$code" 2>/dev/null || echo "?"))" ;;
    dumped) echo "$pid was killed by signal $code ($(kill -l "$code" 2>/dev/null || echo "?")) and dumped core" ;;
    *) echo "$prog: unexpected answer from $handle: $how $code" >&2; exit 1 ;;
esac
