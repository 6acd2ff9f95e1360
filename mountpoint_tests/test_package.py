"""The package as users get it: ``python -m build`` makes an sdist and a wheel from a clean copy
of the source tree, the wheel holds the code and its data but no tests, and installed into a
fresh venv its ``pidfs-fuse`` mounts a table. About 40 s (the venv install dominates)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

from .conftest import force_cleanup, server_pid

REPO = Path(__file__).resolve().parents[1]


def run(*cmd: str | os.PathLike[str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    args = [os.fspath(c) for c in cmd]
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(args)}: {r.stdout[-2000:]}{r.stderr[-2000:]}"
    return r


def test_sdist_and_wheel_build_without_tests_and_install_into_a_fresh_venv_that_mounts(tmp_path):
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    name, version = meta["name"], meta["version"]
    # a clean copy, as a fresh checkout builds: no venv, no stale egg-info
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", "build", "dist"))
    out = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--outdir", out, src)
    wheel = out / f"{name}-{version}-py3-none-any.whl"
    sdist = out / f"{name}-{version}.tar.gz"
    files = zipfile.ZipFile(wheel).namelist()
    tops = {f.split("/")[0] for f in files}
    assert tops == {"pidfs_fuse", f"{name}-{version}.dist-info"}
    assert not [f for f in files if f.startswith("pidfs_fuse/tests")]
    assert {"pidfs_fuse/scenarios/default.toml", "pidfs_fuse/capture.py", "pidfs_fuse/mount/server.py",
            f"{name}-{version}.dist-info/licenses/LICENSE"} <= set(files)
    metadata = zipfile.ZipFile(wheel).read(f"{name}-{version}.dist-info/METADATA").decode()
    for line in ("License-Expression: MIT", "Author: pidfs_fuse developers",
                 "Classifier: Operating System :: POSIX :: Linux",
                 "Project-URL: Source, https://github.com/pidfs-fuse/pidfs_fuse"):
        assert line in metadata.splitlines()
    with tarfile.open(sdist) as tar:
        in_sdist = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    assert {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml",
            "pidfs_fuse/scenarios/default.toml"} <= in_sdist
    assert not [m for m in in_sdist if m.startswith(("mountpoint_tests", "pidfs_fuse/tests", "bench"))]

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin/pip", "install", "--disable-pip-version-check", wheel)
    cli = venv / "bin/pidfs-fuse"
    assert run(cli, "--version").stdout == f"pidfs-fuse {version}\n"
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        run(cli, "mount", mnt, timeout=60)
        assert (mnt / "1" / "comm").read_text() == "systemd\n"
        # the fresh venv's interpreter serves it, not this checkout's
        pid = server_pid(str(mnt))
        assert pid is not None
        exe = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        assert exe.startswith(f"{venv}/bin/python"), exe
        run(cli, "unmount", mnt, timeout=60)
        assert not os.path.ismount(mnt)
    finally:
        if os.path.ismount(mnt):
            force_cleanup(str(mnt))
