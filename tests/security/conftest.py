"""Fixtures of the attack tests: a second local user, a folder that user can reach,
and a compiled mesh with its ACL rules (helpers are in attack_kit.py).

A folder under pytest's ``tmp_path`` is useless for the "other local user" tests:
``/tmp/pytest-of-root`` is 0700, so every file below it is out of that user's reach
whatever meshc does. The folders here are made world-traversable on purpose, and each
test checks that the other user *can* read an ordinary file beside ``.meshc``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from attack_kit import MESH, OtherUser, python_for_anyone
from meshc.codegen.build import Built, build_cached
from meshc.runtime.process.server import stop_server


@pytest.fixture(scope="session")
def other_user() -> Iterator[OtherUser]:
    """A throw-away local user, created with useradd and deleted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("creating a second local user (useradd) and running as it needs root")
    useradd, userdel = shutil.which("useradd"), shutil.which("userdel")
    if useradd is None or userdel is None:
        pytest.skip("useradd/userdel are not installed (Debian package passwd)")
    python = python_for_anyone()
    if python is None:
        pytest.skip("no Python interpreter that every local user may run (/usr/bin/python3)")
    name = f"meshcx{os.getpid()}"
    argv = [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]
    for _ in range(20):  # another useradd may hold the lock on /etc/passwd (exit 10)
        made = subprocess.run(argv, capture_output=True, text=True, check=False)
        if made.returncode != 10:
            break
        time.sleep(0.5)
    if made.returncode != 0:
        pytest.fail(f"useradd {name} failed: {made.stderr.strip()}")
    entry = pwd.getpwnam(name)
    try:
        yield OtherUser(name, entry.pw_uid, entry.pw_gid, python)
    finally:
        subprocess.run([userdel, name], check=False, capture_output=True)


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A working folder every local user can enter (0755, under /tmp), with a mesh file
    readable by all, as a project folder usually is; its embedded server is stopped."""
    folder = Path(tempfile.mkdtemp(prefix="meshc-open-", dir="/tmp"))
    folder.chmod(0o755)
    (folder / "guarded.yaml").write_text(textwrap.dedent(MESH), encoding="utf-8")
    (folder / "guarded.yaml").chmod(0o644)
    try:
        yield folder
    finally:
        stop_server(folder)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Built]]:
    """The ``guarded`` mesh file and its compiled package (ACL rules included)."""
    folder = tmp_path_factory.mktemp("guarded")
    path = folder / "guarded.yaml"
    path.write_text(textwrap.dedent(MESH), encoding="utf-8")
    built = build_cached(str(path), folder)
    built.load_spec()  # puts the build on sys.path, where enable() imports its acl module
    yield path, built
    if str(built.root) in sys.path:
        sys.path.remove(str(built.root))
