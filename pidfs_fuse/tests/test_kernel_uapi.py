"""Numbers and limits the model shares with Linux's user-space ABI.

The comm limit: ``task_struct.comm`` is a char[TASK_COMM_LEN] (16), so clone, exec and
``set comm=`` keep at most 15 bytes of a name's UTF-8, never splitting a character.
"""

from __future__ import annotations

import pytest

from pidfs_fuse.kernel import Kernel
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
