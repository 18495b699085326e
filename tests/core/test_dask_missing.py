"""Without the dask extra, Session.to_dask is one clear line saying what to install."""

from __future__ import annotations

import sys

import pytest

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.errors import ConfigurationError


def test_to_dask_without_dask_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dask.dataframe", None)  # import fails as if not installed
    with (
        Session() as session,
        pytest.raises(ConfigurationError, match=r"pip install 'deepanalyze-jupyter\[dask\]'"),
    ):
        session.to_dask("pg", "SELECT 1", partition_on="id")


def test_importing_the_package_does_not_import_dask() -> None:
    import subprocess

    code = "import sys, deepanalyze_jupyter.session; print('dask' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "False"
    )
