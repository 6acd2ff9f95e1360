"""What is compared after every step, read the same way from both sides.

A snapshot is a flat dict ``key -> value``: ``"ls"`` is the pid directories of the oracle
namespace's /proc; ``"<tgid>/task"`` its ``task/`` listing; ``"<tgid>/stat:<field>"`` the
process's ``/<pid>/stat``; ``"<tgid>/<tid>/status:<Field>"`` and ``"<tgid>/<tid>/stat:<field>"``
each thread's ``task/<tid>/`` files; ``"<tgid>/<tid>/ns:pid"`` and ``ns:pid_for_children`` a label
for the pid namespace (the same label on both sides means the same namespace: labels are handed
out in order of first appearance over the tasks in listing order, because namespace inode numbers
differ between the model and Linux); ``"pidfd:<H>"`` a handle's poll mask, PIDFD_INFO_EXIT exit
code and fdinfo ``Pid:``; ``"fds:<tgid>"`` the handles a process holds open.

Both sides produce the same *text* (procfs renderers on the model side, the real files on the
other) and go through the same parsers here, so a formatting difference is a difference too.
Normalisation, each with its reason:

- State ``R`` reads as ``S``: an agent is running only while it answers a command; the model has
  no scheduler.
"""

from __future__ import annotations

from collections import Counter

STATUS_FIELDS = ("Name", "State", "Tgid", "Pid", "PPid", "NStgid", "NSpid", "NSpgid", "NSsid",
                 "Threads", "SigIgn", "SigPnd", "ShdPnd")
#: /<pid>/stat fields by their number in proc(5)
STAT_FIELDS = {"comm": 2, "state": 3, "ppid": 4, "pgrp": 5, "session": 6, "num_threads": 20,
               "exit_signal": 38, "exit_code": 52}


def parse_status(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key in STATUS_FIELDS:
            value = value.strip()
            if key == "State":
                value = value[:1]
                if value == "R":
                    value = "S"
            elif key.startswith("NS"):
                value = " ".join(value.split())
            out[key] = value
    return out


def parse_stat(text: str) -> dict[str, str]:
    lp, rp = text.find("("), text.rfind(")")
    if lp < 0 or rp < lp:
        return {"comm": f"unparsable: {text!r}"}
    rest = text[rp + 2:].split()
    out = {"comm": text[lp + 1:rp]}
    for name, n in STAT_FIELDS.items():
        if n >= 3:
            out[name] = rest[n - 3] if len(rest) > n - 3 else "missing"
    if out["state"] == "R":
        out["state"] = "S"
    return out


def add_task_files(snap: dict, tgid: int, tid: int, status: str | None, stat: str | None) -> None:
    base = f"{tgid}/{tid}"
    if status is None or stat is None:
        snap[base] = "unreadable"
        return
    for k, v in parse_status(status).items():
        snap[f"{base}/status:{k}"] = v
    for k, v in parse_stat(stat).items():
        snap[f"{base}/stat:{k}"] = v


def add_group_stat(snap: dict, tgid: int, stat: str | None) -> None:
    if stat is None:
        snap[f"{tgid}/stat"] = "unreadable"
        return
    for k, v in parse_stat(stat).items():
        snap[f"{tgid}/stat:{k}"] = v


class Labels:
    """Namespace labels by order of first appearance."""

    def __init__(self) -> None:
        self.ids: dict[object, int] = {}

    def __call__(self, ident: object) -> str:
        return f"ns{self.ids.setdefault(ident, len(self.ids))}"


def field_of(key: str) -> str:
    """The field a snapshot key compares, for the coverage report ("status:PPid", "ls", ...)."""
    if key == "ls":
        return "ls"
    last = key.rsplit("/", 1)[-1]
    if key.startswith("pidfd:"):
        return "pidfd:" + key.rsplit(":", 1)[-1] if key.count(":") > 1 else "pidfd"
    if key.startswith("fds:"):
        return "fds"
    if last == "task" or ":" not in last:
        return last if last == "task" else "file"
    kind = "tgid-stat" if key.count("/") == 1 else last.split(":")[0]
    return f"{kind}:{last.split(':', 1)[1]}"


def diff(model: dict, real: dict) -> list[tuple[str, object, object]]:
    keys = sorted(set(model) | set(real), key=_key_order)
    return [(k, model.get(k, "<absent>"), real.get(k, "<absent>")) for k in keys
            if model.get(k, "<absent>") != real.get(k, "<absent>")]


def _key_order(k: str) -> tuple:
    parts = k.replace(":", "/").split("/")
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def count_fields(counter: Counter, snap: dict) -> None:
    for k in snap:
        counter[field_of(k)] += 1
