"""Numbers and limits the model shares with Linux's user-space ABI.

Signal numbers: kernel/signals.py writes the asm-generic table itself (the model must not depend
on the host's ``signal`` module), so on a Linux host with that numbering every name the host
knows must have the host's number. SIGRTMIN is the exception: glibc reserves the first two
real-time signals, so Python's SIGRTMIN is 34 where the kernel's is 32.

The comm limit: ``task_struct.comm`` is a char[TASK_COMM_LEN] (16), so clone, exec and
``set comm=`` keep at most 15 bytes of a name's UTF-8, never splitting a character.
"""

from __future__ import annotations

import platform
import signal
import sys

import pytest

from pidfs_fuse.kernel import Kernel
from pidfs_fuse.kernel import signals as S
from pidfs_fuse.kernel.fields import set_field
from pidfs_fuse.kernel.task import TASK_COMM_LEN, comm_cut

COMM_CASES = [
    ("short", "sh", "sh"),
    ("ascii-15", "abcdefghijklmno", "abcdefghijklmno"),
    ("ascii-16", "abcdefghijklmnop", "abcdefghijklmno"),
    ("two-byte-chars", "é" * 9, "é" * 7),  # 18 bytes: 7 whole characters are 14 bytes
    ("split-at-15", "abcdefghijklmn" + "é", "abcdefghijklmn"),  # é would need bytes 15 and 16
    ("four-byte-char", "🐍" * 4, "🐍" * 3),
    ("mixed-fits", "naïve-déjà-v", "naïve-déjà-v"),  # 12 characters, 15 bytes
    ("mixed-16", "naïve-déjà-vu", "naïve-déjà-v"),  # 13 characters, 16 bytes
]


@pytest.mark.parametrize(("name", "kept"), [c[1:] for c in COMM_CASES], ids=[c[0] for c in COMM_CASES])
def test_comm_keeps_at_most_15_bytes(name: str, kept: str) -> None:
    assert comm_cut(name) == kept
    assert len(kept.encode()) <= TASK_COMM_LEN - 1
    k = Kernel(init_comm=name)
    assert k.init.comm == kept
    c = k.clone(k.init, comm=name).task
    assert c.comm == kept
    k.execve(c, "x")
    k.execve(c, name)
    assert c.comm == kept
    set_field(k, c, "comm", "y")
    set_field(k, c, "comm", name)
    assert c.comm == kept


ASM_GENERIC_SIGNALS = sys.platform == "linux" and not platform.machine().startswith(
    ("alpha", "mips", "parisc", "sparc"))
#: every SIG* number the model defines, by name, except the real-time bounds
MODEL_SIGNALS = sorted(n for n in dir(S) if n.startswith("SIG") and n not in ("SIGRTMIN", "SIGRTMAX")
                       and isinstance(getattr(S, n), int))


def test_model_defines_the_31_standard_signals() -> None:
    assert [getattr(S, n) for n in sorted(MODEL_SIGNALS, key=lambda n: getattr(S, n))] == list(range(1, 32))


@pytest.mark.skipif(not ASM_GENERIC_SIGNALS, reason="host signal numbers are not asm-generic Linux ones")
@pytest.mark.parametrize("name", MODEL_SIGNALS)
def test_signal_number_matches_the_host(name: str) -> None:
    host = getattr(signal, name, None)
    if host is None:
        pytest.skip(f"Python's signal module has no {name} here")
    assert getattr(S, name) == host
    assert S.parse_signal(name) == host and S.signame(host) == name


@pytest.mark.skipif(not ASM_GENERIC_SIGNALS, reason="host signal numbers are not asm-generic Linux ones")
@pytest.mark.parametrize("alias", ["IOT", "POLL", "CLD"])
def test_signal_alias_matches_the_host(alias: str) -> None:
    host = getattr(signal, "SIG" + alias, None)
    if host is None:
        pytest.skip(f"Python's signal module has no SIG{alias} here")
    assert S.parse_signal(alias) == host


@pytest.mark.skipif(not ASM_GENERIC_SIGNALS, reason="host signal numbers are not asm-generic Linux ones")
def test_sigrtmax_matches_the_host() -> None:
    assert S.SIGRTMAX == signal.SIGRTMAX
