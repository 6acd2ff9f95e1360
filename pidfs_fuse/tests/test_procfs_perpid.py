"""The per-pid files of procfs/perpid.py: this machine's formats, a memory map consistent with
status and statm, and the zombie and access behaviour measured in reference/kernel_facts.json.

Shapes are checked against a real python3 process's own files (reference/linux-6.18/perpid/,
regenerate with reference/capture.sh) as well as against our rendering.
"""

from __future__ import annotations

import errno
import itertools
import json
import re
import struct
from pathlib import Path
from types import SimpleNamespace

import psutil  # type: ignore[import-untyped]  # no stubs; a test dependency
import pytest

from pidfs_fuse.kernel import CLONE_THREAD, Kernel, KernelError, Task
from pidfs_fuse.kernel.fields import set_fields
from pidfs_fuse.procfs import MountOptions, View, show_statm, show_status
from pidfs_fuse.procfs import perpid as P

REF = Path(__file__).parent / "reference" / "linux-6.18" / "perpid"
FACTS = json.loads((Path(__file__).parent / "reference" / "kernel_facts.json").read_text())
SEC = 1_000_000_000
MAPS_LINE = (r"(?P<start>[0-9a-f]{8,16})-(?P<end>[0-9a-f]{8,16}) [r-][w-][x-][ps] [0-9a-f]{8} "
             r"[0-9a-f]{2}:[0-9a-f]{2} \d+ (?P<name> *\S.*)?")


def world(vsize: int = 173_092_864, rss: int = 3321) -> SimpleNamespace:
    now = [0]
    k = Kernel(clock=lambda: now[0])
    now[0] = 5 * SEC
    sh = k.clone(k.init, comm="bash").task
    app = k.clone(sh, comm="app").task
    set_fields(k, app, [("vsize", vsize), ("rss", rss), ("exe", "/usr/sbin/app"), ("state", "S"),
                        ("argv", "app --serve"), ("utime", "250"), ("stime", "40")])
    th = k.clone(app, CLONE_THREAD).task
    now[0] = 1000 * SEC
    view = View(k, k.root_ns, MountOptions(), boot_epoch=1795442708.9)
    return SimpleNamespace(k=k, now=now, view=view, sh=sh, app=app, th=th)


def ref(name: str) -> str:
    return (REF / name).read_text()


def render(name: str, w: SimpleNamespace | None = None, task: Task | None = None) -> bytes:
    w = w or world()
    return P.PERPID_FILES[name].show(w.view, task or w.app)


def zombie(w: SimpleNamespace) -> Task:
    w.k.exit_group(w.app, 3)
    assert w.app.display_state == "Z"
    return w.app


def status_kb(w: SimpleNamespace, task: Task) -> dict[str, int]:
    out = {}
    for line in show_status(w.view, task).decode().splitlines():
        key, _, rest = line.partition(":\t")
        if rest.endswith(" kB"):
            out[key] = int(rest.split()[0])
    return out


# -- maps / smaps / smaps_rollup formats ------------------------------------------------------

def test_maps_lines_have_this_machines_shape() -> None:
    for text in (ref("maps"), render("maps").decode()):
        assert text.endswith("\n")
        for line in text.splitlines():
            m = re.fullmatch(MAPS_LINE, line)
            assert m, line
            if not m.group("name"):
                assert line.endswith(" 0 ")  # an anonymous region keeps the space after inode


def test_maps_names_start_at_column_73_as_linux() -> None:
    for text in (ref("maps"), render("maps").decode()):
        for line in text.splitlines():
            prefix = re.match(r"\S+ \S+ \S+ \S+ \d+ ", line)
            assert prefix
            if len(line) > prefix.end():
                assert len(prefix.group()) > 73 or (line[73] != " " and line[72] == " "), line


def _smaps_blocks(text: str) -> list[tuple[str, list[str]]]:
    blocks: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):
            blocks.append((line, []))
        else:
            blocks[-1][1].append(line)
    return blocks


def test_smaps_blocks_have_this_machines_keys_widths_and_vmflags() -> None:
    real = _smaps_blocks(ref("smaps"))
    ours = _smaps_blocks(render("smaps").decode())
    keys = [line.split(":")[0] for line in real[0][1]]
    assert keys[-2:] == ["THPeligible", "VmFlags"]
    for _head, lines in real + ours:
        assert [line.split(":")[0] for line in lines] == keys
        for line in lines[:-2]:
            assert re.fullmatch(r"[A-Za-z_]+: +\d+ kB", line) and len(line) == 27, line
        assert re.fullmatch(r"THPeligible: +\d", lines[-2]) and len(lines[-2]) == 24
        assert re.fullmatch(r"VmFlags:( [a-z0-9]{2})+ ", lines[-1]), lines[-1]
    assert {line for _h, lines in ours for line in lines if line.startswith("VmFlags")} <= \
        {line for _h, lines in real for line in lines if line.startswith("VmFlags")}


def test_smaps_rollup_has_this_machines_keys_and_header() -> None:
    real = ref("smaps_rollup").splitlines()
    ours = render("smaps_rollup").decode().splitlines()
    assert [line.split(":")[0] for line in ours[1:]] == [line.split(":")[0] for line in real[1:]]
    for head in (real[0], ours[0]):
        assert re.fullmatch(r"[0-9a-f]+-[0-9a-f]+ ---p 00000000 00:00 0 +\[rollup\]", head)
        assert head.index("[rollup]") == 73
    assert all(re.fullmatch(r"[A-Za-z_]+: +\d+ kB", line) and len(line) == 27 for line in ours[1:])


# -- maps / smaps consistent with status and statm ----------------------------------------------

SIZES = [(173_092_864, 3321), (58_421_248, 6200), (1 << 20, 10), (8192, 1), (4096, 0),
         (8192, 1000), (1 << 40, 1 << 22), (12 * 4096 + 100, 7)]


@pytest.mark.parametrize(("vsize", "rss"), SIZES, ids=lambda v: str(v))
def test_regions_add_up_to_status(vsize: int, rss: int) -> None:
    w = world(vsize, rss)
    st = status_kb(w, w.app)
    rs = [r for r in P.regions(w.view, w.app) if r.in_mm]
    assert sum(r.size_kb for r in rs) == st["VmSize"]
    assert sum(r.rss_kb for r in rs) == st["VmRSS"]
    assert sum(r.anon_kb for r in rs) == st["RssAnon"]
    assert sum(r.file_kb for r in rs) == st["RssFile"]
    assert sum(r.size_kb for r in rs if r.perms == "r-xp" and r.name == "/usr/sbin/app") == st["VmExe"]
    assert sum(r.size_kb for r in rs if "x" in r.perms and r.name != "/usr/sbin/app") == st["VmLib"]
    assert sum(r.size_kb for r in rs if r.perms == "rw-p" and r.name != "[stack]") == st["VmData"]
    assert sum(r.size_kb for r in rs if r.name == "[stack]") == st["VmStk"]
    # address order, no overlap, whole pages
    for a, b in itertools.pairwise(rs):
        assert a.end <= b.start
    assert all(r.start % 4096 == 0 and r.end % 4096 == 0 and r.end > r.start for r in rs)
    # statm: size and resident in pages
    statm = show_statm(w.view, w.app).split()
    assert int(statm[0]) * 4 == st["VmSize"] and int(statm[1]) * 4 == st["VmRSS"]


@pytest.mark.parametrize(("vsize", "rss"), SIZES[:3], ids=lambda v: str(v))
def test_smaps_and_rollup_sum_alike(vsize: int, rss: int) -> None:
    w = world(vsize, rss)
    smaps = render("smaps", w).decode()
    rollup = {line.split(":")[0]: int(line.split()[1])
              for line in render("smaps_rollup", w).decode().splitlines()[1:]}
    mm = [b for b in _smaps_blocks(smaps) if not b[0].endswith("[vsyscall]")]
    for key in ("Rss", "Pss", "Anonymous", "Private_Dirty", "Shared_Clean", "Swap"):
        total = sum(int(line.split()[1]) for _h, lines in mm for line in lines
                    if line.split(":")[0] == key)
        assert total == rollup[key], key
    st = status_kb(w, w.app)
    assert rollup["Rss"] == st["VmRSS"] and rollup["Anonymous"] == st["RssAnon"]
    assert rollup["Pss"] == rollup["Pss_Anon"] + rollup["Pss_File"] + rollup["Pss_Shmem"]


def test_the_maps_lines_of_smaps_are_maps() -> None:
    w = world()
    heads = [h for h, _ in _smaps_blocks(render("smaps", w).decode())]
    assert heads == render("maps", w).decode().splitlines()


def test_the_map_agrees_with_stat_addresses() -> None:
    w = world()
    rs = P.regions(w.view, w.app)
    text = next(r for r in rs if r.perms == "r-xp" and r.name == "/usr/sbin/app")
    assert text.start == P.START_CODE
    assert next(r for r in rs if r.name == "[heap]").start == P.START_BRK
    stack = next(r for r in rs if r.name == "[stack]")
    assert stack.start <= P.ARG_START < stack.end


def test_psutil_memory_full_info_and_memory_maps_are_coherent(tmp_path: Path) -> None:
    """psutil's own parsers, pointed at the renderings in a directory laid out like /proc."""
    from psutil import _pslinux

    w = world()
    d = tmp_path / "4242"
    d.mkdir()
    (d / "statm").write_bytes(show_statm(w.view, w.app))
    for name in ("smaps", "smaps_rollup"):
        (d / name).write_bytes(render(name, w))
    (d / "status").write_bytes(show_status(w.view, w.app))
    saved = psutil.PROCFS_PATH
    psutil.PROCFS_PATH = str(tmp_path)
    try:
        proc = _pslinux.Process(4242)
        full = proc.memory_full_info()
        maps = proc.memory_maps()
    finally:
        psutil.PROCFS_PATH = saved
    st = status_kb(w, w.app)
    assert full.rss == st["VmRSS"] * 1024 and full.vms == st["VmSize"] * 1024
    assert full.uss == st["RssAnon"] * 1024
    assert full.uss <= full.pss <= full.rss and full.swap == 0
    assert sum(m[3] for m in maps) == full.rss  # (addr, perms, path, rss, ...)
    assert {m[2] for m in maps} >= {"[heap]", "[stack]", "[anon]", "/usr/sbin/app", P.LIBC}


def test_no_mm_means_no_map() -> None:
    w = world()
    z = zombie(w)
    assert render("maps", w, z) == b"" and render("smaps", w, z) == b""
    for name in ("smaps_rollup", "auxv"):
        with pytest.raises(KernelError) as e:
            render(name, w, z)
        assert e.value.errno == errno.ESRCH
    assert P.list_map_files(w.view, z) == []


def test_map_files_name_file_regions() -> None:
    w = world()
    names = P.list_map_files(w.view, w.app)
    assert all(re.fullmatch(r"[0-9a-f]+-[0-9a-f]+", n) for n in names)
    real = ref("map_files.ls").split()
    assert all(re.fullmatch(r"[0-9a-f]+-[0-9a-f]+", n) for n in real)
    assert P.readlink_map_file(w.view, w.app, names[0]) == "/usr/sbin/app"
    with pytest.raises(KernelError) as e:
        P.readlink_map_file(w.view, w.app, "1-2")
    assert e.value.errno == errno.ENOENT


def test_pagemap_marks_resident_pages() -> None:
    w = world()
    text = next(r for r in P.regions(w.view, w.app) if r.perms == "r-xp")
    data = P.read_pagemap(w.view, w.app, (text.start >> 12) * 8, 16)
    assert struct.unpack("<2Q", data) == (1 << 63 | 1 << 61,) * 2  # present, file
    assert P.read_pagemap(w.view, w.app, 0, 8) == bytes(8)  # page 0 is unmapped
    with pytest.raises(KernelError) as e:
        P.read_pagemap(w.view, w.app, 3, 8)
    assert e.value.errno == errno.EINVAL


def test_mem_reads_zeros_where_mapped_and_eio_elsewhere() -> None:
    w = world()
    heap = next(r for r in P.regions(w.view, w.app) if r.name == "[heap]")
    assert P.read_mem(w.view, w.app, heap.start, 16) == bytes(16)
    with pytest.raises(KernelError) as e:
        P.read_mem(w.view, w.app, 0, 16)
    assert e.value.errno == errno.EIO
    assert FACTS["perpid_access"]["mem"]["root reads root's"] == "open ok, read EIO"


def test_auxv_is_this_machines_length_and_ends_with_at_null() -> None:
    w = world()
    data = render("auxv", w)
    assert len(data) == int(ref("auxv.len"))
    pairs = [struct.unpack_from("<QQ", data, i) for i in range(0, len(data), 16)]
    assert pairs[-1] == (0, 0)
    assert dict(pairs)[6] == 4096 and dict(pairs)[17] == 100  # AT_PAGESZ, AT_CLKTCK
    vdso = next(r for r in P.regions(w.view, w.app) if r.name == "[vdso]")
    assert dict(pairs)[33] == vdso.start


# -- the small files ------------------------------------------------------------------------------

SAME_AS_LINUX = ["uid_map", "gid_map", "setgroups", "personality", "coredump_filter",
                 "timerslack_ns", "cpuset", "arch_status", "ksm_stat", "ksm_merging_pages",
                 "oom_score_adj", "oom_adj", "timers"]


@pytest.mark.parametrize("name", SAME_AS_LINUX, ids=str)
def test_constant_files_are_linuxs_bytes(name: str) -> None:
    assert render(name).decode() == ref(name)


SHAPES = {
    "schedstat": r"\d+ \d+ \d+\n",
    "autogroup": r"/autogroup-\d+ nice -?\d+\n",
    "oom_score": r"\d+\n",
    "wchan": r"[a-z_0-9]+",
    "syscall": r"(\d+( 0x[0-9a-f]+){8}|running|-1 0x[0-9a-f]+ 0x[0-9a-f]+)\n",
    "stack": r"(\[<0>\] [A-Za-z_0-9.]+\+0x[0-9a-f]+/0x[0-9a-f]+\n)*",
}


@pytest.mark.parametrize("name", sorted(SHAPES), ids=str)
def test_small_files_have_this_machines_shape(name: str) -> None:
    assert re.fullmatch(SHAPES[name], ref(name)), ref(name)
    assert re.fullmatch(SHAPES[name], render(name).decode())


def test_sched_has_this_machines_lines_and_columns() -> None:
    real = ref("sched").splitlines()
    ours = render("sched").decode().splitlines()
    assert re.fullmatch(r"\S+ \(\d+, #threads: \d+\)", ours[0]) and real[1] == ours[1] == "-" * 67
    keys = [line.split(":")[0].rstrip() for line in real[2:]]
    assert [line.split(":")[0].rstrip() for line in ours[2:]] == keys
    for line in real[2:-2] + ours[2:-2]:
        assert line[45] == ":" and len(line) == 67, line
        assert re.fullmatch(r" +-?\d+(\.\d{6})?", line[46:]), line
    assert ours[0] == "app (3, #threads: 2)"


def test_wchan_follows_state_and_scenario_key() -> None:
    w = world()
    assert render("wchan", w) == b"do_epoll_wait"
    assert P.show_wchan(w.view, w.app, ptrace_ok=False) == b"0"
    w.app.group.extra = {"wchan": "hrtimer_nanosleep"}
    assert render("wchan", w) == b"hrtimer_nanosleep"
    assert render("syscall", w).split()[0] == b"230"
    set_fields(w.k, w.app, [("state", "R")])
    assert render("wchan", w) == b"0" and render("syscall", w) == b"running\n"


def test_oom_score_from_rss_and_adj() -> None:
    w = world()
    base = int(render("oom_score", w))
    assert 666 <= base < 700
    w.app.group.extra = {"oom_score_adj": "500"}
    assert int(render("oom_score", w)) > base + 300
    assert render("oom_score_adj", w) == b"500\n" and render("oom_adj", w) == b"8\n"
    w.app.group.extra = {"oom_score_adj": "-1000"}
    assert render("oom_score", w) == b"0\n" and render("oom_adj", w) == b"-17\n"
    w.app.group.extra = {"oom_score_adj": "1000"}
    assert render("oom_adj", w) == b"15\n"
    assert render("oom_score", w, w.k.init) == b"0\n"


# -- exited tasks, as this machine's real zombie -------------------------------------------------

def test_zombie_answers_as_linux() -> None:
    real = FACTS["zombie"]["root-owned zombie"]
    w = world()
    z = zombie(w)
    assert real["maps"]["root"] == real["smaps"]["root"] == "ok (empty)"
    assert render("maps", w, z) == b""
    assert real["wchan"]["root"] == "ok '0'" and render("wchan", w, z) == b"0"
    assert real["syscall"]["root"] == "ok '-1 0x0 0x0\\n'" and render("syscall", w, z) == b"-1 0x0 0x0\n"
    assert real["stack"]["root"] == "ok (empty)" and render("stack", w, z) == b""
    for name in ("mounts", "mountinfo"):
        assert real[name]["root"] == "open EINVAL"
        with pytest.raises(KernelError) as e:
            render(name, w, z)
        assert e.value.errno == errno.EINVAL
    assert real["environ"]["root"] == "open ESRCH"
    with pytest.raises(KernelError) as e:
        P.show_environ(w.view, z)
    assert e.value.errno == errno.ESRCH


def test_a_zombies_files_belong_to_root_but_its_open_directories() -> None:
    owners = next(v for k, v in FACTS["zombie"].items() if k.startswith("owner"))
    w = world()
    set_fields(w.k, w.app, [("uid", "65534"), ("gid", "65534")])
    assert P.dump_owner(w.app, 0o400, False) == (65534, 65534)
    z = zombie(w)
    assert owners["environ"] == "0:0" and P.dump_owner(z, 0o400, False) == (0, 0)
    assert owners["fd"] == "0:0" and P.dump_owner(z, 0o500, True) == (0, 0)
    assert owners["task"] == "65534:65534" and P.dump_owner(z, 0o555, True) == (65534, 65534)


# -- modes and who may read -----------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(P.PERPID_FILES), ids=str)
def test_mode_and_access_are_this_machines(name: str) -> None:
    real = FACTS["perpid_access"][name]
    row = P.PERPID_FILES[name]
    assert f"{row.mode:04o}" == real["mode"]
    task = world().app  # uid 0, as the real target
    other = P.reader_errno(row, 65534, task, at_open=True)
    later = P.reader_errno(row, 65534, task, at_open=False)
    owner_read = P.reader_errno(row, 65534, SimpleNamespace(group=SimpleNamespace(uid=65534)),
                                at_open=False)
    mode_denies_other = not row.mode & 0o004
    if real["65534 reads root's"].startswith("open EACCES"):
        assert other == errno.EACCES or mode_denies_other
    elif real["65534 reads root's"].startswith("ok"):
        assert other == 0 and later == 0 and not mode_denies_other
    if real["65534 reads its own"] == "open ok, read EPERM":
        assert owner_read == errno.EPERM
    elif real["65534 reads its own"] == "open ok, read EACCES":
        assert owner_read == errno.EACCES
    elif real["65534 reads its own"].startswith("ok"):
        assert owner_read == 0
    if name == "wchan":
        assert real["65534 reads root's"] == "ok '0'" and row.access == P.ACCESS_PTRACE_OR_ZERO


def test_map_files_dir_mode_is_this_machines() -> None:
    assert f"{P.MAP_FILES_MODE:04o}" == FACTS["perpid_access"]["map_files/"]["mode"]


def test_numa_maps_lines_follow_the_regions() -> None:
    w = world()
    set_fields(w.k, w.app, [("exe", "/opt/my app=1\tx")])
    lines = P.show_numa_maps(w.view, w.app).decode().splitlines()
    regions = [r for r in P.regions(w.view, w.app) if r.in_mm]
    assert [int(ln.split()[0], 16) for ln in lines] == [r.start for r in regions]
    # seq_path(.., "\n\t= "): space, tab and '=' as octal escapes; maps escapes only newlines
    text = next(r for r in regions if r.perms == "r-xp" and r.name.startswith("/opt/"))
    line = lines[regions.index(text)]
    assert line.startswith(f"{text.start:08x} default file=/opt/my\\040app\\0751\\011x mapped=")
    assert line.endswith(f" mapmax=2 N0={text.file_kb // 4} kernelpagesize_kB=4")
    heap = lines[[r.name for r in regions].index("[heap]")]
    pages = next(r for r in regions if r.name == "[heap]").anon_kb // 4
    assert heap.endswith(f" heap anon={pages} dirty={pages} active=0 N0={pages} kernelpagesize_kB=4")
    assert sum(int(ln.split(" N0=")[1].split()[0]) for ln in lines if " N0=" in ln) * 4 == \
        sum(r.rss_kb for r in regions)
    w.k.exit_group(w.app, 0)
    assert P.show_numa_maps(w.view, w.app) == b""


def test_timens_offsets_write_parses_then_refuses() -> None:
    w = world()
    for data in (b"", b"garbage\n", b"monotonic 1\n", b"realtime 1 0\n", b"boottime 1 1000000000\n"):
        with pytest.raises(KernelError) as e:
            P.write_timens_offsets(w.view, w.app, data, 0)
        assert e.value.errno == errno.EINVAL, data
    for data, uid, err in ((b"monotonic 1 0\n", 0, errno.EACCES), (b"7 -5 3\n1 0 0", 0, errno.EACCES),
                           (b"monotonic 1 0\n", 1000, errno.EPERM)):
        with pytest.raises(KernelError) as e:
            P.write_timens_offsets(w.view, w.app, data, uid)
        assert e.value.errno == err, data
    assert P.show_timens_offsets(w.view, w.app) == \
        b"monotonic           0         0\nboottime            0         0\n"
