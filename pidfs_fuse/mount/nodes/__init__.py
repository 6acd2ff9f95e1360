"""Node kinds: one small class per thing the mount shows; ``Node.ops`` is an instance of one.

| kind | module | nodes |
| --- | --- | --- |
| ``Root`` | root | ``/``, ``/.pidns/<inum>/`` |
| ``PidDir``, ``TidDir`` | piddir | ``/<pid>/``, ``task/<tid>/`` |
| ``TaskDir``, ``FdDir``, ``FdInfoDir``, ``PidTableDir`` | piddir | ``task/``, ``fd/``, ``fdinfo/``, ``ns/`` |
| ``FdLink``, ``FdInfoFile`` | piddir | ``fd/<n>``, ``fdinfo/<n>`` |
| ``TableDir``, ``GlobalFile``, ``SysctlFile`` | table | ``sys/``, ``/stat``..., ``sys/kernel/pid_max``... |
| ``PidFile``, ``TableLink``, ``SelfLink`` | table | ``/<pid>/status``..., ``cwd``..., ``self`` |
| ``ControlFile``, ``PidfsDir``, ``PidnsDir`` | special | ``.control``, ``.pidfs``, ``.pidns`` |
| ``HostProcDir`` | special | ``.host-proc`` (where ``exec`` puts the real /proc) |
| ``StandinDir`` and its rows' kinds | standin | the caller's own entry when the table lacks it |
| ``NsFile`` | nsfs | what a followed ``ns/<type>`` link reaches (``st_ino`` = the inum) |
| ``HandleFile`` | special | ``/<pid>/pidfd``, ``task/<tid>/pidfd``, ``/.pidfs/<ino>`` |
"""

from __future__ import annotations

from .base import OBSERVER, NodeKind
from .root import FIRST_PROCESS_ENTRY, NS_ROOT, ROOT, TGID_OFFSET
from .special import CONTROL_FILE, HOST_PROC, PIDFS_DIR, PIDNS_DIR
from .table import SELF_LINK, THREAD_SELF_LINK

#: Entry.special of a root row -> the kind of its node
ROW_KINDS: dict[str, NodeKind] = {
    "control": CONTROL_FILE,
    "pidfs": PIDFS_DIR,
    "pidns": PIDNS_DIR,
    "host-proc": HOST_PROC,
    "self": SELF_LINK,
    "thread-self": THREAD_SELF_LINK,
}

__all__ = ["FIRST_PROCESS_ENTRY", "NS_ROOT", "OBSERVER", "ROOT", "ROW_KINDS", "TGID_OFFSET",
           "NodeKind"]
