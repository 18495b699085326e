"""The test setup itself: the pinned npm packages install cleanly on this machine's Node.js."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services.azurite import NPM_PREFIX


def test_the_pinned_azurite_and_its_dependencies_accept_this_node(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm not found on PATH; the test session installs Azurite with it")
    for name in ("package.json", "package-lock.json"):
        shutil.copy(NPM_PREFIX / name, tmp_path / name)
    # --engine-strict turns every EBADENGINE warning into an error; --dry-run installs nothing.
    result = subprocess.run(
        [npm, "ci", "--dry-run", "--engine-strict", "--no-audit", "--no-fund"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "EBADENGINE" not in result.stdout + result.stderr


def test_the_tests_run_in_a_random_order_that_the_header_names() -> None:
    """The README's test command (also CI's) shuffles the tests and prints the seed to repeat it."""
    root = Path(__file__).resolve().parents[2]
    orders = []
    for seed in ("1", "2"):
        listed = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "--collect-only",
                "-p",
                "no:cacheprovider",
                f"--randomly-seed={seed}",
                "tests/core/test_sqlparams.py",
            ],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert f"Using --randomly-seed={seed}" in listed.stdout
        orders.append([line for line in listed.stdout.splitlines() if "<Function " in line])
    assert sorted(orders[0]) == sorted(orders[1])
    assert orders[0] != orders[1]  # the seed changes the order


def test_the_test_session_installs_the_pinned_emulator_once_per_lock_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's test command alone sets up Azurite: `npm ci` when node_modules is missing or
    stale, one line saying so, and nothing on the next run (a recording `npm` stands in for it)."""
    from tests.services import azurite

    prefix = tmp_path / "tests"
    prefix.mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copy(NPM_PREFIX / name, prefix / name)
    calls = tmp_path / "npm-calls"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    npm = fake_bin / "npm"
    npm.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{calls}"\n'
        'while [ "$1" != "--prefix" ]; do shift; done\n'
        'mkdir -p "$2/node_modules"\n'
    )
    npm.chmod(0o755)
    monkeypatch.setattr(azurite, "NPM_PREFIX", prefix)
    monkeypatch.setenv("PATH", f"{fake_bin}:/usr/bin:/bin")
    said: list[str] = []

    azurite.install_pinned_npm_packages(say=said.append)
    assert calls.read_text().splitlines() == [f"ci --prefix {prefix} --no-audit --no-fund"]
    assert said == [f"installing the pinned Azurite into {prefix / 'node_modules'} (npm ci, once)"]

    azurite.install_pinned_npm_packages(say=said.append)  # installed from this lock: nothing to do
    assert len(calls.read_text().splitlines()) == 1
    assert len(said) == 1

    lock = prefix / "package-lock.json"
    lock.write_text(lock.read_text().replace('"lockfileVersion"', '"name_changed": 1, "lockfileVersion"', 1))
    azurite.install_pinned_npm_packages(say=said.append)  # another pin: installed again
    assert len(calls.read_text().splitlines()) == 2
