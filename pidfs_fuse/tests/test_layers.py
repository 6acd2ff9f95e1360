"""The layering rule, checked by reading imports with `ast`.

kernel/ is the pure model: it imports the standard library and other kernel/ modules only (never
procfs/, mount/, pyfuse3, trio or any third-party package), and does no I/O: no `os`, `json`,
`tempfile` or other module that reaches files, processes or the network, and no call of the
builtins `open`, `print` or `input`. procfs/ is pure presentation: it never imports pyfuse3,
trio or pidfs_fuse.mount. See CONVENTIONS.md, "three layers, imports point down".

Nothing outside kernel/ uses kernel/'s private names: an `x._name` attribute (or
`getattr(x, "_name")`, or `from ...kernel.m import _name`) where `_name` is an underscore name
kernel/ defines (a method, a slot or attribute assigned as `self._name`, a class or module
attribute) and `x` is not `self`. The names come from parsing kernel/, so the check follows the
model as it changes; white-box unit tests of kernel/ internals are listed, name by name, in
`WHITE_BOX`.

Relative imports are resolved to absolute module names before checking, so `from ..mount import x`
is caught as surely as `import pidfs_fuse.mount`. Imports under `if TYPE_CHECKING:` count too: a
type-only dependency on a higher layer is still a dependency. The source files are parsed, never
imported, so the check runs even when a layer does not import cleanly.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../pidfs_fuse
ROOT_PACKAGE = PACKAGE_DIR.name
KERNEL = f"{ROOT_PACKAGE}.kernel"
PROCFS = f"{ROOT_PACKAGE}.procfs"
MOUNT = f"{ROOT_PACKAGE}.mount"


def package_of(path: Path) -> str:
    """The package a relative import in `path` is relative to (its directory)."""
    return ".".join(path.parent.relative_to(PACKAGE_DIR.parent).parts)


def imported_modules(source: str, package: str, filename: str = "<src>") -> Iterator[tuple[int, str]]:
    """Yield (line, absolute module name) for every import in `source`.

    `from A import b` yields both A and A.b, since b may be a submodule. Calls of
    `importlib.import_module("...")` and `__import__("...")` with a literal name count as imports.
    """
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                if node.level - 1 >= len(parts):
                    raise AssertionError(
                        f"{filename}:{node.lineno}: relative import beyond the top-level package"
                    )
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                if node.module:
                    base = f"{base}.{node.module}"
            else:
                base = node.module or ""
            yield node.lineno, base
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{base}.{alias.name}"
        elif (isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.lineno, node.args[0].value


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in {"__import__", "import_module"}
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


#: top-level modules that do I/O (files, processes, the network, the terminal): not in kernel/
IO_MODULES = frozenset({
    "os", "io", "json", "tempfile", "shutil", "pathlib", "glob", "fileinput", "socket",
    "socketserver", "ssl", "subprocess", "select", "selectors", "fcntl", "termios", "pty",
    "mmap", "sqlite3", "dbm", "pickle", "shelve", "marshal", "csv", "gzip", "bz2", "lzma",
    "zipfile", "tarfile", "urllib", "http", "ftplib", "smtplib", "asyncio", "multiprocessing",
    "threading", "sys", "importlib.resources", "logging.handlers",
})
#: builtins that do I/O
IO_BUILTINS = frozenset({"open", "print", "input"})


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def kernel_violation(name: str) -> str | None:
    """Why kernel/ may not import `name`, or None if it may."""
    if within(name, KERNEL):
        return None
    if within(name, ROOT_PACKAGE):
        return "kernel/ imports only kernel/ and the standard library"
    for io_module in IO_MODULES:
        if within(name, io_module):
            return f"kernel/ does no I/O ({io_module})"
    if name.split(".")[0] in sys.stdlib_module_names:
        return None
    return "kernel/ imports only kernel/ and the standard library (third-party module)"


def procfs_violation(name: str) -> str | None:
    """Why procfs/ may not import `name`, or None if it may."""
    for forbidden in ("pyfuse3", "trio", MOUNT):
        if within(name, forbidden):
            return f"procfs/ never imports {forbidden}"
    return None


def io_calls(source: str, filename: str = "<src>") -> Iterator[tuple[int, str]]:
    """Yield (line, name) for every call of an I/O builtin (``open(...)``, ``print(...)``)."""
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in IO_BUILTINS:
            yield node.lineno, node.func.id


def violations(layer_dir: Path, rule: Callable[[str], str | None]) -> list[str]:
    found = []
    for path in sorted(layer_dir.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        for line, name in imported_modules(source, package_of(path), str(path)):
            reason = rule(name)
            if reason:
                found.append(f"{path.relative_to(PACKAGE_DIR.parent)}:{line}: {name}: {reason}")
    return found


def test_kernel_package_exists() -> None:
    kernel = PACKAGE_DIR / "kernel"
    assert kernel.is_dir(), f"missing {kernel}"
    assert (kernel / "__init__.py").is_file(), f"{kernel} has no __init__.py (setuptools would skip it)"


def test_kernel_imports_only_stdlib_and_kernel() -> None:
    found = violations(PACKAGE_DIR / "kernel", kernel_violation)
    assert not found, "\n".join(found)


def test_kernel_calls_no_io_builtin() -> None:
    found = [f"{path.relative_to(PACKAGE_DIR.parent)}:{line}: {name}()"
             for path in sorted((PACKAGE_DIR / "kernel").rglob("*.py"))
             for line, name in io_calls(path.read_text(encoding="utf-8"), str(path))]
    assert not found, "\n".join(found)


def test_procfs_imports_neither_fuse_nor_trio_nor_mount() -> None:
    found = violations(PACKAGE_DIR / "procfs", procfs_violation)
    assert not found, "\n".join(found)


# The checker itself, on sources written to break (and keep) the rules, so the tests above
# cannot pass merely because the checker sees nothing.
KERNEL_PKG = f"{KERNEL}.sub"


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        ("import errno, bisect", True),
        ("from __future__ import annotations", True),
        ("from collections.abc import Iterator", True),
        ("from . import idr", True),
        ("from .. import pid", True),
        (f"from {KERNEL}.pid import Pid", True),
        ("import importlib\nimportlib.import_module('enum')", True),
        ("import trio", False),
        ("import pyfuse3", False),
        ("import numpy.linalg", False),
        ("from ... import procfs", False),
        ("from ...procfs.render import show_status", False),
        ("from ...mount import server", False),
        (f"import {PROCFS}", False),
        (f"from {ROOT_PACKAGE} import control", False),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import trio", False),
        ("def f():\n    import trio", False),
        ("import importlib\nimportlib.import_module('trio')", False),
        ("__import__('pyfuse3')", False),
        ("import os", False),
        ("import os.path", False),
        ("from os import fspath", False),
        ("import json", False),
        ("import tempfile", False),
        ("from pathlib import Path", False),
        ("import importlib.resources", False),
        ("import importlib\nimportlib.import_module('json')", False),
        ("import time, bisect, enum, dataclasses", True),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_kernel_rule_checker(source: str, allowed: bool) -> None:
    reasons = [kernel_violation(name) for _, name in imported_modules(source, KERNEL_PKG)]
    assert (not any(reasons)) is allowed, reasons


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        ("import os", True),
        ("from ..kernel import Task", True),
        ("from . import base", True),
        ("import trio", False),
        ("from trio import lowlevel", False),
        ("import pyfuse3", False),
        ("from .. import mount", False),
        ("from ..mount.server import serve", False),
        (f"from {ROOT_PACKAGE} import mount", False),
        (f"import {MOUNT}.server", False),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_procfs_rule_checker(source: str, allowed: bool) -> None:
    reasons = [procfs_violation(name) for _, name in imported_modules(source, PROCFS)]
    assert (not any(reasons)) is allowed, reasons


@pytest.mark.parametrize(
    ("source", "calls"),
    [
        ("x = open('f')", ["open"]),
        ("def f():\n    print('hi')", ["print"]),
        ("s = input()", ["input"]),
        ("k.pidfd_open(ns, 1)\nself.open()", []),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_io_builtin_checker(source: str, calls: list[str]) -> None:
    assert [name for _, name in io_calls(source)] == calls


def test_relative_imports_resolve_against_the_containing_package() -> None:
    assert package_of(PACKAGE_DIR / "kernel" / "__init__.py") == KERNEL
    assert package_of(PACKAGE_DIR / "kernel" / "pid.py") == KERNEL


# -- kernel/'s private names stay inside kernel/ ---------------------------------------------------

KERNEL_DIR = PACKAGE_DIR / "kernel"
REPO_DIR = PACKAGE_DIR.parent
#: Python files checked: the package outside kernel/, and the repository's other code
CHECKED_ROOTS = (PACKAGE_DIR, REPO_DIR / "bench", REPO_DIR / "mountpoint_tests", REPO_DIR / "examples")
#: white-box unit tests of kernel/ internals: file -> the private names it may use, and why
WHITE_BOX: dict[str, frozenset[str]] = {
    # a TGID task on an untagged pid is a ModelBug that no public call can provoke
    "pidfs_fuse/tests/test_kernel_tagged_scan.py": frozenset({"_attach_tgid"}),
    # the BitSet/Idr summary levels are checked against their bits after every step
    "pidfs_fuse/tests/test_stateful.py": frozenset({"_nonempty", "_bits", "_ne_up", "_full",
                                                     "_used", "_tagged", "_ptr"}),
}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def defined_private_names(source: str, filename: str = "<src>") -> set[str]:
    """The underscore names a kernel/ module defines for use through an object or the module:
    module-level functions, classes, assignments and import aliases; methods, class attributes
    and ``__slots__`` entries; and attributes assigned as ``self._name`` anywhere."""
    tree = ast.parse(source, filename=filename)
    names: set[str] = set()

    def targets(node: ast.stmt) -> Iterator[str]:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            yield node.target.id
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        yield n.id
                if isinstance(t, ast.Name) and t.id == "__slots__":
                    for c in ast.walk(node.value):
                        if isinstance(c, ast.Constant) and isinstance(c.value, str):
                            yield c.value
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                yield alias.asname or alias.name.split(".")[0]

    bodies = [tree.body] + [n.body for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    for body in bodies:
        for stmt in body:
            names.update(n for n in targets(stmt) if _private(n))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name) and node.value.id == "self" and _private(node.attr)):
            names.add(node.attr)
    return names


def kernel_private_names() -> set[str]:
    names: set[str] = set()
    for path in sorted(KERNEL_DIR.rglob("*.py")):
        names |= defined_private_names(path.read_text(encoding="utf-8"), str(path))
    return names


def private_uses(source: str, package: str, names: set[str],
                 filename: str = "<src>") -> Iterator[tuple[int, str, str]]:
    """Yield (line, name, text) for every use of one of kernel/'s private ``names`` through something
    other than ``self``: ``x._name``, ``getattr(x, "_name")`` (and set/has/delattr), and
    ``from <kernel module> import _name``."""
    tree = ast.parse(source, filename=filename)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in names:
            if not (isinstance(node.value, ast.Name) and node.value.id == "self"):
                yield node.lineno, node.attr, ast.unparse(node)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in {"getattr", "setattr", "hasattr", "delattr"} and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and node.args[1].value in names):
            yield node.lineno, node.args[1].value, ast.unparse(node)
    for line, module in imported_modules(source, package, filename):
        head, _, last = module.rpartition(".")
        if within(head, KERNEL) and _private(last):
            yield line, last, f"import of {module}"


def checked_files() -> list[Path]:
    files = []
    for root in CHECKED_ROOTS:
        for path in sorted(root.rglob("*.py")):
            if KERNEL_DIR not in path.parents and ".venv" not in path.parts:
                files.append(path)
    return files


def test_kernel_private_names_are_found() -> None:
    """The rule below would pass vacuously if no private name were found: these are the ones
    the snapshot code used to reach for, and each is still defined in kernel/."""
    names = kernel_private_names()
    assert {"_alloc_pid", "_next_ino", "_next_ns_inum", "_by_ino", "_change_pgrp",
            "_change_session", "_ptr", "_insert", "_emit"} <= names, sorted(names)


def test_the_private_name_rule_reads_every_module_above_kernel() -> None:
    rel = {str(p.relative_to(REPO_DIR)) for p in checked_files()}
    for expected in ("pidfs_fuse/snapshot.py", "pidfs_fuse/scenario.py", "pidfs_fuse/schema.py",
                     "pidfs_fuse/control.py", "pidfs_fuse/cli.py", "pidfs_fuse/tree.py",
                     "pidfs_fuse/mount/fs.py", "pidfs_fuse/tests/test_snapshot.py",
                     "bench/snapshot_bench.py"):
        assert expected in rel
    assert not any(r.startswith("pidfs_fuse/kernel/") for r in rel)


def test_no_module_outside_kernel_uses_a_kernel_private_name() -> None:
    names = kernel_private_names()
    found, used_white_box = [], set()
    for path in checked_files():
        rel = str(path.relative_to(REPO_DIR))
        allowed = WHITE_BOX.get(rel, frozenset())
        source = path.read_text(encoding="utf-8")
        for line, name, text in private_uses(source, package_of(path), names, str(path)):
            if name in allowed:
                used_white_box.add((rel, name))
                continue
            found.append(f"{rel}:{line}: {text}")
    assert not found, "kernel/ private names used outside kernel/:\n" + "\n".join(found)
    stale = {(f, n) for f, ns in WHITE_BOX.items() for n in ns} - used_white_box
    assert not stale, f"WHITE_BOX lists names its files no longer use: {sorted(stale)}"


_SAMPLE_KERNEL = """
import errno as _errno
_FIRST = 2
def _check(x): ...
class Kernel:
    __slots__ = ("_slot", "public")
    _class_attr: int = 0
    def __init__(self):
        self._next_ino = 2
    def _alloc_pid(self): ...
    def __repr__(self): ...
"""


def test_defined_private_names_reads_every_kind_of_definition() -> None:
    assert defined_private_names(_SAMPLE_KERNEL) == {
        "_errno", "_FIRST", "_check", "_slot", "_class_attr", "_next_ino", "_alloc_pid"}


@pytest.mark.parametrize(
    ("source", "uses"),
    [
        ("k._next_ino", ["k._next_ino"]),
        ("self.kernel._alloc_pid(ns, (), True, True)", ["self.kernel._alloc_pid"]),
        ("kernel.root_ns.idr._ptr.values()", ["kernel.root_ns.idr._ptr"]),
        ("k._next_ino = 5", ["k._next_ino"]),
        ("getattr(k, '_by_ino')", ["getattr(k, '_by_ino')"]),
        ("from pidfs_fuse.kernel.core import _einval", ["import of pidfs_fuse.kernel.core._einval"]),
        ("from ..kernel.pid import _private_helper", ["import of pidfs_fuse.kernel.pid._private_helper"]),
        ("self._next_ino", []),
        ("self._next_ino = 1", []),
        ("os._exit(0)", []),
        ("x._not_a_kernel_name", []),
        ("k.__class__", []),
        ("from pidfs_fuse.kernel import restore\nrestore.counters(k).next_ino", []),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_private_use_checker(source: str, uses: list[str]) -> None:
    names = {"_next_ino", "_alloc_pid", "_ptr", "_by_ino", "_exit_code_arg"}
    assert [text for _, _, text in private_uses(source, ROOT_PACKAGE + ".tests", names)] == uses
