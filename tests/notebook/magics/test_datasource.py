"""``%datasource`` in a real InteractiveShell: every subcommand, help, prompts and errors."""

from __future__ import annotations

import getpass
import re
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

from deepanalyze_jupyter.notebook.extension import get_session
from deepanalyze_jupyter.notebook.magics import SUBCOMMANDS, DataSourceMagics
from deepanalyze_jupyter.session import Session

from .conftest import EXTENSION, run, usage_error
from .fakes import GOOD_PASSWORD

ADD_W = "%datasource add w --type fakesql --host ok --password-env FAKE_PW"


@pytest.fixture(autouse=True)
def fake_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_PW", GOOD_PASSWORD)


def test_load_ext_registers_the_magics_and_unload_removes_them(ipython: InteractiveShell) -> None:
    ran = run(ipython, f"%load_ext {EXTENSION}")
    assert ran.error is None
    magics = ipython.magics_manager.registry["DataSourceMagics"]
    assert "datasource" in ipython.magics_manager.magics["line"]
    assert "dsquery" in ipython.magics_manager.magics["cell"]
    assert magics in ipython.configurables
    assert run(ipython, f"%unload_ext {EXTENSION}").error is None
    assert "datasource" not in ipython.magics_manager.magics["line"]
    assert magics not in ipython.configurables
    assert get_session(ipython) is None
    chains = ipython.strdispatchers["complete_command"].strs
    assert all(not chains[key].chain for key in ("%datasource", "%dsquery", "%%dsquery") if key in chains)


def test_add_list_info_test_remove(shell: InteractiveShell, session: Session) -> None:
    added = run(shell, ADD_W + " --name 'Sales warehouse'")
    assert added.error is None
    assert added.out.strip() == "Added data source 'w' (fakesql): connected."
    listing = run(shell, "%datasource list").result
    assert list(listing.columns) == ["id", "type", "name", "status", "last_success", "created"]
    assert listing.iloc[0][["id", "type", "name", "status"]].tolist() == [
        "w",
        "fakesql",
        "Sales warehouse",
        "connected",
    ]
    info = run(shell, "%datasource info w").result
    fields = dict(zip(info["field"], info["value"], strict=True))
    assert fields["option host"] == "ok"
    assert fields["secret password"] == "********"
    assert fields["status"] == "connected"
    # the same moments, written as the listing shows them: to the second, in UTC
    assert fields["last success"] == str(listing.loc[0, "last_success"])
    assert fields["created"] == str(listing.loc[0, "created"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00", fields["created"])
    assert GOOD_PASSWORD not in info.to_string()
    assert run(shell, "%datasource test w").out.strip() == "w: OK: Fake SQL at ok:5432"
    assert run(shell, "%datasource remove w").out.strip() == "Removed data source 'w'."
    assert session.registry.source_ids == []


def test_add_without_test_and_a_failing_add(shell: InteractiveShell, session: Session) -> None:
    ran = run(shell, "%datasource add later --type fakesql --host down --no-test")
    assert ran.out.strip() == "Added data source 'later' (fakesql): not tested (--no-test)."
    assert (
        usage_error(shell, "%datasource test later") == "later: cannot reach down:5432 (connection refused)"
    )
    assert usage_error(shell, "%datasource add now --type fakesql --host down") == (
        "now: cannot reach down:5432 (connection refused)"
    )
    assert session.registry.source_ids == ["later"]


def test_a_wrong_password_from_the_environment(
    shell: InteractiveShell, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WRONG_PW", "not-the-password")
    message = usage_error(shell, "%datasource add w --type fakesql --host ok --password env:WRONG_PW")
    assert message == "w: password authentication failed"
    assert session.registry.source_ids == []


def test_a_secret_from_a_hidden_prompt(
    shell: InteractiveShell, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def fake_getpass(prompt: str = "Password: ", stream: object = None) -> str:
        asked.append(prompt)
        return GOOD_PASSWORD

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    assert run(shell, "%datasource add w --type fakesql --host ok --prompt password").error is None
    assert asked == ["Password for w: "]
    assert session.registry.get_config("w", decrypt=True).secrets["password"].reveal() == GOOD_PASSWORD


def test_update_changes_options_and_secrets(
    shell: InteractiveShell, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(shell, ADD_W)
    assert run(shell, "%datasource update w --port 6543 --name Renamed").out.strip() == (
        "Updated data source 'w': connected."
    )
    config = session.registry.get_config("w")
    assert (config.options["port"], config.name) == (6543, "Renamed")
    monkeypatch.setenv("WRONG_PW", "not-the-password")
    assert (
        usage_error(shell, "%datasource update w --password-env WRONG_PW")
        == "w: password authentication failed"
    )
    assert session.registry.get_config("w", decrypt=True).secrets["password"].reveal() == GOOD_PASSWORD
    run(shell, "%datasource update w --unset port --read-only false --no-test")
    assert session.registry.get_config("w").options["port"] == 5432  # back to the default
    assert session.registry.get_config("w").options["read_only"] is False
    assert (
        usage_error(shell, "%datasource update w")
        == "w: nothing to update; give the options to change (see --help)"
    )


def test_tables_and_columns_of_an_sql_source(shell: InteractiveShell) -> None:
    run(shell, ADD_W)
    tables = run(shell, "%datasource tables w").result
    assert tables["name"].tolist() == ["orders", "customers"]
    columns = run(shell, "%datasource columns w orders").result
    assert columns["name"].tolist() == ["id", "region"]
    assert usage_error(shell, "%datasource columns w nope") == "w: table 'nope' does not exist"


def test_a_file_source_has_no_tables(shell: InteractiveShell) -> None:
    run(shell, "%datasource add f --type fakefiles --root r")
    assert (
        usage_error(shell, "%datasource tables f")
        == "f: a file source has no tables; list it with %datasource ls f"
    )


def test_ls_read_and_cache_clear_on_a_local_folder(shell: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "2024").mkdir()
    (tmp_path / "2024" / "jan.csv").write_text("id,amount\n1,10\n2,20\n")
    (tmp_path / "2024" / "feb.csv").write_text("id,amount\n3,30\n")
    (tmp_path / "notes.txt").write_text("hello")
    assert run(shell, f"%datasource add files --type local --path '{tmp_path}'").error is None
    top = run(shell, "%datasource ls files").result
    assert set(top["name"]) == {"2024/", "notes.txt"}
    below = run(shell, "%datasource ls files 2024/").result
    assert set(below["name"]) == {"2024/jan.csv", "2024/feb.csv"}
    flat = run(shell, "%datasource ls files --recursive").result
    assert set(flat["name"]) == {"2024/jan.csv", "2024/feb.csv", "notes.txt"}
    frame = run(shell, "%datasource read files '2024/*.csv' --source-column file -o sales").result
    assert sorted(frame["amount"].tolist()) == [10, 20, 30]
    assert set(frame["file"]) == {"2024/jan.csv", "2024/feb.csv"}
    assert shell.user_ns["sales"] is frame
    cleared = run(shell, "%datasource cache clear files").out.strip()
    assert cleared.startswith("Cleared ")
    assert cleared.endswith(" cached result(s) of 'files'.")
    assert run(shell, "%datasource cache clear").error is None


def test_a_final_semicolon_shows_no_output_and_is_no_part_of_the_last_word(
    shell: InteractiveShell, tmp_path: Path
) -> None:
    (tmp_path / "a;b.csv").write_text("id\n1\n")
    (tmp_path / "jan.csv").write_text("id,amount\n1,10\n")
    assert run(shell, f"%datasource add files --type local --path '{tmp_path}'").error is None
    listed = run(shell, "%datasource list;")
    assert (listed.error, listed.result, listed.text) == (None, None, "")
    read = run(shell, "%datasource read files jan.csv -o jan ;  ")
    assert (read.error, read.result) == (None, None)
    assert shell.user_ns["jan"]["amount"].tolist() == [10]
    assert run(shell, "%datasource info files;").result is None
    quoted = run(shell, "%datasource read files 'a;b.csv'").result  # a quoted ; is text
    assert quoted["id"].tolist() == [1]
    assert "no file 'jan.csv;'" in usage_error(shell, "%datasource read files jan.csv\\;")


def test_read_of_latin_1_text_names_the_byte_and_encoding_reads_it(
    shell: InteractiveShell, tmp_path: Path
) -> None:
    (tmp_path / "names").mkdir()
    (tmp_path / "names" / "x.csv").write_bytes("name\nZoë\nJürgen\n".encode("latin-1"))
    assert run(shell, f"%datasource add files --type local --path '{tmp_path}'").error is None
    assert usage_error(shell, "%datasource read files names/x.csv") == (
        "files: cannot parse names/x.csv as csv: byte 0xeb at offset 7 is not valid utf-8; "
        "give the file's encoding (--encoding latin-1)"
    )
    frame = run(shell, "%datasource read files names/x.csv --encoding latin-1").result
    assert frame["name"].tolist() == ["Zoë", "Jürgen"]
    cell = run(shell, "%%dsquery files --encoding latin1\nnames/x.csv").result
    assert cell["name"].tolist() == ["Zoë", "Jürgen"]
    assert "unknown text encoding 'nope'" in usage_error(
        shell, "%datasource read files names/x.csv --encoding nope"
    )


def test_read_on_a_sqlite_source_is_an_error(shell: InteractiveShell, tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "shop.db").close()
    run(shell, f"%datasource add shop --type sqlite --path '{tmp_path / 'shop.db'}'")
    assert "shop: " in usage_error(shell, "%datasource read shop x.csv")


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
def test_every_subcommand_has_help(shell: InteractiveShell, subcommand: str) -> None:
    ran = run(shell, f"%datasource {subcommand} --help")
    assert ran.error is None
    assert ran.out.startswith(f"usage: %datasource {subcommand}")


def test_the_help_of_a_type_lists_its_options(shell: InteractiveShell) -> None:
    out = run(shell, "%datasource add --type fakesql --help").out
    for flag in (
        "--host HOST",
        "--port PORT",
        "--read-only [true|false]",
        "--password-env VAR",
        "--prompt NAME",
    ):
        assert flag in out


def test_the_magic_docstring_describes_every_subcommand(shell: InteractiveShell) -> None:
    doc = shell.object_inspect_text("%datasource")
    assert all(f"%datasource {name}" in doc for name in SUBCOMMANDS)
    assert "--password-env" in doc
    assert "%%dsquery" in shell.object_inspect_text("%%dsquery")
    overview = run(shell, "%datasource").out
    assert all(f"%datasource {name}" in overview for name in SUBCOMMANDS)


def test_add_without_arguments_shows_the_form(shell: InteractiveShell) -> None:
    ran = run(shell, "%datasource add")
    assert ran.error is None
    assert "form" in ran.out  # a terminal cannot draw it, and says how to use the magic instead
    assert "%datasource add" in ran.out


def test_browse_in_a_terminal_says_where_the_form_shows_and_what_to_use_here(shell: InteractiveShell) -> None:
    run(shell, ADD_W)
    ran = run(shell, "%datasource browse w")  # a kernel shows the form: tests/notebooks/
    assert ran.error is None
    assert "browse form needs a Jupyter front end" in ran.out
    assert "%datasource ls ID" in ran.out
    assert usage_error(shell, "%datasource browse nope").startswith("nope: no such data source")


def test_config_from_a_profile_is_applied(ipython: InteractiveShell) -> None:
    ipython.config.DataSourceMagics.autolimit = 7
    ipython.config.DataSourceMagics.default_source = "w"
    try:
        ipython.extension_manager.load_extension(EXTENSION)
        magics = ipython.magics_manager.registry["DataSourceMagics"]
        assert (magics.autolimit, magics.default_source) == (7, "w")
    finally:
        ipython.extension_manager.unload_extension(EXTENSION)
        ipython.config.pop("DataSourceMagics")


def magics_of(shell: InteractiveShell) -> DataSourceMagics:
    magics = shell.magics_manager.registry["DataSourceMagics"]
    assert isinstance(magics, DataSourceMagics)
    return magics


def test_percent_config_sets_the_traits(shell: InteractiveShell) -> None:
    run(shell, "%config DataSourceMagics.autolimit = 3")
    run(shell, "%config DataSourceMagics.displaylimit = 4")
    run(shell, "%config DataSourceMagics.default_source = 'w'")
    run(shell, "%config DataSourceMagics.progress = False")
    magics = magics_of(shell)
    assert (magics.autolimit, magics.displaylimit, magics.default_source, magics.progress) == (
        3,
        4,
        "w",
        False,
    )
    assert "autolimit" in run(shell, "%config DataSourceMagics").out
    run(shell, "%config DataSourceMagics.autolimit = -1")  # refused (and logged) by %config
    assert magics.autolimit == 3


def test_progress_can_be_switched_off(shell: InteractiveShell, session: Session) -> None:
    progress = session.registry.progress("reading", total_bytes=10, total_items=1)
    assert type(progress).__name__ == "TqdmProgress"
    progress.close()
    run(shell, "%config DataSourceMagics.progress = False")
    assert (
        type(session.registry.progress("reading", total_bytes=10, total_items=1)).__name__ == "NullProgress"
    )


def test_displaylimit_applies_to_the_results_only(shell: InteractiveShell) -> None:
    run(shell, ADD_W)
    run(shell, "%config DataSourceMagics.displaylimit = 4")
    result = run(shell, "%dsquery w --no-limit ROWS 50")
    assert "46 rows" not in result.out  # pandas shows "[50 rows x 1 columns]" when it cuts
    assert "[50 rows x 1 columns]" in result.out
    assert result.out.count("\n") < 15
    formatted, _ = shell.display_formatter.format(result.result)
    assert "<td>" in formatted["text/html"]
    assert formatted["text/html"].count("<tr>") < 10
    plain = shell.display_formatter.format(pd.DataFrame({"n": range(50)}))[0]["text/plain"]
    assert plain.count("\n") > 45  # another frame of the same size shows every row
    assert pd.get_option("display.max_rows") == 60


def test_completion_of_subcommands_ids_types_and_flags(shell: InteractiveShell) -> None:
    from IPython.core.completer import provisionalcompleter

    run(shell, ADD_W)
    run(shell, "%datasource add warehouse2 --type fakesql --host ok --no-test")

    def complete(code: str) -> set[str]:
        with provisionalcompleter():
            return {completion.text for completion in shell.Completer.completions(code, len(code))}

    assert {"add", "list", "ls"} <= complete("%datasource ")
    assert complete("%datasource t") >= {"test", "tables"}
    assert complete("%datasource info w") >= {"w", "warehouse2"}
    assert complete("%datasource ls wa") == {"warehouse2"}
    assert "fakesql" in complete("%datasource add x --type fak")
    assert {"--host", "--password-env"} <= complete("%datasource add x --type fakesql --")
    assert "clear" in complete("%datasource cache ")
    assert complete("%%dsquery wa") == {"warehouse2"}
    assert complete("%dsquery wa") == {"warehouse2"}


def test_dataframes_are_formatted_by_pandas_until_a_limit_is_set(shell: InteractiveShell) -> None:
    html = shell.display_formatter.formatters["text/html"]
    assert pd.DataFrame not in html.type_printers
    run(shell, "%config DataSourceMagics.displaylimit = 5")
    assert pd.DataFrame in html.type_printers
    frame = pd.DataFrame({"n": range(3)})
    assert shell.display_formatter.format(frame)[0]["text/plain"] == repr(frame)
    run(shell, "%config DataSourceMagics.displaylimit = 0")
    assert pd.DataFrame not in html.type_printers
