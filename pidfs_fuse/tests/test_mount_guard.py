"""The FUSE handlers survive their own bugs: pyfuse3 ends the mount on any exception that is
not a FUSEError, so every handler turns one into EIO (and a stray KernelError into its errno)."""

from __future__ import annotations

import errno

import pyfuse3
import pytest

from pidfs_fuse.kernel import Kernel, KernelError
from pidfs_fuse.mount.fs import PidFs


async def test_a_bug_in_a_handler_answers_eio_and_is_logged(caplog):
    fs = PidFs(Kernel())

    def broken(*args):
        raise RuntimeError("bug")

    fs._lookup = broken
    with pytest.raises(pyfuse3.FUSEError) as e:
        await fs.lookup(pyfuse3.ROOT_INODE, b"1", None)
    assert e.value.errno == errno.EIO
    assert "internal error in lookup" in caplog.text and "RuntimeError: bug" in caplog.text


async def test_a_model_error_that_escapes_keeps_its_errno():
    fs = PidFs(Kernel())

    def refuses(*args):
        raise KernelError(errno.ESRCH, "gone")

    fs._lookup = refuses
    with pytest.raises(pyfuse3.FUSEError) as e:
        await fs.lookup(pyfuse3.ROOT_INODE, b"1", None)
    assert e.value.errno == errno.ESRCH


async def test_handlers_still_answer_normally():
    fs = PidFs(Kernel())
    attr = await fs.lookup(pyfuse3.ROOT_INODE, b"1", None)
    assert attr.st_ino > pyfuse3.ROOT_INODE
    with pytest.raises(pyfuse3.FUSEError) as e:
        await fs.lookup(pyfuse3.ROOT_INODE, b"99999", None)
    assert e.value.errno == errno.ENOENT
