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
