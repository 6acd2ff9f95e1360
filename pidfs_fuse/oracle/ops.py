"""The operations both backends perform, as one line of text each: the replayable script.

A line is a command name and shell-quoted words, like the control language (``clone 3 pidfd=1``);
where a control command exists the name is the same. Task numbers:

- ``WHO`` (the task that performs the call) and the ``TARGET`` of ``setns`` and of a ``kill``
  without ``from=`` are thread ids in the oracle's namespace (the one ``unshare --pid`` made,
  the model's first child namespace); the driver finds the agent thread by it.
- Numbers the task passes to the system call (``kill ... from=WHO`` target, ``setpgid``,
  ``pidfd_open``, ``wait pid=``/``pgid=``) are in WHO's own namespace, exactly as the call sees
  them: the sequence is replayed number for number.
- ``H`` is a pidfd handle, named by the driver; it lives in the process that opened it.

Grammar::

    clone WHO [parent] [newpid] [pidfd=H] [set_tid=N,N,...] [exit_signal=N]
    thread WHO                      exit WHO CODE              exit_group WHO CODE
    kill TARGET SIG                 (from the host: outside every namespace; pidfd_send_signal)
    kill NR SIG from=WHO            sigaction WHO SIG ign|dfl
    setsid WHO                      setpgid WHO PID PGID       subreaper WHO on|off
    unshare WHO                     setns WHO TARGET           ns_last_pid WHO N
    pidfd_open WHO NR [thread] [nonblock] handle=H            pidfd_close WHO H
    pidfd_kill WHO H SIG            exec WHO comm=NAME
    wait WHO [pid=N | pgid=N | pidfd=H] options=0xOPTIONS
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

NAMES = ("clone", "thread", "exit", "exit_group", "kill", "sigaction", "setsid", "setpgid",
         "subreaper", "unshare", "setns", "ns_last_pid", "pidfd_open", "pidfd_close", "pidfd_kill",
         "exec", "wait")


@dataclass(frozen=True)
class Op:
    """One operation: ``name``, positional numbers ``pos`` and ``key=value``/word options."""

    name: str
    pos: tuple[int, ...] = ()
    opts: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def who(self) -> int | None:
        """The oracle-namespace tid of the task that acts (None for a kill from the host)."""
        if self.name == "kill":
            return int(self.opts["from"]) if "from" in self.opts else None
        return self.pos[0]

    def num(self, key: str, default: int | None = None) -> int:
        v = self.opts.get(key)
        return int(v, 0) if v is not None else default  # type: ignore[return-value]

    def flag(self, word: str) -> bool:
        return word in self.opts

    def line(self) -> str:
        words = [self.name, *map(str, self.pos)]
        for k, v in self.opts.items():
            words.append(k if v == "" else f"{k}={shlex.quote(v)}")
        return " ".join(words)

    def __str__(self) -> str:
        return self.line()


def parse(line: str) -> Op:
    words = shlex.split(line)
    if not words or words[0] not in NAMES:
        raise ValueError(f"not an oracle operation: {line!r}")
    pos: list[int] = []
    opts: dict[str, str] = {}
    for w in words[1:]:
        if "=" in w:
            k, _, v = w.partition("=")
            opts[k] = v
        elif w.lstrip("-").isdigit() and not opts:
            pos.append(int(w))
        else:
            opts[w] = ""
    return Op(words[0], tuple(pos), opts)


def op(name: str, *pos: int, **opts: object) -> Op:
    """Build an Op; a True option is a bare word, None/False options are left out."""
    o: dict[str, str] = {}
    for k, v in opts.items():
        if v is None or v is False:
            continue
        o[k] = "" if v is True else (",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v))
    return Op(name, tuple(pos), o)
