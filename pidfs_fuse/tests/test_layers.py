"""The layering rule, checked by reading imports with `ast`.

kernel/ is the pure model: it imports the standard library and other kernel/ modules only (never
procfs/, mount/, pyfuse3, trio or any third-party package). procfs/ is pure presentation: it never
imports pyfuse3, trio or pidfs_fuse.mount. See CONVENTIONS.md, "three layers, imports point down".

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


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def kernel_violation(name: str) -> str | None:
    """Why kernel/ may not import `name`, or None if it may."""
    if within(name, KERNEL):
        return None
    if within(name, ROOT_PACKAGE):
        return "kernel/ imports only kernel/ and the standard library"
    if name.split(".")[0] in sys.stdlib_module_names:
        return None
    return "kernel/ imports only kernel/ and the standard library (third-party module)"


def procfs_violation(name: str) -> str | None:
    """Why procfs/ may not import `name`, or None if it may."""
    for forbidden in ("pyfuse3", "trio", MOUNT):
        if within(name, forbidden):
            return f"procfs/ never imports {forbidden}"
    return None


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


def test_procfs_imports_neither_fuse_nor_trio_nor_mount() -> None:
    found = violations(PACKAGE_DIR / "procfs", procfs_violation)
    assert not found, "\n".join(found)


# The checker itself, on sources written to break (and keep) the rules, so the tests above
# cannot pass merely because the checker sees nothing.
KERNEL_PKG = f"{KERNEL}.sub"


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        ("import os, errno", True),
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


def test_relative_imports_resolve_against_the_containing_package() -> None:
    assert package_of(PACKAGE_DIR / "kernel" / "__init__.py") == KERNEL
    assert package_of(PACKAGE_DIR / "kernel" / "pid.py") == KERNEL
