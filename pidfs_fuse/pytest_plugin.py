"""A pytest plugin for people who test tools that parse /proc: fixtures that mount a live,
deterministic process table and a client that drives it.

Design note. Each mount is a real ``pidfs-fuse`` server in a child process of the test run
(``python -m pidfs_fuse.mount``, the same server ``pidfs-fuse mount`` starts), serving a fresh
temporary directory; the test changes the table through ``MOUNT/.control``, exactly as a shell
script would, so what the tool under test reads is what a FUSE client gets (no in-process
shortcuts that a real mount would not have). Nothing is shared between mounts: every fixture
call gets its own server and directory, so tests may run in parallel, and one test may hold
several mounts.

Cleanup never depends on the test passing: the fixture's finalizer runs ``pidfs-fuse unmount``
and, if that fails (a descriptor still open, a wedged server), a lazy ``fusermount3 -u -z`` and
SIGKILL of that one server pid. Interruptions are covered three more ways: pytest runs the
finalizers on KeyboardInterrupt; a process-wide registry of live mounts is emptied at
interpreter exit and on SIGTERM/SIGHUP (handlers installed only while a mount is live, and only
when nobody else set one); a server started from the main thread gets PR_SET_PDEATHSIG, so it
unmounts itself if the test process is killed outright.

Entry points (registered as the ``pidfs_fuse`` pytest11 plugin)::

    def test_listing(pidfs):                     # the embedded default table
        pid = pidfs.clone(1, comm="worker")
        assert (pidfs.path / str(pid) / "comm").read_text() == "worker\\n"

    @pytest.mark.pidfs_scenario("tables/zombies.toml", options="hidepid=2")
    def test_zombies(pidfs): ...                 # relative paths: from the test file's folder

    @pytest.mark.parametrize("pidfs", ["a.toml", None], indirect=True)
    def test_both(pidfs): ...                    # a path, None (default), or a dict of options

    def test_two(pidfs_factory):
        a, b = pidfs_factory(), pidfs_factory("b.toml", tgid_scan="linear")

Outside pytest, ``mount_table(...)`` is a context manager with the same result.

Client methods mirror the control commands (``help`` on a mount lists them): they return ints,
lists of ints or small typed records and raise ``OSError`` with the command's errno and the
reply's sentence (so ``except ProcessLookupError`` catches ESRCH). They block the calling thread
while the server works; ``wait`` without ``nohang`` blocks on ``.control`` until a child changes
state (Ctrl-C still interrupts it, and a wait given up on consumes nothing; see
``pidfs_fuse.client``). In a trio test a blocking call blocks the event loop, so use the ``aio``
twins, which run in worker threads: ``await pidfs.aio.wait(1, pid=pid)``.

The client, the records and the mounting live in ``pidfs_fuse.client`` (shared with the CLI and
the benchmarks); this module re-exports them (``WaitStatus``, ``PsRow``, ``MountError``,
``Client``, ``AsyncClient``, ``PidfsMount``) and adds the pytest glue.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from . import client as _client
from .client import MOUNT_TIMEOUT, AsyncClient, Client, MountError, PidfsMount, PsRow, Trigger, WaitStatus

__all__ = ["MOUNT_TIMEOUT", "AsyncClient", "Client", "MountError", "PidfsMount", "PsRow", "Trigger",
           "WaitStatus", "mount_table", "pidfs", "pidfs_factory"]

MARKER = "pidfs_scenario"


# client.mount_table, its directories named pidfs-pytest-... as they always were
@functools.wraps(_client.mount_table)
def mount_table(*args: Any, **kwargs: Any) -> PidfsMount:
    kwargs.setdefault("prefix", "pidfs-pytest-")
    return _client.mount_table(*args, **kwargs)


# -- pytest glue ----------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(path=None, **options): the table the `pidfs` fixture mounts: a "
        "scenario file (relative to the test file's folder) or None for the default; options "
        "as pidfs_fuse.pytest_plugin.mount_table's (options='hidepid=2', tgid_scan='linear')")


def _resolve(request: pytest.FixtureRequest, path: str | os.PathLike[str] | None) -> str | None:
    """A scenario path: absolute as given, else from the test file's folder, else from the
    working directory."""
    if path is None:
        return None
    p = Path(path)
    if p.is_absolute():
        return str(p)
    here = Path(request.node.path).parent / p
    return str(here if here.exists() else p.resolve())


@pytest.fixture
def pidfs_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., PidfsMount]]:
    """``pidfs_factory(scenario=None, **options) -> PidfsMount``: mount as many tables as the
    test needs (``options`` as ``mount_table``'s); each is unmounted at teardown, whatever the
    test's outcome."""
    made: list[PidfsMount] = []

    def factory(scenario: str | os.PathLike[str] | None = None, **options: Any) -> PidfsMount:
        if "restore" in options:
            options["restore"] = _resolve(request, options["restore"])
        m = mount_table(_resolve(request, scenario), **options)
        made.append(m)
        return m

    try:
        yield factory
    finally:
        for m in reversed(made):
            m.unmount()


@pytest.fixture
def pidfs(request: pytest.FixtureRequest, pidfs_factory: Callable[..., PidfsMount]) -> PidfsMount:
    """A table mounted for this test: the embedded default, the scenario of a
    ``@pytest.mark.pidfs_scenario(path, **options)`` marker, or the indirect parameter (a
    path, None, or a dict of ``mount_table`` arguments)."""
    scenario: Any = None
    options: dict[str, Any] = {}
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        if len(marker.args) > 1:
            raise pytest.UsageError(f"@pytest.mark.{MARKER} takes one path and keyword options")
        scenario = marker.args[0] if marker.args else marker.kwargs.get("scenario")
        options = {k: v for k, v in marker.kwargs.items() if k != "scenario"}
    param = getattr(request, "param", None)
    if isinstance(param, Mapping):
        options = dict(param)
        scenario = options.pop("scenario", None)
    elif param is not None:
        scenario = param
    return pidfs_factory(scenario, **options)
