"""``pidfs_fuse.tree`` (the picture drawn by ``pidfs-fuse tree``): exact text for a small table,
thread limits, colour only on request, graphviz output that parses as a digraph whose edges join
declared nodes, and the CLI subcommand on scenarios."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pidfs_fuse import cli
from pidfs_fuse.control import Control
from pidfs_fuse.kernel import Kernel
from pidfs_fuse.scenario import load
from pidfs_fuse.tree import render_dot, render_text

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"


@pytest.fixture
def small() -> Kernel:
    """init; svc (a session, 2 threads) whose child box is init of a new namespace, with a
    stopped app; a zombie job whose pidfd init holds; a daemon whose session id is a ghost."""
    k = Kernel(clock=lambda: 0)
    c = Control(k)
    for line in ["clone 1 comm=svc", "clone 2 thread count=2", "setsid 2", "clone 2 newpid comm=box",
                 "clone 5 comm=app", "clone 1 pidfd comm=job", "exit_group 7 2", "clone 1 comm=d",
                 "setsid 8", "clone 8 comm=daemon", "exit_group 8", "wait 1 pid=8", "kill 6 STOP"]:
        c.execute(line)
    return k


SMALL_TEXT = """\
pid namespace 4026531836 (level 0, pid_max 32768, last pid 9)
├─ 1 init S · session leader
│  ├─ fd 3 → pidfd 7
│  ├─ 2 svc S · session leader · 3 threads
│  │  ├─ thread 3 svc S
│  │  ├─ thread 4 svc S
│  │  └─ pid namespace 4026532092 (level 1, pid_max 4194304, last pid 2, init 5/1)
│  │     └─ 5/1 box S
│  │        └─ 6/2 app T
│  ├─ 7 job Z · exited 2 · 1 open handle
│  └─ 9 daemon S · sid 8 (no such process)
└─ tagged pids held by no process: 8
"""


def test_text_of_a_small_table_is_exact(small: Kernel) -> None:
    assert render_text(small) == SMALL_TEXT


def test_thread_limit_counts_the_rest(small: Kernel) -> None:
    lines = render_text(small, max_threads=1).splitlines()
    assert "│  │  ├─ thread 3 svc S" in lines and "│  │  ├─ … 1 more thread" in lines
    assert not any("thread 4" in ln for ln in lines)
    none = render_text(small, max_threads=0)
    assert "thread 3" not in none and "… 2 more threads" in none
    assert render_text(small, max_threads=None) == SMALL_TEXT


def test_colour_only_on_request(small: Kernel) -> None:
    assert "\x1b[" not in render_text(small)
    coloured = render_text(small, color=True)
    assert "\x1b[1;34mpid namespace 4026531836\x1b[0m" in coloured
    assert "\x1b[31mZ\x1b[0m" in coloured and "\x1b[33mT\x1b[0m" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == SMALL_TEXT


def test_reparented_and_wrapped_numbers_show_every_level() -> None:
    k = load(EXAMPLES / "container-host.toml").kernel
    text = render_text(k)
    assert "init 7001/60/1)" in text and "7001/60/1 sh S · session leader" in text
    assert "90/32/4 ld Z · exited 1" in text
    assert text.count("pid namespace ") == 4


# -- graphviz ---------------------------------------------------------------------------------

_TOKEN = re.compile(r'\s*(?:(->)|([{}\[\];=,])|("(?:[^"\\]|\\.)*")|([A-Za-z_][A-Za-z_0-9.#]*|-?[0-9.]+))')


def parse_dot(text: str) -> tuple[set[str], list[tuple[str, str]], int]:
    """A strict reader for the subset of the DOT language render_dot writes: (nodes, edges,
    clusters). Raises AssertionError on anything else."""
    toks: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m and m.end() > pos, f"bad DOT at {text[pos:pos + 30]!r}"
        toks.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    nodes: set[str] = set()
    edges: list[tuple[str, str]] = []
    clusters = 0
    i = 0

    def take(expected: str | None = None) -> str:
        nonlocal i
        tok = toks[i]
        assert expected is None or tok == expected, f"expected {expected!r}, got {tok!r} at token {i}"
        i += 1
        return tok

    def attrs() -> None:
        take("[")
        while toks[i] != "]":
            take()
            take("=")
            take()
            if toks[i] == ",":
                take(",")
        take("]")

    def block() -> None:
        nonlocal clusters
        take("{")
        while toks[i] != "}":
            if toks[i] == "subgraph":
                take()
                assert take().startswith("cluster_")
                clusters += 1
                block()
                continue
            a = take()
            if toks[i] == "=":
                take("=")
                take()
            elif toks[i] == "->":
                take("->")
                edges.append((a, take()))
                if toks[i] == "[":
                    attrs()
            else:
                if a not in ("node", "edge", "graph"):
                    nodes.add(a)
                attrs()
            take(";")
        take("}")

    take("digraph")
    take()
    block()
    assert i == len(toks), "trailing tokens"
    return nodes, edges, clusters


def test_dot_of_the_small_table_parses_as_a_digraph(small: Kernel) -> None:
    dot = render_dot(small)
    assert dot.startswith("digraph pidfs {\n")
    nodes, edges, clusters = parse_dot(dot)
    assert clusters == 2
    procs = {n for n in nodes if n.startswith("p")}
    assert len(procs) == 6  # init, svc, box, app, job, daemon: threads are in their labels
    assert all(a in nodes and b in nodes for a, b in edges)
    ino = {t.comm: f"p{t.pid.ino}" for _, t in small.iter_tgids(small.root_ns)}
    assert (ino["init"], ino["svc"]) in edges and (ino["init"], ino["job"]) in edges
    assert re.search(rf'{ino["init"]} -> {ino["job"]} \[style=dashed.*label="fd 3"\]', dot)
    assert '"tagged, no process: 8"' in dot and 'label="7 job\\nZ exited 2"' in dot


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.toml")))
def test_dot_of_every_example_parses(name: str) -> None:
    k = load(EXAMPLES / name).kernel
    dot = render_dot(k)
    nodes, edges, clusters = parse_dot(dot)
    assert clusters == sum(1 for _ in k.namespaces())
    assert all(a in nodes and b in nodes for a, b in edges)
    procs = sum(1 for ns in k.namespaces() for _, t in k.iter_tgids(ns) if t.pid.ns is ns)
    assert len([n for n in nodes if n.startswith("p")]) == procs
    # every process but init has exactly one parent edge (the solid ones)
    children = [ln.split()[2].rstrip(";") for ln in dot.splitlines() if re.fullmatch(r"  p\d+ -> p\d+;", ln)]
    assert len(children) == len(set(children)) == procs - 1


# -- the CLI ----------------------------------------------------------------------------------


def test_cli_tree_of_a_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tree", "--scenario", str(EXAMPLES / "pid-wrap.toml"), "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "pid namespace 4026531836 (level 0, pid_max 32768, last pid 32766)"
    assert "   │     └─ 32762/399 python3 R" in out.splitlines()


def test_cli_tree_options(capsys: pytest.CaptureFixture[str]) -> None:
    f = str(EXAMPLES / "threads-100k.toml")
    assert cli.main(["tree", "--scenario", f, "--threads", "2", "--color", "always"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" in out and "… 99,997 more threads" in out
    assert cli.main(["tree", "--scenario", str(EXAMPLES / "daemons.toml"), "--format", "dot"]) == 0
    assert parse_dot(capsys.readouterr().out)[2] == 1
    assert cli.main(["tree"]) == 0  # the default table, not a tty: no colour
    out = capsys.readouterr().out
    assert "\x1b[" not in out and "systemd" in out


def test_cli_tree_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[process]]\nname = "a"\nthreads = "x"\n')
    assert cli.main(["tree", "--scenario", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err == (f'pidfs-fuse: {bad}: line 1: process[0].threads: expected an integer >= 0 or an array '
                   'of tables, got "x"\n')
    assert cli.main(["tree", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"pidfs-fuse: {tmp_path} is not a pidfs-fuse mount (no .control file)\n"


def test_tree_imports_the_kernel_and_the_standard_library_only() -> None:
    import sys

    from pidfs_fuse.tests.test_layers import PACKAGE_DIR, imported_modules

    path = PACKAGE_DIR / "tree.py"
    mods = {m for _, m in imported_modules(path.read_text(), "pidfs_fuse", str(path))}
    ours = {m for m in mods if m.startswith("pidfs_fuse")}
    assert ours and all(m.startswith("pidfs_fuse.kernel") for m in ours), ours
    assert all(m.split(".")[0] in sys.stdlib_module_names or m.startswith("pidfs_fuse")
               or m == "__future__" for m in mods), mods


def test_armed_triggers_follow_the_tree_as_triggers_lists_them(small: Kernel) -> None:
    c = Control(small)
    c.execute("on open 9/status times=2 do exit_group 9 0")
    c.execute("on readdir / do reap 7")
    c.execute("on read 2/stat do exec 2 comm=x")
    c.execute("cancel 3")
    assert render_text(small) == SMALL_TEXT + (
        "armed triggers (as 'triggers' lists them):\n"
        "├─ 1 open 9/status times=2 fired=0 errors=0 do exit_group 9 0\n"
        "└─ 2 readdir / times=1 fired=0 errors=0 do reap 7\n")
    dot = render_dot(small)
    assert dot.endswith(
        '  triggers [label="armed triggers:\\n1 open 9/status times=2 fired=0 errors=0 do '
        'exit_group 9 0\\n2 readdir / times=1 fired=0 errors=0 do reap 7", shape=note, '
        'color=purple];\n}\n')
    parse_dot(dot)  # still a digraph the strict reader accepts
    c.execute("cancel all")
    assert render_text(small) == SMALL_TEXT and "triggers" not in render_dot(small)
