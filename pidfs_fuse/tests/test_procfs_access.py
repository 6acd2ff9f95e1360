"""Mount options (fs/proc/root.c proc_parse_param) and the hidepid/gid policy
(fs/proc/base.c has_pid_permissions, proc_pid_permission, pid_getattr, proc_pid_lookup)."""

from __future__ import annotations

import errno

import pytest

from pidfs_fuse.kernel import Kernel, KernelError
from pidfs_fuse.procfs import (
    TGID_BASE,
    MountOptions,
    View,
    depends_on_caller,
    entry_access,
    fd_link_access,
    parse_mount_options,
    pid_access,
    pid_dir_lookup_errno,
    pid_getattr_errno,
    pid_lookup_errno,
    pid_visible_in_listing,
    task_owner,
)
from pidfs_fuse.tests.conftest import row


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", MountOptions()),
        ("hidepid=0", MountOptions(hidepid=0)),
        ("hidepid=1", MountOptions(hidepid=1)),
        ("hidepid=2", MountOptions(hidepid=2)),
        ("hidepid=4", MountOptions(hidepid=4)),
        ("hidepid=off", MountOptions(hidepid=0)),
        ("hidepid=noaccess", MountOptions(hidepid=1)),
        ("hidepid=invisible", MountOptions(hidepid=2)),
        ("hidepid=ptraceable", MountOptions(hidepid=4)),
        ("gid=100", MountOptions(gid=100)),
        ("subset=pid", MountOptions(subset_pid=True)),
        ("hidepid=2,gid=27,subset=pid,allow_other", MountOptions(hidepid=2, gid=27, subset_pid=True)),
        ("allow_other", MountOptions()),
        ("hidepid=1,hidepid=invisible", MountOptions(hidepid=2)),
        (",hidepid=2,", MountOptions(hidepid=2)),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_parse_mount_options(text: str, expected: MountOptions) -> None:
    assert parse_mount_options(text) == expected


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("hidepid=3", "hidepid"),
        ("hidepid=5", "hidepid"),
        ("hidepid=yes", "hidepid"),
        ("hidepid=", "hidepid"),
        ("hidepid", "hidepid"),
        ("gid=-1", "gid"),
        ("gid=abc", "gid"),
        ("gid=4294967296", "gid"),
        ("subset=sys", "sys"),
        ("subset=pid,foo", "foo"),
        ("pidns=/proc/1/ns/pid", "pidns"),
        ("allow_other=1", "allow_other"),
        ("ro", "ro"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_mount_options_are_einval_naming_the_option(text: str, named: str) -> None:
    with pytest.raises(KernelError) as e:
        parse_mount_options(text)
    assert e.value.errno == errno.EINVAL
    assert named in str(e.value)


def test_mount_options_round_trip_as_proc_mounts_shows_them() -> None:
    opts = parse_mount_options("subset=pid,hidepid=invisible,gid=27")
    assert opts.to_text() == "gid=27,hidepid=2,subset=pid"
    assert parse_mount_options(opts.to_text()) == opts


# -- policy ---------------------------------------------------------------------------------------

def make(hidepid: int, gid: int | None = None):
    k = Kernel()
    mine = k.clone(k.init, comm="mine", uid=1000, gid=1000).task
    theirs = k.clone(k.init, comm="theirs", uid=1001, gid=1001).task
    return View(k, k.root_ns, MountOptions(hidepid=hidepid, gid=gid)), mine, theirs


# (hidepid, gid=, caller uid, caller gids, target) -> (listed, getattr errno, lookup errno, access errno)
CASES = [
    (0, None, 1000, [1000], "theirs", (True, 0, 0, 0)),
    (1, None, 1000, [1000], "theirs", (True, 0, 0, errno.EPERM)),
    (1, None, 1000, [1000], "mine", (True, 0, 0, 0)),
    (2, None, 1000, [1000], "theirs", (False, errno.ENOENT, 0, errno.ENOENT)),
    (2, None, 1000, [1000], "mine", (True, 0, 0, 0)),
    (2, None, 0, [0], "theirs", (True, 0, 0, 0)),
    (2, 27, 1000, [1000, 27], "theirs", (True, 0, 0, 0)),
    (2, 27, 1000, [1000], "theirs", (False, errno.ENOENT, 0, errno.ENOENT)),
    (2, None, 1000, [1000, 0], "theirs", (True, 0, 0, 0)),  # default pid_gid is the root group
    (4, None, 1000, [1000], "theirs", (False, errno.ENOENT, errno.ENOENT, errno.EPERM)),
    (4, 27, 1000, [27], "theirs", (False, errno.ENOENT, errno.ENOENT, errno.EPERM)),  # gid= ignored
    (4, None, 1000, [1000], "mine", (True, 0, 0, 0)),
]


@pytest.mark.parametrize(
    ("hidepid", "gid", "uid", "gids", "target", "expected"), CASES,
    ids=["off", "noaccess-other", "noaccess-own", "invisible-other", "invisible-own",
         "invisible-root", "invisible-gid-member", "invisible-gid-nonmember",
         "invisible-root-group", "ptraceable-other", "ptraceable-ignores-gid", "ptraceable-own"],
)
def test_hidepid_policy(hidepid, gid, uid, gids, target, expected) -> None:
    view, mine, theirs = make(hidepid, gid)
    task = mine if target == "mine" else theirs
    got = (pid_visible_in_listing(view, uid, gids, task), pid_getattr_errno(view, uid, gids, task),
           pid_lookup_errno(view, uid, gids, task), pid_access(view, uid, gids, task))
    assert got == expected


@pytest.mark.parametrize(
    ("hidepid", "gid", "uid", "gids", "target", "expected"), CASES,
    ids=["off", "noaccess-other", "noaccess-own", "invisible-other", "invisible-own",
         "invisible-root", "invisible-gid-member", "invisible-gid-nonmember",
         "invisible-root-group", "ptraceable-other", "ptraceable-ignores-gid", "ptraceable-own"],
)
def test_fuse_lookup_of_a_pid_dir_is_proc_lookup_then_getattr(hidepid, gid, uid, gids, target,
                                                             expected) -> None:
    # noaccess resolves and stats (0) though entering is EPERM; invisible and ptraceable: ENOENT
    view, mine, theirs = make(hidepid, gid)
    task = mine if target == "mine" else theirs
    _, getattr_errno, lookup_errno, _ = expected
    assert pid_dir_lookup_errno(view, uid, gids, task) == (lookup_errno or getattr_errno)


def test_fd_links_need_ptrace_access() -> None:
    _, mine, theirs = make(0)
    assert fd_link_access(1000, theirs) == errno.EACCES
    assert fd_link_access(1000, mine) == 0
    assert fd_link_access(0, theirs) == 0


@pytest.mark.parametrize(("hidepid", "gid", "expected"),
                         [(0, None, False), (1, None, True), (2, None, True), (4, None, True),
                          (0, 27, True)])
def test_answers_depend_on_the_caller_with_hidepid_or_gid(hidepid, gid, expected) -> None:
    assert depends_on_caller(MountOptions(hidepid=hidepid, gid=gid)) is expected


def test_pid_access_on_a_released_task_is_esrch() -> None:
    view, mine, _ = make(0)
    view.kernel.exit_group(mine, 0)
    view.kernel.waitid(view.kernel.init)
    assert pid_access(view, 0, [0], mine) == errno.ESRCH


def test_ptrace_guarded_entries_refuse_other_users() -> None:
    _view, mine, theirs = make(0)
    environ, status, cwd = (row(TGID_BASE, n) for n in ("environ", "status", "cwd"))
    assert entry_access(1000, environ, theirs) == errno.EACCES
    assert entry_access(1000, cwd, theirs) == errno.EACCES
    assert entry_access(1000, status, theirs) == 0
    assert entry_access(1000, environ, mine) == 0
    assert entry_access(0, environ, theirs) == 0
    assert task_owner(theirs) == (1001, 1001)
