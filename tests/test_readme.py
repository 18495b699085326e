"""The README shows what the package does: its tour is a real run, its examples run."""

from __future__ import annotations

import os
import pydoc
import re
import subprocess
import sys

import pandas as pd
import pytest

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.registry import DEFAULT_ROW_LIMIT
from tests.tour import README, ROOT, readme_tour

#: A time of day, as a run prints it (it differs from run to run, its format does not).
TIME = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:\d{2}|Z)?")


def _section(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end != -1 else None]


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_the_tour_is_what_a_run_of_it_prints() -> None:
    ran = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "tour.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    text = README.read_text(encoding="utf-8")
    start, end = readme_tour(text)
    shown, printed = (TIME.sub("<time>", tour) for tour in (text[start:end], ran.stdout.rstrip("\n")))
    # Run `python tests/tour.py --write` after a change of what the tour prints.
    assert shown.splitlines() == printed.splitlines()


def test_the_readme_says_how_to_start_jupyter_lab_as_root() -> None:
    run_it = _section("## Run it")
    assert "jupyter lab --allow-root notebooks/quickstart.ipynb" in run_it
    assert "Running as root is not recommended" in run_it


def test_the_python_api_shows_every_method_a_user_needs() -> None:
    examples = "".join(_python_blocks(_section("## Architecture")))
    for method in ("add", "sources", "list_items", "describe", "query", "read", "update", "test", "remove"):
        assert f"session.{method}(" in examples, method
    assert 'secrets={"password": os.environ["PGPASSWORD"]}' in examples
    assert "limit=None" in examples


def test_the_python_api_example_runs_on_the_bundled_data(monkeypatch: pytest.MonkeyPatch) -> None:
    (example,) = [block for block in _python_blocks(_section("## Architecture")) if "shop.db" in block]
    monkeypatch.chdir(ROOT)
    names: dict[str, object] = {}
    exec(compile(example, "README.md", "exec"), names)
    eu, every_row, sales = (names[name] for name in ("eu", "every_row", "sales"))
    assert isinstance(eu, pd.DataFrame)
    assert isinstance(every_row, pd.DataFrame)
    assert set(eu["region"]) == {"EU"}
    assert len(eu) < len(every_row)
    assert isinstance(sales, pd.DataFrame)
    files = ROOT / "notebooks" / "data" / "files"
    csvs = sorted(files.glob("sales/*.csv"))
    assert set(sales["file"]) == {path.relative_to(files).as_posix() for path in csvs}
    assert len(sales) == sum(len(pd.read_csv(path)) for path in csvs)


def test_help_of_query_states_the_default_limit_and_how_to_lift_it() -> None:
    text = pydoc.render_doc(Session.query, renderer=pydoc.plaintext)
    assert f"{DEFAULT_ROW_LIMIT:,} rows" in text
    assert "``None`` for every row" in text


def test_every_test_and_script_the_readme_names_exists() -> None:
    named = set(re.findall(r"\b(?:tests|bench)/[\w/]+\.py\b", README.read_text(encoding="utf-8")))
    assert named
    assert sorted(path for path in named if not (ROOT / path).is_file()) == []
