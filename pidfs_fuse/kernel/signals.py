"""Signal numbers, names and default actions (include/uapi/asm-generic/signal.h,
kernel/signal.c ``sig_kernel_*`` sets). Only default actions are modelled: a task either keeps
the default or ignores a signal (``sigign``); handlers do not exist here.
"""

from __future__ import annotations

import enum
import errno

from .errors import KernelError

# The asm-generic numbers (x86, arm, riscv, s390, powerpc; not alpha, mips, parisc or sparc).
# The model never reads the host's signal module: test_kernel_uapi.py compares the two on Linux.
SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE = 1, 2, 3, 4, 5, 6, 7, 8
SIGKILL, SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGSTKFLT = 9, 10, 11, 12, 13, 14, 15, 16
SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGXCPU = 17, 18, 19, 20, 21, 22, 23, 24
SIGXFSZ, SIGVTALRM, SIGPROF, SIGWINCH, SIGIO, SIGPWR, SIGSYS = 25, 26, 27, 28, 29, 30, 31
SIGRTMIN, SIGRTMAX = 32, 64
_NSIG = 64


class Action(enum.Enum):
    TERM = "term"
    CORE = "core"
    STOP = "stop"
    CONT = "cont"
    IGNORE = "ignore"


_CORE = {SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGXCPU, SIGXFSZ, SIGSYS}
_STOP = {SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU}
_IGNORE = {SIGCHLD, SIGURG, SIGWINCH}

_NAMES = {SIGHUP: "HUP", SIGINT: "INT", SIGQUIT: "QUIT", SIGILL: "ILL", SIGTRAP: "TRAP",
          SIGABRT: "ABRT", SIGBUS: "BUS", SIGFPE: "FPE", SIGKILL: "KILL", SIGUSR1: "USR1",
          SIGSEGV: "SEGV", SIGUSR2: "USR2", SIGPIPE: "PIPE", SIGALRM: "ALRM", SIGTERM: "TERM",
          SIGSTKFLT: "STKFLT", SIGCHLD: "CHLD", SIGCONT: "CONT", SIGSTOP: "STOP", SIGTSTP: "TSTP",
          SIGTTIN: "TTIN", SIGTTOU: "TTOU", SIGURG: "URG", SIGXCPU: "XCPU", SIGXFSZ: "XFSZ",
          SIGVTALRM: "VTALRM", SIGPROF: "PROF", SIGWINCH: "WINCH", SIGIO: "IO", SIGPWR: "PWR",
          SIGSYS: "SYS"}
_BY_NAME = {v: k for k, v in _NAMES.items()} | {"IOT": SIGABRT, "POLL": SIGIO, "CLD": SIGCHLD}


def default_action(sig: int) -> Action:
    if sig in _CORE:
        return Action.CORE
    if sig in _STOP:
        return Action.STOP
    if sig == SIGCONT:
        return Action.CONT
    if sig in _IGNORE:
        return Action.IGNORE
    return Action.TERM


def valid_signal(sig: int) -> bool:
    return isinstance(sig, int) and not isinstance(sig, bool) and 0 <= sig <= _NSIG


def sig_kernel_only(sig: int) -> bool:
    return sig in (SIGKILL, SIGSTOP)


def signame(sig: int) -> str:
    if sig in _NAMES:
        return "SIG" + _NAMES[sig]
    if SIGRTMIN <= sig <= SIGRTMAX:
        return f"SIGRTMIN+{sig - SIGRTMIN}" if sig != SIGRTMIN else "SIGRTMIN"
    return str(sig)


def _is_decimal(t: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts '²', which int() rejects."""
    return bool(t) and t.isascii() and t.isdigit()


def parse_signal(text: str | int, *, allow_zero: bool = True) -> int:
    """A signal given as a number (``9``), a name (``KILL``, ``SIGKILL``, ``sigkill``) or
    ``RTMIN+n``. Raises EINVAL naming the text when it is none of those."""
    if isinstance(text, int) and not isinstance(text, bool):
        sig = text
    else:
        t = str(text).strip()
        u = t.upper()
        if u.startswith("SIG"):
            u = u[3:]
        if _is_decimal(t.lstrip("-")):
            if len(t) > 4:
                raise KernelError(errno.EINVAL, f"signal {text!r} is outside 0..{_NSIG}")
            sig = int(t)
        elif u in _BY_NAME:
            sig = _BY_NAME[u]
        elif u.startswith("RTMIN") and (u == "RTMIN" or (u[5:6] == "+" and _is_decimal(u[6:]) and len(u) < 9)):
            sig = SIGRTMIN + (int(u[6:]) if u != "RTMIN" else 0)
        elif u.startswith("RTMAX") and (u == "RTMAX" or (u[5:6] == "-" and _is_decimal(u[6:]) and len(u) < 9)):
            sig = SIGRTMAX - (int(u[6:]) if u != "RTMAX" else 0)
        else:
            raise KernelError(errno.EINVAL, f"unknown signal {text!r}")
    if not valid_signal(sig) or (sig == 0 and not allow_zero):
        raise KernelError(errno.EINVAL, f"signal {text!r} is outside 0..{_NSIG}" if allow_zero
                          else f"signal {text!r} is outside 1..{_NSIG}")
    return sig

