"""The browse form on a real SQLite database: walk, preview, load into a variable."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.notebook.widgets import BrowseForm
from deepanalyze_jupyter.notebook.widgets.browse import Entry, quote_identifier, select_all, variable_name


@pytest.fixture
def shop(session: Session, tmp_path: Path) -> str:
    """A registered SQLite source with a 30-row table and a view."""
    path = tmp_path / "shop.db"
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, region TEXT)")
        connection.executemany(
            "INSERT INTO orders (region) VALUES (?)", [("EU" if n % 2 else "US",) for n in range(30)]
        )
        connection.execute("CREATE VIEW eu_orders AS SELECT * FROM orders WHERE region = 'EU'")
    connection.close()
    session.add("shop", "sqlite", path=str(path))
    return "shop"


def labels(form: BrowseForm) -> list[str]:
    return [label for label, _ in form.item_select.options]


def choose(form: BrowseForm, label: str) -> None:
    entry = dict(form.item_select.options)[label]
    form.item_select.value = entry


def test_top_level_shows_schemas_and_opening_one_shows_tables(session: Session, shop: str) -> None:
    form = BrowseForm(session, {}, shop)
    assert form.source_select.value == "shop"
    assert labels(form) == ["main/"]
    choose(form, "main/")
    assert form.location == "main"
    assert labels(form) == ["..", "eu_orders (view)", "orders (table)"]
    assert form.status.message == "0 folder(s), 2 item(s) in shop:main"
    choose(form, "..")
    assert form.location is None
    assert labels(form) == ["main/"]


def test_selecting_a_table_previews_its_first_rows(session: Session, shop: str) -> None:
    form = BrowseForm(session, {}, shop)
    choose(form, "main/")
    choose(form, "orders (table)")
    assert form.status.outcome == "success", form.status.message
    assert form.status.message == "First 20 row(s) of main.orders (more rows not shown)"
    (output,) = form.preview.outputs
    html = output["data"]["text/html"]
    assert html.count("<tr>") == 20  # one per row; the header row has a style
    assert "<td>20</td>" in html
    assert "<td>21</td>" not in html
    assert form.variable_field.value == "orders"


def test_load_puts_the_whole_item_into_the_namespace(session: Session, shop: str) -> None:
    namespace: dict[str, Any] = {}
    form = BrowseForm(session, namespace, shop)
    choose(form, "main/")
    choose(form, "eu_orders (view)")
    form.variable_field.value = "eu"
    form.load_button.click()
    assert form.status.message == "Loaded 15 row(s) \u00d7 2 column(s) of main.eu_orders into eu"
    frame = namespace["eu"]
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["id", "region"]
    assert set(frame["region"]) == {"EU"}


@pytest.mark.parametrize("name", ["", "2x", "class", "a-b"])
def test_load_refuses_a_bad_variable_name(session: Session, shop: str, name: str) -> None:
    namespace: dict[str, Any] = {}
    form = BrowseForm(session, namespace, shop)
    choose(form, "main/")
    choose(form, "orders (table)")
    form.variable_field.value = name
    form.load_button.click()
    assert form.status.outcome == "error"
    assert form.status.message.endswith("is not a valid variable name")
    assert namespace == {}


def test_load_needs_an_item(session: Session, shop: str) -> None:
    form = BrowseForm(session, {}, shop)
    form.variable_field.value = "df"
    form.load_button.click()
    assert form.status.message == "select a table or file to load first"


def test_missing_table_is_one_line(session: Session, shop: str, tmp_path: Path) -> None:
    form = BrowseForm(session, {}, shop)
    assert not form.show_preview(Entry("gone", "main.gone", folder=False, table=("main", "gone")))
    assert form.status.outcome == "error"
    assert form.status.message == "shop: no such table: main.gone"


def test_without_sources_the_form_says_how_to_add_one(session: Session) -> None:
    form = BrowseForm(session, {})
    assert form.source_id is None
    assert labels(form) == []
    assert "%datasource add" in form.status.message


def test_refresh_picks_up_new_sources(session: Session, shop: str, tmp_path: Path) -> None:
    form = BrowseForm(session, {})
    session.add("other", "sqlite", path=str(tmp_path / "shop.db"))
    form.refresh_button.click()
    assert list(form.source_select.options) == ["shop", "other"]
    form.source_select.value = "other"
    assert form.status.message == "1 folder(s), 0 item(s) in other:/"


def test_fake_sql_source_is_previewed_through_a_quoted_query(session: Session) -> None:
    session.add("fake", "fakedb", host="h", user="u", secrets={"password": "right-password-4821"})
    form = BrowseForm(session, {}, "fake")
    choose(form, "public/")
    choose(form, "orders (table)")
    assert form.status.outcome == "success", form.status.message


def test_identifiers_are_quoted() -> None:
    assert quote_identifier('we"ird') == '"we""ird"'
    assert select_all("public", "orders") == 'SELECT * FROM "public"."orders"'


@pytest.mark.parametrize(
    ("item_name", "expected"),
    [
        ("Orders", "orders"),
        ("sales 2024.csv", "sales_2024"),
        ("data/2024/q1.parquet", "q1"),
        ("2024.csv", "df_2024"),
        ("class.csv", "df_class"),
        ("..csv", "df"),
    ],
)
def test_variable_names_come_from_item_names(item_name: str, expected: str) -> None:
    assert variable_name(item_name) == expected


@pytest.fixture
def files(session: Session, tmp_path: Path) -> str:
    """A registered local folder: one CSV at the top, one in a subfolder."""
    root = tmp_path / "files"
    (root / "sales" / "2024").mkdir(parents=True)
    (root / "readme.csv").write_text("topic\nsales\n")
    (root / "sales" / "2024" / "q1.csv").write_text("region,amount\nEU,10\nUS,20\nEU,30\n")
    session.add("files", "local", path=str(root))
    return "files"


def test_folders_are_opened_and_left(session: Session, files: str) -> None:
    form = BrowseForm(session, {}, files)
    assert labels(form) == ["sales/", "readme.csv"]
    choose(form, "sales/")
    assert form.location == "sales/"
    assert labels(form) == ["..", "2024/"]
    choose(form, "2024/")
    assert labels(form) == ["..", "q1.csv"]
    assert form.status.message == "0 folder(s), 1 item(s) in files:sales/2024/"
    choose(form, "..")
    assert form.location == "sales/"
    choose(form, "..")
    assert form.location is None
    assert labels(form) == ["sales/", "readme.csv"]


def test_a_file_is_previewed_and_loaded(session: Session, files: str) -> None:
    namespace: dict[str, Any] = {}
    form = BrowseForm(session, namespace, files)
    choose(form, "sales/")
    choose(form, "2024/")
    choose(form, "q1.csv")
    assert form.status.message == "First 3 row(s) of sales/2024/q1.csv"
    assert "<td>US</td>" in form.preview.outputs[0]["data"]["text/html"]
    assert form.variable_field.value == "q1"
    form.load_button.click()
    assert form.status.message == "Loaded 3 row(s) \u00d7 2 column(s) of sales/2024/q1.csv into q1"
    assert namespace["q1"]["amount"].sum() == 60
