#!/usr/bin/env bash
# A short tour of pidfs_fuse: mount the embedded default table, look at it with the usual tools,
# change it through the control plane, wait for an exit through a handle file, unmount.
# Run as root, or as a user who may open /dev/fuse. `make tour` runs it after setting up.
set -euo pipefail

PIDFS=${PIDFS:-pidfs-fuse}
MNT=$(mktemp -d /tmp/pidfs-tour.XXXXXX)
cleanup() {
    "$PIDFS" unmount "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null || true
    rmdir "$MNT" 2>/dev/null || true
}
trap cleanup EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { step "$*"; eval "$@"; }

run "$PIDFS" mount "$MNT"
run "ls $MNT | head -n 20 | tr '\n' ' '; echo"
run "cat $MNT/1/status | head -n 9"
run "cut -d' ' -f1-8 $MNT/1/stat"
run "$PIDFS exec $MNT -- sh -c 'ps -ef | head -n 15'"
run "$PIDFS exec $MNT -- sh -c 'pstree -p -A -l 1 | head -n 12'"

step "$PIDFS ctl $MNT clone 1 comm=demo argv='demo --serve'"
pid=$("$PIDFS" ctl "$MNT" clone 1 comm=demo "argv=demo --serve")
echo "$pid"
run "grep -E '^(Name|State|PPid)' $MNT/$pid/status"

step "read -r how code < $MNT/$pid/pidfd   # blocks until $pid exits (in the background)"
( read -r how code < "$MNT/$pid/pidfd"; echo "handle says: $pid $how $code" ) &
waiter=$!
run "$PIDFS ctl $MNT kill $pid TERM"
wait "$waiter"
run "grep State $MNT/$pid/status"
run "$PIDFS ctl $MNT wait 1 pid=$pid"
run "ls $MNT/$pid 2>&1 || true"
run "$PIDFS ctl $MNT help | head -n 8"
step "$PIDFS unmount $MNT"
"$PIDFS" unmount "$MNT"
trap - EXIT
rmdir "$MNT"
echo "tour done"
