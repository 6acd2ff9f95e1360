"""pidfs_fuse: a Linux process table you can mount.

``pidfs_fuse.Kernel`` is the in-process model (see ``pidfs_fuse.kernel``); the FUSE server lives
in ``pidfs_fuse.mount`` and is started by the ``pidfs-fuse`` command.
"""

from .kernel import Kernel, KernelError

__all__ = ["Kernel", "KernelError"]
