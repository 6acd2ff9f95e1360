"""A picture of a whole model: pid namespaces → processes → threads (``pidfs-fuse tree``).

Pure presentation, like ``procfs/``: a ``Kernel`` in, text out, nothing read or written. Two
renderings:

- ``render_text``: the process tree from init, pstree-like, with a namespace heading wherever a
  process lives in another pid namespace than its parent (so a container shows up under the
  shim that started it). Every task is shown with its number at each level, root first
  (``7001/60/1`` is 7001 in the root namespace, 60 one level down, 1 in its own), its state
  letter as procfs shows it (Z zombie, T stopped...), and what matters to a /proc parser:
  session leaders, subreapers, uid, how a zombie ended (the wait outcome), the pidfds its
  descriptors hold (``fd 3 → pidfd 812``) and pids with open handles. Each namespace lists the
  tagged thread-group pids that no process holds (the tagged scan's false positives, left by
  daemonizing). Threads follow their process, at most ``max_threads`` of them, then a count.
  ANSI colour on request.
- ``render_dot``: the same as a graphviz ``digraph``: one node per process (threads are counted
  in its label), one nested cluster per namespace, solid edges parent → child, dashed edges
  for descriptors holding a pidfd.

Armed triggers (``on ... do ...``, timed.py) follow the tree, one line each as ``triggers``
lists them (their pids are numbered in the mount's view, which the table does not record); the
digraph draws them as one note.

Children are shown in pid order (root-namespace numbers), threads in creation order. Processes
that the walk from init does not reach (it always does, through reparenting; the check guards
the picture against a model bug) are listed under their namespace as "unreachable".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .kernel import ExitState, Kernel, Pid, PidFd, PidNamespace, Task, describe_status

#: the threads drawn under a process before "… N more threads"
MAX_THREADS = 4

_STATE_COLOUR = {"R": "32", "Z": "31", "T": "33", "t": "33", "D": "35", "X": "31"}


@dataclass(frozen=True, slots=True)
class _Paint:
    """ANSI SGR codes, or nothing."""

    on: bool

    def __call__(self, text: str, code: str | None) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.on and text and code else text


def _armed(k: Kernel) -> list[Any]:
    """The armed triggers by id (``timed.Trigger``s; each has ``line()``)."""
    return sorted((t for ts in k.triggers.values() for t in ts), key=lambda t: t.id)


def numbers(pid: Pid) -> str:
    """A pid's number at every level, root namespace first: ``7001/60/1``."""
    return "/".join(map(str, pid.numbers))


def _processes_of(k: Kernel) -> Iterator[Task]:
    for ns in k.namespaces():
        for _nr, leader in k.iter_tgids(ns, linear=True):
            if leader.pid.ns is ns:
                yield leader


def _children(g_leader: Task) -> list[Task]:
    """Every process whose real parent is a thread of this process, in pid order."""
    kids: dict[Task, None] = {}
    for t in g_leader.group.threads:
        if t.children:
            kids.update(t.children)
    return sorted(kids, key=lambda c: c.pid.numbers[0])


def _ghosts(ns: PidNamespace) -> list[int]:
    """Tagged thread-group pids of ``ns`` that no process holds (numbers in ``ns``)."""
    idr = ns.idr
    out, nr = [], idr.next_tagged(0)
    while nr >= 0:
        pid = idr.find(nr)
        if pid is None or pid.tgid_task is None:
            out.append(nr)
        nr = idr.next_tagged(nr + 1)
    return out


def _ns_heading(ns: PidNamespace, paint: _Paint) -> str:
    bits = [f"level {ns.level}", f"pid_max {ns.pid_max}", f"last pid {ns.last_pid}"]
    if ns.child_reaper is not None and ns.level:
        bits.append(f"init {numbers(ns.child_reaper.pid)}")
    if not ns.adding:
        bits.append(paint("init gone: admits no pids", "31"))
    return paint(f"pid namespace {ns.inum}", "1;34") + " (" + ", ".join(bits) + ")"


def _end(task: Task) -> str:
    g = task.group
    kind, code = describe_status(g.group_exit_code if g.group_exit else task.exit_code)
    return f"{kind} {code}"


def _pidfd(fd: int, obj: object, paint: _Paint) -> str:
    if isinstance(obj, PidFd):
        target = numbers(obj.pid) if obj.pid.allocated else f"reaped (ino {obj.pid.ino})"
        what = "thread pidfd" if obj.thread else "pidfd"
        extra = ", autokill" if obj.autokill else ""
        return paint(f"fd {fd} → {what} {target}{extra}", "35")
    return paint(f"fd {fd} → {type(obj).__name__}", "35")


def _process_line(t: Task, paint: _Paint) -> str:
    g = t.group
    state = t.display_state
    head = f"{paint(numbers(t.pid), '1')} {t.comm} {paint(state, _STATE_COLOUR.get(state))}"
    notes: list[str] = []
    if t.exit_state is ExitState.ZOMBIE:
        notes.append(paint(_end(t), "31"))
    if g.session_leader:
        notes.append("session leader")
    elif g.session is not None and g.session.tgid_task is None:
        notes.append(paint(f"sid {g.session.nr_in(t.pid.ns)} (no such process)", "2"))
    if g.pgrp is not None and g.pgrp is t.pid and not g.session_leader:
        notes.append("group leader")
    if g.is_child_subreaper:
        notes.append("subreaper")
    if g.uid:
        notes.append(f"uid {g.uid}")
    if len(g.threads) > 1:
        notes.append(f"{len(g.threads)} threads")
    if t.pid.handles:
        notes.append(paint(f"{t.pid.handles} open handle{'s' * (t.pid.handles != 1)}", "35"))
    return " · ".join([head] + notes)


def _thread_line(t: Task, paint: _Paint) -> str:
    state = t.display_state
    line = f"{paint('thread', '2')} {numbers(t.pid)} {t.comm} {paint(state, _STATE_COLOUR.get(state))}"
    if t.pid.handles:
        line += " · " + paint(f"{t.pid.handles} open handle{'s' * (t.pid.handles != 1)}", "35")
    return line


class _Text:
    def __init__(self, k: Kernel, paint: _Paint, max_threads: int | None) -> None:
        self.k, self.paint, self.max_threads = k, paint, max_threads
        self.lines: list[str] = []
        self.seen: set[Task] = set()

    def emit(self, prefix: str, last: bool, text: str) -> str:
        """One line; returns the prefix for its children."""
        self.lines.append(prefix + ("└─ " if last else "├─ ") + text)
        return prefix + ("   " if last else "│  ")

    def namespace(self, ns: PidNamespace, members: list[Task], prefix: str, last: bool,
                  top: bool = False) -> None:
        """The heading of ``ns`` and the subtrees of ``members`` (processes of ``ns`` whose
        parent lives elsewhere), plus the namespace's ghosts."""
        if top:
            self.lines.append(_ns_heading(ns, self.paint))
            inner = prefix
        else:
            inner = self.emit(prefix, last, _ns_heading(ns, self.paint))
        ghosts = _ghosts(ns)
        for i, t in enumerate(members):
            self.process(t, inner, i == len(members) - 1 and not ghosts)
        if ghosts:
            shown = " ".join(map(str, ghosts[:20])) + (f" … ({len(ghosts)} in all)" if len(ghosts) > 20 else "")
            self.emit(inner, True, self.paint(f"tagged pids held by no process: {shown}", "2"))

    def process(self, t: Task, prefix: str, last: bool) -> None:
        self.seen.add(t)
        inner = self.emit(prefix, last, _process_line(t, self.paint))
        g = t.group
        rows: list[tuple[str, Any]] = []  # (kind, what that kind draws)
        for fd, obj in sorted((g.files or {}).items()):
            rows.append(("fd", (fd, obj)))
        others = [th for th in g.threads if th is not t]
        limit = len(others) if self.max_threads is None else max(self.max_threads, 0)
        rows += [("thread", th) for th in others[:limit]]
        if len(others) > limit:
            rows.append(("more", len(others) - limit))
        # children, a namespace heading before each run of children in another namespace
        kids = _children(t)
        i = 0
        while i < len(kids):
            c = kids[i]
            if c.pid.ns is t.pid.ns:
                rows.append(("child", c))
                i += 1
                continue
            j = i
            while j < len(kids) and kids[j].pid.ns is c.pid.ns:
                j += 1
            rows.append(("ns", (c.pid.ns, kids[i:j])))
            i = j
        for n, (kind, item) in enumerate(rows):
            end = n == len(rows) - 1
            if kind == "fd":
                fd, obj = item
                self.emit(inner, end, _pidfd(fd, obj, self.paint))
            elif kind == "thread":
                self.emit(inner, end, _thread_line(item, self.paint))
            elif kind == "more":
                self.emit(inner, end, self.paint(f"… {item:,} more thread{'s' * (item != 1)}", "2"))
            elif kind == "child":
                self.process(item, inner, end)
            else:
                ns, members = item
                self.namespace(ns, members, inner, end)


def render_text(k: Kernel, *, color: bool = False, max_threads: int | None = MAX_THREADS) -> str:
    """The tree as text lines (see the module docstring); ``max_threads`` None shows every
    thread."""
    r = _Text(k, _Paint(color), max_threads)
    r.namespace(k.root_ns, [k.init], "", True, top=True)
    lost = [t for t in _processes_of(k) if t not in r.seen]
    if lost:
        r.lines.append(r.paint("unreachable from init:", "31"))
        for i, t in enumerate(lost):
            r.process(t, "", i == len(lost) - 1)
    armed = _armed(k)
    if armed:
        r.lines.append(r.paint("armed triggers (as 'triggers' lists them):", "1;35"))
        for i, trig in enumerate(armed):
            r.emit("", i == len(armed) - 1, trig.line())
    return "\n".join(r.lines) + "\n"


# -- graphviz ---------------------------------------------------------------------------------


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_dot(k: Kernel) -> str:
    """The tree as a graphviz digraph (see the module docstring)."""
    by_ns: dict[PidNamespace, list[Task]] = {}
    procs = list(_processes_of(k))
    for t in procs:
        by_ns.setdefault(t.pid.ns, []).append(t)
    out = ["digraph pidfs {", "  rankdir=LR;",
           '  node [shape=box, fontname="monospace", fontsize=10];',
           '  edge [fontname="monospace", fontsize=9];']

    def node(t: Task, indent: str) -> None:
        g = t.group
        label = f"{numbers(t.pid)} {t.comm}\n{t.display_state}"
        if t.exit_state is ExitState.ZOMBIE:
            label += f" {_end(t)}"
        if len(g.threads) > 1:
            label += f", {len(g.threads)} threads"
        style = ', style=filled, fillcolor="#f4cccc"' if t.exit_state is ExitState.ZOMBIE else ""
        out.append(f"{indent}p{t.pid.ino} [label={_q(label)}{style}];")

    def cluster(ns: PidNamespace, indent: str) -> None:
        out.append(f"{indent}subgraph cluster_ns{ns.inum} {{")
        label = f"pid namespace {ns.inum} (level {ns.level}, pid_max {ns.pid_max})"
        out.append(f"{indent}  label={_q(label)};")
        for t in by_ns.get(ns, ()):
            node(t, indent + "  ")
        ghosts = _ghosts(ns)
        if ghosts:
            out.append(f'{indent}  g{ns.inum} [label={_q("tagged, no process: " + " ".join(map(str, ghosts[:20])))}, '
                       'shape=note, style=dashed];')
        for child in ns.children:
            cluster(child, indent + "  ")
        out.append(f"{indent}}}")

    cluster(k.root_ns, "  ")
    for t in procs:
        for c in _children(t):
            out.append(f"  p{t.pid.ino} -> p{c.pid.ino};")
        for fd, obj in sorted((t.group.files or {}).items()):
            held = obj.pid.task if isinstance(obj, PidFd) and obj.pid.allocated else None
            if held is not None and held.group.leader in by_ns.get(held.group.leader.pid.ns, ()):
                label = f"fd {fd}" + (f" (thread {numbers(held.pid)})" if not held.is_leader else "")
                out.append(f"  p{t.pid.ino} -> p{held.group.leader.pid.ino} [style=dashed, "
                           f"color=purple, label={_q(label)}];")
    armed = _armed(k)
    if armed:
        text = "armed triggers:\n" + "\n".join(t.line() for t in armed)
        out.append(f"  triggers [label={_q(text)}, shape=note, color=purple];")
    out.append("}")
    return "\n".join(out) + "\n"
