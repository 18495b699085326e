"""The widget forms as users see them: JupyterLab 4 in headless Chromium, driven by Playwright.

The PostgreSQL form is filled with the test server's address and password (typed into the
password field, never into a cell); the saved notebook must not contain the password.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import JupyterLab
from tests.services import PostgresServer

pytestmark = pytest.mark.browser

#: Generous: the first cell also starts the kernel, on a busy two-core machine.
KERNEL_TIMEOUT = 90_000
ACTION_TIMEOUT = 60_000
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def write_notebook(lab: JupyterLab, name: str, sources: list[str]) -> Path:
    """A notebook of code cells in the server's root, with the Python kernel chosen."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    path = lab.root / name
    nbformat.write(notebook, path)
    return path


def open_notebook(page: Page, lab: JupyterLab, path: Path, cell_count: int) -> Locator:
    """Open the notebook in JupyterLab; return its cells."""
    page.goto(lab.lab_url(path.name))
    cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
    expect(cells).to_have_count(cell_count, timeout=KERNEL_TIMEOUT)
    expect(page.locator("#jp-main-statusbar")).to_contain_text("| Idle", timeout=KERNEL_TIMEOUT)
    return cells


def run_cell(page: Page, cell: Locator) -> None:
    """Put the cursor in the cell, run it with Ctrl+Enter as a person would, wait until it ran."""
    cell.locator(".jp-InputArea-editor").click()
    expect(cell).to_have_class(re.compile(r"\bjp-mod-active\b"))
    page.keyboard.press("Control+Enter")
    expect(cell.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"), timeout=KERNEL_TIMEOUT)


def saved_notebook(page: Page, path: Path, must_contain: str) -> dict[str, Any]:
    """Save with Ctrl+S and return the file once it holds ``must_contain``."""
    before = path.stat().st_mtime_ns
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + ACTION_TIMEOUT / 1000
    while time.monotonic() < deadline:
        if path.stat().st_mtime_ns != before:
            text = path.read_text()
            if must_contain in text:
                loaded: dict[str, Any] = json.loads(text)
                return loaded
        time.sleep(0.2)  # polling the file the server writes, not waiting for a result
    raise AssertionError(f"{path.name} was not saved with {must_contain!r} in it")


def test_add_form_registers_postgres_without_saving_the_password(
    jupyter_lab: JupyterLab, page: Page, pg_server: PostgresServer, artifacts: Path
) -> None:
    path = write_notebook(
        jupyter_lab,
        "add_source.ipynb",
        ["%load_ext deepanalyze_jupyter", "%datasource add", "%datasource list"],
    )
    cells = open_notebook(page, jupyter_lab, path, 3)
    run_cell(page, cells.nth(0))
    run_cell(page, cells.nth(1))
    form = cells.nth(1).locator(".deepanalyze-add-form")
    expect(form).to_be_visible(timeout=KERNEL_TIMEOUT)

    form.get_by_label("Source type").select_option(label="PostgreSQL")
    form.get_by_label("Source id", exact=True).fill("warehouse")
    form.get_by_label("Display name", exact=True).fill("Warehouse")
    form.get_by_label("Host", exact=True).fill(pg_server.host)
    form.get_by_label("Port", exact=True).fill(str(pg_server.port))
    form.get_by_label("Database", exact=True).fill(pg_server.dbname)
    form.get_by_label("User", exact=True).fill(pg_server.user)
    password = form.get_by_label("Password", exact=True)
    add = form.get_by_role("button", name="Add")
    status = form.locator(".deepanalyze-status")

    password.fill(pg_server.password)
    expect(password).to_have_attribute("type", "password")
    form.screenshot(path=artifacts / "add-form-filled.png")

    wrong_password = f"wrong-{secrets.token_hex(8)}"
    password.fill(wrong_password)
    add.click()
    expect(status.locator(".deepanalyze-status-error")).to_contain_text("warehouse: ", timeout=ACTION_TIMEOUT)
    expect(password).to_have_value("")
    error_line = status.inner_text()
    assert "\n" not in error_line.strip()
    assert "Traceback" not in error_line
    assert wrong_password not in error_line
    form.screenshot(path=artifacts / "add-form-wrong-password.png")

    password.fill(pg_server.password)
    add.click()
    expect(status.locator(".deepanalyze-status-success")).to_contain_text(
        "Added 'warehouse' (PostgreSQL, connection tested)", timeout=ACTION_TIMEOUT
    )
    expect(password).to_have_value("")

    run_cell(page, cells.nth(2))
    listing = cells.nth(2).locator(".jp-OutputArea-output table")
    expect(listing).to_contain_text("warehouse", timeout=ACTION_TIMEOUT)
    expect(listing).to_contain_text("Warehouse")
    page.screenshot(path=artifacts / "add-form-result.png", full_page=True)

    saved = saved_notebook(page, path, must_contain="Warehouse")
    text = path.read_text()
    assert pg_server.password not in text
    assert wrong_password not in text
    widget_state = saved["metadata"]["widgets"][WIDGET_STATE]["state"]
    password_models = [model for model in widget_state.values() if model["model_name"] == "PasswordModel"]
    assert password_models
    assert all(model["state"].get("value", "") == "" for model in password_models)


def test_a_secret_tested_but_not_added_is_not_in_the_saved_notebook(
    jupyter_lab: JupyterLab, page: Page, pg_server: PostgresServer
) -> None:
    """Fill the form, Test (it works), do not Add, save: neither the password typed into the
    password field nor the one inside a DSN typed into the DSN field is in the file."""
    path = write_notebook(
        jupyter_lab, "tested_only.ipynb", ["%load_ext deepanalyze_jupyter", "%datasource add"]
    )
    cells = open_notebook(page, jupyter_lab, path, 2)
    run_cell(page, cells.nth(0))
    run_cell(page, cells.nth(1))
    form = cells.nth(1).locator(".deepanalyze-add-form")
    expect(form).to_be_visible(timeout=KERNEL_TIMEOUT)
    form.get_by_label("Source type").select_option(label="PostgreSQL")
    form.get_by_label("Source id", exact=True).fill("warehouse")
    form.get_by_label("Host", exact=True).fill(pg_server.host)
    form.get_by_label("Port", exact=True).fill(str(pg_server.port))
    form.get_by_label("Database", exact=True).fill(pg_server.dbname)
    form.get_by_label("User", exact=True).fill(pg_server.user)
    password = form.get_by_label("Password", exact=True)
    status = form.locator(".deepanalyze-status")
    password.fill(pg_server.password)
    form.get_by_role("button", name="Test connection").click()
    expect(status.locator(".deepanalyze-status-success")).to_contain_text(
        "Connection works", timeout=ACTION_TIMEOUT
    )
    expect(password).to_have_value("")
    saved_notebook(page, path, must_contain="PasswordModel")
    text = path.read_text()
    assert pg_server.password not in text

    for label in ("Host", "Port", "Database", "User"):
        form.get_by_label(label, exact=True).fill("")
    # A refused Test in between, so that the next success shown is the second Test's own
    form.get_by_label("Source id", exact=True).fill("not an id!")
    form.get_by_role("button", name="Test connection").click()
    expect(status.locator(".deepanalyze-status-error")).to_contain_text("not an id!", timeout=ACTION_TIMEOUT)
    form.get_by_label("Source id", exact=True).fill("warehouse")
    dsn = f"postgresql://{pg_server.user}:{pg_server.password}@{pg_server.host}:{pg_server.port}/{pg_server.dbname}"
    form.get_by_text("More options").click()
    dsn_field = form.get_by_label("Connection string", exact=True)
    dsn_field.fill(dsn)
    # The field sends its value when it loses focus; the kernel takes it and answers with the
    # DSN masked: Test once that answer is back, so that it runs on the DSN just typed.
    dsn_field.press("Tab")
    expect(dsn_field).not_to_have_value(dsn, timeout=ACTION_TIMEOUT)
    form.get_by_role("button", name="Test connection").click()
    expect(status.locator(".deepanalyze-status-success")).to_contain_text(
        "Connection works", timeout=ACTION_TIMEOUT
    )
    # the kernel's answer: the password masked
    expect(dsn_field).to_have_value(re.compile(r"\*{8}"), timeout=ACTION_TIMEOUT)
    saved_notebook(page, path, must_contain="PasswordModel")
    text = path.read_text()
    assert pg_server.password not in text
    assert dsn not in text


def test_browse_form_walks_previews_and_loads_a_file(
    jupyter_lab: JupyterLab, page: Page, tmp_path: Path, artifacts: Path
) -> None:
    (tmp_path / "sales" / "2024").mkdir(parents=True)
    (tmp_path / "sales" / "2024" / "q1.csv").write_text("region,amount\nEU,10\nUS,20\nEU,30\n")
    setup = (
        "from deepanalyze_jupyter.notebook.extension import get_session\n"
        f"get_session(get_ipython()).add('files', 'local', path={str(tmp_path)!r})"
    )
    path = write_notebook(
        jupyter_lab,
        "browse.ipynb",
        ["%load_ext deepanalyze_jupyter", setup, "%datasource browse files", "int(q1['amount'].sum())"],
    )
    cells = open_notebook(page, jupyter_lab, path, 4)
    for cell in range(3):
        run_cell(page, cells.nth(cell))
    form = cells.nth(2).locator(".deepanalyze-browse-form")
    expect(form).to_be_visible(timeout=KERNEL_TIMEOUT)
    items = form.get_by_label("Items", exact=True)
    status = form.locator(".deepanalyze-status")

    expect(items.locator("option")).to_have_text(["sales/"], timeout=ACTION_TIMEOUT)
    items.select_option(label="sales/")
    expect(items.locator("option")).to_have_text(["..", "2024/"], timeout=ACTION_TIMEOUT)
    items.select_option(label="2024/")
    expect(items.locator("option")).to_have_text(["..", "q1.csv"], timeout=ACTION_TIMEOUT)
    items.select_option(label="q1.csv")
    expect(status).to_contain_text("First 3 row(s) of sales/2024/q1.csv", timeout=ACTION_TIMEOUT)
    expect(form.locator(".jp-OutputArea-output table")).to_contain_text("US")
    expect(form.get_by_label("Variable name", exact=True)).to_have_value("q1")
    form.get_by_role("button", name="Load").click()
    expect(status).to_contain_text("Loaded 3 row(s)", timeout=ACTION_TIMEOUT)
    form.screenshot(path=artifacts / "browse-form.png")

    run_cell(page, cells.nth(3))
    expect(cells.nth(3).locator(".jp-OutputArea-output")).to_have_text("60", timeout=ACTION_TIMEOUT)
