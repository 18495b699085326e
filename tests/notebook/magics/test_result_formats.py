"""``--as`` and ``--cache`` of the magics and their ``%config`` settings, on real SQLite and folders."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from IPython.core.interactiveshell import InteractiveShell

from deepanalyze_jupyter.notebook.extension import get_session
from deepanalyze_jupyter.session import Session

from .conftest import run, usage_error


@pytest.fixture
def shop(shell: InteractiveShell, tmp_path: Path) -> Path:
    """A real SQLite source ``shop`` with an ``orders`` table of three rows."""
    path = tmp_path / "shop.db"
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("CREATE TABLE orders (id INTEGER, region TEXT, amount INTEGER)")
        connection.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)", [(1, "EU", 10), (2, "US", None), (3, "EU", 30)]
        )
    assert run(shell, f"%datasource add shop --type sqlite --path '{path}'").error is None
    return path


def _add_row(path: Path) -> None:
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("INSERT INTO orders VALUES (4, 'APAC', 40)")


@pytest.mark.parametrize(
    ("output", "kind"), [("pandas", pd.DataFrame), ("arrow", pa.Table), ("polars", pl.DataFrame)]
)
def test_as_gives_the_format_and_assigns_it(
    shell: InteractiveShell, shop: Path, output: str, kind: type
) -> None:
    ran = run(shell, f"%%dsquery shop --as {output} -o orders\nSELECT * FROM orders ORDER BY id")
    assert ran.error is None, ran.text
    assert isinstance(ran.result, kind)
    assert shell.user_ns["orders"] is ran.result
    assert len(ran.result) == 3


def test_the_cut_note_is_shown_in_every_format(shell: InteractiveShell, shop: Path) -> None:
    for output in ("arrow", "polars"):
        ran = run(shell, f"%%dsquery shop --as {output} --limit 2\nSELECT * FROM orders ORDER BY id")
        assert ran.error is None, ran.text
        assert (
            ran.out.splitlines()[0]
            == "Showing the first 2 rows; the result was cut at --limit 2. Use --no-limit to fetch all."
        )


def test_config_output_sets_the_default_and_as_overrides_it(shell: InteractiveShell, shop: Path) -> None:
    assert run(shell, "%config DataSourceMagics.output = 'arrow'").error is None
    assert isinstance(run(shell, "%%dsquery shop\nSELECT id FROM orders").result, pa.Table)
    assert isinstance(run(shell, "%%dsquery shop --as pandas\nSELECT id FROM orders").result, pd.DataFrame)


def test_a_bad_format_fails_in_one_line(shell: InteractiveShell, shop: Path) -> None:
    assert "invalid choice: 'feather'" in usage_error(shell, "%%dsquery shop --as feather\nSELECT 1")
    ran = run(shell, "%config DataSourceMagics.output = 'feather'")
    assert ran.error is not None
    assert "unknown result format 'feather'; use one of pandas, arrow, polars" in ran.text
    assert "Traceback" not in ran.text


def test_read_takes_as_for_files(shell: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "sales.csv").write_text("region,amount\nEU,10\nUS,\n")
    assert run(shell, f"%datasource add files --type local --path '{tmp_path}'").error is None
    table = run(shell, "%datasource read files sales.csv --as arrow").result
    assert isinstance(table, pa.Table)
    assert table.column("amount").to_pylist() == [10, None]
    frame = run(shell, "%%dsquery files --as polars\nsales.csv").result
    assert isinstance(frame, pl.DataFrame)
    assert frame["amount"].to_list() == [10, None]


def test_cache_reuses_a_result_without_asking_the_source(shell: InteractiveShell, shop: Path) -> None:
    query = "%%dsquery shop --cache 60\nSELECT * FROM orders ORDER BY id"
    first = run(shell, query)
    assert first.error is None
    assert "from the cache" not in first.out
    _add_row(shop)
    again = run(shell, query)
    assert again.out.splitlines()[0] == "shop: from the cache, 0 s old."
    assert len(again.result) == 3  # the row added since was not fetched
    assert again.result is not first.result  # a copy: changing one leaves the other
    assert len(run(shell, "%%dsquery shop\nSELECT * FROM orders ORDER BY id").result) == 4  # no --cache
    cleared = run(shell, "%datasource cache clear shop").out.strip()
    assert cleared == "Cleared 0 cached item(s) and 1 cached result(s) of 'shop'."
    assert len(run(shell, query).result) == 4


def test_config_cache_ttl_and_size(shell: InteractiveShell, shop: Path, session: Session) -> None:
    assert run(shell, "%config DataSourceMagics.cache_ttl = 60").error is None
    run(shell, "%%dsquery shop\nSELECT * FROM orders")
    _add_row(shop)
    assert len(run(shell, "%%dsquery shop\nSELECT * FROM orders").result) == 3
    assert run(shell, "%config DataSourceMagics.cache_max_mb = 0").error is None
    assert session.registry.results.max_bytes == 0
    assert len(session.registry.results) == 0
    assert len(run(shell, "%%dsquery shop\nSELECT * FROM orders").result) == 4
    ran = run(shell, "%config DataSourceMagics.cache_ttl = -1")
    assert ran.error is not None
    assert "cache_ttl must be 0 or more" in ran.text


def test_cache_settings_survive_reloading_the_extension(shell: InteractiveShell) -> None:
    assert run(shell, "%config DataSourceMagics.cache_max_mb = 3").error is None
    assert run(shell, "%reload_ext deepanalyze_jupyter").error is None
    session = get_session(shell)
    assert session is not None
    assert session.registry.results.max_bytes == 3 * 2**20


def test_a_line_query_takes_as(shell: InteractiveShell, shop: Path) -> None:
    ran = run(shell, "%dsquery shop --as arrow SELECT id FROM orders ORDER BY id")
    assert ran.error is None, ran.text
    assert ran.result.column("id").to_pylist() == [1, 2, 3]


@pytest.mark.parametrize("value", ["float('nan')", "float('inf')"])
def test_config_cache_ttl_refuses_what_is_not_a_finite_number(
    shell: InteractiveShell, shop: Path, value: str
) -> None:
    """NaN passed the check of ``< 0`` and then kept every result for ever (no age is >= NaN)."""
    ran = run(shell, f"%config DataSourceMagics.cache_ttl = {value}")
    assert ran.error is not None
    assert "cache_ttl must be 0 or more (a finite number); nothing was changed" in ran.text
    run(shell, "%%dsquery shop\nSELECT * FROM orders")
    _add_row(shop)
    assert len(run(shell, "%%dsquery shop\nSELECT * FROM orders").result) == 4
