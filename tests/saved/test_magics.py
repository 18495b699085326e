"""The saved-source subcommands in a real IPython shell: one line for every problem."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from tests.notebook.magics.conftest import run, usage_error
from tests.services.postgres import PostgresServer

from .conftest import Places, read_toml

TYPED = "Magic-Typed-Canary-33e1f0"


@pytest.fixture(scope="module")
def ipython(tmp_path_factory: pytest.TempPathFactory) -> InteractiveShell:
    directory = tmp_path_factory.mktemp("ipython")
    config = Config()
    config.HistoryManager.hist_file = str(directory / "history.sqlite")
    return InteractiveShell(config=config, ipython_dir=str(directory))


@pytest.fixture
def shell(ipython: InteractiveShell, places: Places) -> Iterator[InteractiveShell]:
    """The shell, the extension not loaded yet; unloaded afterwards."""
    ipython.reset(new_session=True)
    yield ipython
    ipython.extension_manager.unload_extension("deepanalyze_jupyter")
    ipython.config.pop("DataSourceMagics", None)


def test_save_load_forget_and_list_saved(shell: InteractiveShell, places: Places, shop_db: Path) -> None:
    assert run(shell, "%load_ext deepanalyze_jupyter").text == ""  # no file yet: nothing said
    assert run(shell, "%datasource load").out == (
        f"No saved sources (in {places.user_file} or {places.project_file}).\n"
    )
    missing = places.project_dir / "elsewhere.toml"
    assert usage_error(shell, f"%datasource load --file {missing}") == (
        f"{missing}: no such sources file; nothing was loaded"
    )
    run(shell, f"%datasource add shop --type sqlite --path {shop_db}")
    saved = run(shell, "%datasource save shop --project")
    assert saved.out == (
        f"Saved shop to {places.project_file} "
        "(secrets as references only; nothing connects until first use).\n"
    )
    assert usage_error(shell, "%datasource save") == (
        "%datasource save: name the sources to save, or give --all (see %datasource save --help)"
    )
    loaded = run(shell, "%datasource load")
    assert (loaded.out, loaded.err) == (
        "",
        "shop: already in this kernel; the saved definition was not loaded\n",
    )
    listed = run(shell, "%datasource list --saved").result
    assert listed[["id", "status"]].values.tolist() == [["shop", "in this kernel; ready"]]
    assert run(shell, "%datasource list").result["id"].tolist() == ["shop"]

    forgot = run(shell, "%datasource forget shop --project")
    assert forgot.out.startswith(f"Removed 'shop' from {places.project_file}; this kernel keeps it")
    assert read_toml(places.project_file)["sources"] == {}
    assert usage_error(shell, "%datasource forget shop --project") == (
        f"shop: not saved in {places.project_file}; nothing was changed"
    )


def test_a_typed_secret_as_a_reference_is_refused_and_scrubbed(
    shell: InteractiveShell, places: Places, shop_db: Path
) -> None:
    run(shell, "%load_ext deepanalyze_jupyter")
    run(shell, f"%datasource add shop --type sqlite --path {shop_db}")
    refused = usage_error(shell, f"%datasource save shop --ref password {TYPED}")
    assert refused.startswith("shop: refused the value of --ref: it is not a reference")
    assert TYPED not in refused
    shell.history_manager.writeout_cache()
    assert not [line for line in shell.user_ns["In"] if TYPED in line]
    assert not places.user_file.exists()


def test_load_ext_reports_bad_files_in_one_line_each_and_loads_the_rest(
    shell: InteractiveShell, places: Places, shop_db: Path
) -> None:
    places.user_file.parent.mkdir(parents=True)
    places.user_file.write_text("[sources.shop\n")
    places.project_file.write_text(
        f'[sources.lake]\ntype = "sqlite"\n[sources.lake.options]\npath = "{shop_db}"\n'
    )
    loaded = run(shell, "%load_ext deepanalyze_jupyter")
    assert loaded.error is None
    assert loaded.out == f"lake: loaded from {places.project_file}\n"
    (problem,) = loaded.err.splitlines()
    assert problem.startswith(f"{places.user_file}: not valid TOML: ")
    assert "line 1" in problem
    assert run(shell, "%%dsquery lake\nSELECT count(*) AS n FROM orders").result["n"].tolist() == [2]


@pytest.mark.parametrize("given", ["--password-env {variable}", "--password env:{variable}"])
def test_a_password_from_the_environment_is_saved_as_its_reference(
    shell: InteractiveShell,
    places: Places,
    pg_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    given: str,
) -> None:
    monkeypatch.setenv("SAVED_FROM_ENV", pg_server.password)
    server = f"--type postgresql --host {pg_server.host} --port {pg_server.port} --user {pg_server.user}"
    run(shell, "%load_ext deepanalyze_jupyter")
    password = given.format(variable="SAVED_FROM_ENV")
    added = run(shell, f"%datasource add pg {server} --dbname {pg_server.dbname} {password}")
    assert added.error is None, added.err
    saved = run(shell, "%datasource save pg")
    assert saved.error is None, saved.err
    assert read_toml(places.user_file)["sources"]["pg"]["secrets"] == {"password": "env:SAVED_FROM_ENV"}
    assert pg_server.password not in places.user_file.read_text()

    monkeypatch.setenv("OTHER_FROM_ENV", pg_server.password)
    updated = run(shell, "%datasource update pg --password-env OTHER_FROM_ENV")
    assert updated.error is None, updated.err
    assert run(shell, "%datasource save pg").error is None
    assert read_toml(places.user_file)["sources"]["pg"]["secrets"] == {"password": "env:OTHER_FROM_ENV"}
    assert run(shell, "%%dsquery pg\nSELECT 1 AS one").result["one"].tolist() == [1]
