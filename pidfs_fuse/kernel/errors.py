"""The model's one error type: an errno plus a sentence naming the offending value.

The model raises ``KernelError`` exactly where Linux returns that errno. It subclasses
``OSError`` so callers (the FUSE adapter, the control plane, the pytest client) can treat it as
the system-call failure it stands for. Any other exception escaping the model is a bug.
"""

from __future__ import annotations

import errno as _errno


class KernelError(OSError):
    """A system call of the model failed with ``errno``; ``str()`` says why."""

    errno: int  # always set (OSError's may be None)
    strerror: str  # likewise: every KernelError carries its sentence

    def __init__(self, err: int, message: str) -> None:
        super().__init__(err, message)

    def __str__(self) -> str:
        return f"{_errno.errorcode.get(self.errno, self.errno)}: {self.strerror}"

    @property
    def errname(self) -> str:
        return _errno.errorcode.get(self.errno, str(self.errno))

    @property
    def reason(self) -> str:
        """The sentence; for an error raised without one, the errno's name (kernel/ does no I/O
        and so does not import ``os`` for ``strerror``)."""
        return self.strerror or self.errname


class ModelBug(AssertionError):
    """An internal invariant broke (for example a TGID task on an untagged pid). Never caught."""
