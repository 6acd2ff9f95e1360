"""The global files of procfs/system.py have this machine's shapes.

Each file has a shape: its exact header lines and a regular expression every other line
matches, written from the kernel's printf format. Both the real file captured on this machine
(reference/linux-6.18/global/, regenerate with reference/capture.sh) and our rendering must
match it, so a shape that stops describing Linux fails as surely as a renderer that drifts.
Values are free to differ; field names and order, field counts, column widths and the trailing
newline are not.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from pidfs_fuse.kernel import CLONE_THREAD, Kernel, KernelError
from pidfs_fuse.procfs import MountOptions, View, show_meminfo
from pidfs_fuse.procfs import system as S

REF = Path(__file__).parent / "reference" / "linux-6.18" / "global"
SEC = 1_000_000_000
NUM = r"\d+"


def world() -> SimpleNamespace:
    now = [0]
    k = Kernel(clock=lambda: now[0])
    now[0] = 5 * SEC
    sh = k.clone(k.init, comm="bash").task
    app = k.clone(sh, comm="app").task
    k.clone(app, CLONE_THREAD)
    now[0] = 1000 * SEC
    view = View(k, k.root_ns, MountOptions(hidepid=2), boot_epoch=1795442708.9)
    return SimpleNamespace(k=k, now=now, view=view, sh=sh)


def ref(path: str) -> str:
    return (REF / path.replace("/", "__")).read_text()


def render(path: str, view: View | None = None) -> str:
    return S.GLOBAL_FILES[path].show(view or world().view, None).decode()


_V6_HEAD = ("  sl  local_address                         remote_address                        st "
            "tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode")

#: path -> (number of header lines compared exactly, regex of every other line)
SHAPES: dict[str, tuple[int, str]] = {
    "vmstat": (0, r"[a-z0-9_]+ \d+"),
    "filesystems": (0, r"(nodev)?\t[a-z0-9_]+"),
    "diskstats": (0, r"[ \d]{3}\d [ \d]{6}\d \S+( \d+){17}"),
    "partitions": (2, r"[ \d]{3}\d  [ \d]{6}\d [ \d]{9}\d \S+"),
    "swaps": (1, r"\S+ +(partition|file)\t\d+\t\t?\d+\t\t?-?\d+"),
    "pressure/cpu": (0, r"(some|full) avg10=\d+\.\d\d avg60=\d+\.\d\d avg300=\d+\.\d\d total=\d+"),
    "pressure/memory": (0, r"(some|full) avg10=\d+\.\d\d avg60=\d+\.\d\d avg300=\d+\.\d\d total=\d+"),
    "pressure/io": (0, r"(some|full) avg10=\d+\.\d\d avg60=\d+\.\d\d avg300=\d+\.\d\d total=\d+"),
    "tty/drivers": (0, r"\S+ +/dev/\S+ +\d+ +(\d+|\d+-\d+) \S+"),
    "slabinfo": (2, r"\S+ +\d+ +\d+ +\d+ +\d+ +\d+ : tunables +\d+ +\d+ +\d+ : slabdata "
                    r"+\d+ +\d+ +\d+"),
    "cgroups": (1, r"[a-z_]+\t\d+\t\d+\t\d+"),
    "cmdline": (0, r"\S+( \S+)*"),
    "locks": (0, r"\d+: .*"),
}

NET_SHAPES: dict[str, tuple[int, str]] = {
    "dev": (2, r" *\S+:\s*\d+( +\d+){15}"),
    "tcp": (1, r" +\d+: [0-9A-F]{8}:[0-9A-F]{4} .*"),
    "tcp6": (1, r" +\d+: [0-9A-F]{32}:[0-9A-F]{4} .*"),
    "udp": (1, r" +\d+: [0-9A-F]{8}:[0-9A-F]{4} .*"),
    "udp6": (1, r" +\d+: [0-9A-F]{32}:[0-9A-F]{4} .*"),
    "raw": (1, r" +\d+: [0-9A-F]{8}:[0-9A-F]{4} .*"),
    "raw6": (1, r" +\d+: [0-9A-F]{32}:[0-9A-F]{4} .*"),
    "unix": (1, r"[0-9a-f]{16}: [0-9A-F]{8} [0-9A-F]{8} [0-9A-F]{8} [0-9A-F]{4} [0-9A-F]{2} +\d+( .*)?"),
    "packet": (1, r"[0-9a-f]{16} .*"),
    "sockstat": (0, r"[A-Z0-9]+: \w+ \d+( \w+ \d+)*|sockets: used \d+"),
    "sockstat6": (0, r"[A-Z0-9]+: \w+ \d+( \w+ \d+)*"),
}


def check_shape(text: str, head: int, row: str, reference: str) -> None:
    assert text.endswith("\n") or text == ""
    lines, ref_lines = text.split("\n")[:-1], reference.split("\n")[:-1]
    assert lines[:head] == ref_lines[:head]
    for line in lines[head:]:
        assert re.fullmatch(row, line), line


@pytest.mark.parametrize("path", sorted(SHAPES), ids=str)
def test_the_shape_describes_this_machines_file(path: str) -> None:
    head, row = SHAPES[path]
    text = ref(path)
    check_shape(text, head, row, text)


@pytest.mark.parametrize("path", sorted(SHAPES), ids=str)
def test_rendering_has_this_machines_shape(path: str) -> None:
    head, row = SHAPES[path]
    check_shape(render(path), head, row, ref(path))


@pytest.mark.parametrize("name", sorted(NET_SHAPES), ids=str)
def test_net_files_have_this_machines_headers_and_rows(name: str) -> None:
    head, row = NET_SHAPES[name]
    text = ref(f"net/{name}")
    check_shape(text, head, row, text)
    ours = S.NET_FILES[name].show(world().view, None).decode()
    check_shape(ours, head, row, text)
    assert ours.split("\n")[:head] == text.split("\n")[:head]


def test_net_dev_columns_line_up_with_linux() -> None:
    ours = S.show_net_dev(world().view).decode().split("\n")[2]
    real = ref("net/dev").split("\n")[2]  # lo, also idle-ish: same widths for small numbers
    assert ours.index(":") == real.index(":") == 6
    assert [m.end() for m in re.finditer(r"\d+", ours)][:2] == [15, 23]
    assert re.fullmatch(r" *lo: +\d+ +\d+( +\d+){14}", real)


def test_sockstat_keys_in_order() -> None:
    for name in ("sockstat", "sockstat6"):
        ours = S.NET_FILES[name].show(world().view, None).decode()
        first = [line.split(":")[0] for line in ref(f"net/{name}").splitlines()]
        assert [line.split(":")[0] for line in ours.splitlines()] == first


def test_vmstat_has_linux_keys_in_order() -> None:
    keys = [line.split()[0] for line in ref("vmstat").splitlines()]
    assert [line.split()[0] for line in render("vmstat").splitlines()] == keys == S.VMSTAT_KEYS


def test_vmstat_memory_agrees_with_meminfo() -> None:
    w = world()
    mem = {line.split(":")[0]: int(line.split()[1])
           for line in show_meminfo(w.view).decode().splitlines()}
    c = S.vmstat_counters(w.view)
    assert c["nr_free_pages"] * 4 == mem["MemFree"]
    assert c["nr_anon_pages"] * 4 == mem["AnonPages"]
    assert c["nr_active_file"] * 4 == mem["Active(file)"]
    assert c["nr_kernel_stack"] == mem["KernelStack"]


def test_vmstat_events_grow_with_forks_and_time() -> None:
    w = world()
    before = S.vmstat_counters(w.view)
    w.k.clone(w.sh)
    w.now[0] += 10 * SEC
    after = S.vmstat_counters(w.view)
    for key in ("pgfault", "pgalloc_normal", "pgfree", "pgpgin", "pgpgout", "numa_hit"):
        assert after[key] > before[key], key
    assert render("vmstat", w.view) == render("vmstat", w.view)  # deterministic


def test_diskstats_widths_as_linux() -> None:
    real = ref("diskstats").splitlines()
    ours = render("diskstats").splitlines()
    assert all(line[4] == " " and line[12] == " " for line in real + ours)
    assert {len(line.split()) for line in real + ours} == {20}


def test_swaps_agrees_with_meminfo_and_pads_the_path_to_40_columns() -> None:
    text = render("swaps")
    row = text.splitlines()[1]
    assert row.index("partition") == 40
    assert row.split()[2] == "2097148" and row.split()[3] == "0"


def test_pressure_has_some_then_full() -> None:
    for path in ("pressure/cpu", "pressure/memory", "pressure/io"):
        assert [line.split()[0] for line in render(path).splitlines()] == ["some", "full"]
        assert [line.split()[0] for line in ref(path).splitlines()] == ["some", "full"]


def test_tty_drivers_columns_as_linux() -> None:
    for line in ref("tty/drivers").splitlines() + render("tty/drivers").splitlines():
        assert line[20] == " " and line[21:26] == "/dev/"


def test_slabinfo_counts_the_models_tasks_and_is_root_only() -> None:
    w = world()
    rows = {line.split()[0]: line.split() for line in render("slabinfo", w.view).splitlines()[2:]}
    assert int(rows["task_struct"][1]) == w.k.nr_threads
    assert int(rows["signal_cache"][1]) == 3  # init, bash, app
    assert S.GLOBAL_FILES["slabinfo"].mode == 0o400
    real = [line for line in ref("slabinfo").splitlines()[2:] if len(line.split()[0]) < 17]
    cols = {line.index(": tunables") for line in real if int(line.split()[1]) < 10**6}
    assert {line.index(": tunables") for line in render("slabinfo").splitlines()[2:]} <= cols


def test_filesystems_lists_proc_and_fuse() -> None:
    names = {line.split("\t")[1] for line in render("filesystems").splitlines()}
    assert {"proc", "fuse", "ext4", "tmpfs", "cgroup2"} <= names


@pytest.mark.parametrize("path", sorted(p for p in S.GLOBAL_FILES if p.startswith("sys/")), ids=str)
def test_sysctls_are_one_line_with_linux_field_counts(path: str) -> None:
    text = render(path)
    assert text.endswith("\n") and text.count("\n") == 1
    real_file = REF / path.replace("/", "__")
    if real_file.exists():
        real = real_file.read_text()
        assert len(text.split("\t")) == len(real.split("\t"))
        assert text.strip().isdigit() == real.strip().lstrip("-").isdigit()


def test_modes_are_this_machines() -> None:
    modes = dict(line.split() for line in (REF.parent / "global_modes.txt").read_text().splitlines()
                 if not line.endswith("missing"))
    for path, f in S.GLOBAL_FILES.items():
        if path in modes:
            assert f"{f.mode:o}" == modes[path], path


def test_boot_id_is_a_stable_uuid_per_boot() -> None:
    w = world()
    a = render("sys/kernel/random/boot_id", w.view)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\n", a)
    w.now[0] += SEC
    assert render("sys/kernel/random/boot_id", w.view) == a
    other = View(w.k, w.k.root_ns, boot_epoch=1.0)
    assert render("sys/kernel/random/boot_id", other) != a


def test_kernel_version_is_the_banners_build_part() -> None:
    assert render("sys/kernel/version").startswith("#1 SMP PREEMPT_DYNAMIC")
    assert ref("sys/kernel/version").startswith("#1 SMP PREEMPT_DYNAMIC")


def test_writes_are_refused() -> None:
    w = world()
    f = S.GLOBAL_FILES["sys/kernel/hostname"]
    assert f.write is not None
    with pytest.raises(KernelError) as e:
        f.write(w.view, None, b"x\n", 1000)
    assert e.value.errno == errno.EPERM
    with pytest.raises(KernelError) as e:
        f.write(w.view, None, b"x\n", 0)
    assert e.value.errno == errno.EOPNOTSUPP


def test_links_point_into_self() -> None:
    assert S.GLOBAL_LINKS["mounts"] == (REF / "mounts.readlink").read_text().strip()
    assert S.GLOBAL_LINKS["net"] == (REF / "net.readlink").read_text().strip()


MOUNT_SHAPES = {
    "mounts": r"\S+ /\S* \S+ \S+ 0 0",
    "mountinfo": r"\d+ \d+ \d+:\d+ /\S* /\S* \S+( \S+:\S+)* - \S+ \S+ \S+",
    "mountstats": r"device \S+ mounted on /\S* with fstype \S+( .*)?",
}


@pytest.mark.parametrize("name", sorted(MOUNT_SHAPES), ids=str)
def test_mount_table_has_this_machines_shape(name: str) -> None:
    real = (REF.parent / "perpid" / name).read_text()
    w = world()
    ours = {"mounts": S.show_mounts_table, "mountinfo": S.show_mountinfo_table,
            "mountstats": S.show_mountstats_table}[name](w.view).decode()
    for text in (real, ours):
        assert text.endswith("\n")
        for line in text.splitlines():
            assert re.fullmatch(MOUNT_SHAPES[name], line), line


def test_mount_table_shows_this_mounts_proc_options() -> None:
    w = world()
    proc = [line for line in S.show_mounts_table(w.view).decode().splitlines()
            if line.split()[2] == "proc"]
    assert proc == ["proc /proc proc rw,nosuid,nodev,noexec,relatime,hidepid=2 0 0"]
    info = [line for line in S.show_mountinfo_table(w.view).decode().splitlines() if " - proc " in line]
    assert info[0].endswith(" - proc proc rw,hidepid=2")


def test_disks_partitions_swaps_and_mounts_name_the_same_devices() -> None:
    w = world()
    parts = {line.split()[3] for line in render("partitions", w.view).splitlines()[2:]}
    assert {line.split()[2] for line in render("diskstats", w.view).splitlines()} == parts
    swap = render("swaps", w.view).splitlines()[1].split()[0]
    root = S.show_mounts_table(w.view).decode().splitlines()[0].split()[0]
    assert {swap, root} <= {f"/dev/{p}" for p in parts}
