"""Who is looking: the mount's options and the pid namespace a procfs instance shows.

Models ``struct proc_fs_info`` (fs/proc/root.c, include/linux/proc_fs.h): a procfs superblock is
bound to one pid namespace (``pid_ns``) and carries the ``hidepid=``, ``gid=`` and ``subset=``
options. ``View`` is that binding plus what the model does not keep itself: the wall-clock time
of the model's boot (``btime``) and USER_HZ. Every number a renderer prints is translated into
``View.ns`` with ``Pid.nr_in`` (0 when not visible, the kernel's ``pid_nr_ns`` rule).

Option parsing follows fs/proc/root.c ``proc_parse_param``: ``hidepid=`` takes 0, 1, 2, 4 or the
names ``off``, ``noaccess``, ``invisible``, ``ptraceable``; ``gid=`` a u32; ``subset=`` only
``pid``. Anything else is EINVAL naming the offending option. ``allow_other`` belongs to FUSE, not
procfs: it is accepted here and left to the mount.
"""

from __future__ import annotations

import dataclasses
import errno
from dataclasses import dataclass

from ..kernel import Kernel, KernelError, PidNamespace

#: enum proc_hidepid (include/linux/proc_fs.h)
HIDEPID_OFF = 0
HIDEPID_NO_ACCESS = 1
HIDEPID_INVISIBLE = 2
HIDEPID_NOT_PTRACEABLE = 4

_HIDEPID_NAMES = {"off": HIDEPID_OFF, "noaccess": HIDEPID_NO_ACCESS,
                  "invisible": HIDEPID_INVISIBLE, "ptraceable": HIDEPID_NOT_PTRACEABLE}
_HIDEPID_NUMBERS = (HIDEPID_OFF, HIDEPID_NO_ACCESS, HIDEPID_INVISIBLE, HIDEPID_NOT_PTRACEABLE)
_U32_MAX = 2**32 - 1

USER_HZ = 100
NSEC_PER_SEC = 1_000_000_000


@dataclass
class MountOptions:
    """proc_fs_info's options. ``hidepid`` is one of 0, 1, 2, 4 (HIDEPID_*); ``gid`` None means
    the kernel's default, GLOBAL_ROOT_GID (so members of group 0 are exempt, as in Linux)."""

    hidepid: int = HIDEPID_OFF
    gid: int | None = None
    subset_pid: bool = False

    def to_text(self) -> str:
        """The options as /proc/mounts shows them (proc_show_options), without a leading comma."""
        parts = []
        if self.gid is not None and self.gid != 0:
            parts.append(f"gid={self.gid}")
        if self.hidepid != HIDEPID_OFF:
            parts.append(f"hidepid={self.hidepid}")
        if self.subset_pid:
            parts.append("subset=pid")
        return ",".join(parts)


def _u32(key: str, value: str) -> int:
    if not value.isdigit() or not value.isascii() or int(value) > _U32_MAX:
        raise KernelError(errno.EINVAL, f"mount option {key}={value!r}: expected a number 0..{_U32_MAX}")
    return int(value)


def parse_mount_options(text: str) -> MountOptions:
    """Parse a comma-separated option string (``hidepid=2,gid=100,subset=pid,allow_other``).

    Later options override earlier ones, as with mount(2). Raises ``KernelError(EINVAL)`` naming
    the first unknown option or bad value; an empty string gives the defaults.
    """
    opts = MountOptions()
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if key == "allow_other" and not sep:
            continue  # a FUSE option: the mount passes it to the kernel
        if key not in ("hidepid", "gid", "subset"):
            raise KernelError(errno.EINVAL, f"unknown mount option {item!r} "
                              "(procfs takes hidepid=, gid=, subset=pid; FUSE takes allow_other)")
        if not sep or not value:
            raise KernelError(errno.EINVAL, f"mount option {key!r} needs a value ({key}=...)")
        if key == "hidepid":
            if value.isdigit() and value.isascii():
                n = int(value)
                if n not in _HIDEPID_NUMBERS:
                    raise KernelError(errno.EINVAL, f"unknown value of hidepid - {value!r} "
                                      "(0, 1, 2, 4, off, noaccess, invisible or ptraceable)")
                opts.hidepid = n
            elif value in _HIDEPID_NAMES:
                opts.hidepid = _HIDEPID_NAMES[value]
            else:
                raise KernelError(errno.EINVAL, f"unknown value of hidepid - {value!r} "
                                  "(0, 1, 2, 4, off, noaccess, invisible or ptraceable)")
        elif key == "gid":
            opts.gid = _u32(key, value)
        else:  # subset (proc_parse_subset_param: only "pid" exists)
            if value != "pid":
                raise KernelError(errno.EINVAL, f"unsupported subset option - {value!r} (only subset=pid)")
            opts.subset_pid = True
    return opts


@dataclass
class View:
    """One procfs instance: the model seen from ``ns`` with ``options``.

    ``boot_epoch`` is the wall-clock time (seconds since the epoch) of the model's boot, i.e. of
    ``kernel.clock() == 0``; /proc/stat's ``btime`` is its integer part. ``hz`` is USER_HZ, the
    unit of every tick count shown (stat's utime, stime, starttime; /proc/stat's cpu lines).
    """

    kernel: Kernel
    ns: PidNamespace
    options: MountOptions = dataclasses.field(default_factory=MountOptions)
    boot_epoch: float = 0.0
    hz: int = USER_HZ

    def ticks(self, ns_value: int) -> int:
        """nsec_to_clock_t(): nanoseconds to clock ticks, truncating."""
        return ns_value * self.hz // NSEC_PER_SEC

    def uptime_s(self) -> float:
        """Seconds since the model's boot."""
        return self.kernel.clock() / NSEC_PER_SEC

    def with_ns(self, ns: PidNamespace) -> View:
        """The same mount seen from another pid namespace (``/.pidns/<inum>/``)."""
        return dataclasses.replace(self, ns=ns)
