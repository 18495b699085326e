"""What the magics say: hints name the magic's flags, a bad ``%config`` value fails the cell,
and an empty ``%datasource list`` says how to add a source."""

from __future__ import annotations

from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from deepanalyze_jupyter.errors import FormatError, QueryError
from deepanalyze_jupyter.notebook.magic_args import spelled_as_flags
from deepanalyze_jupyter.session import Session
from tests.services import PostgresServer

from .conftest import run, usage_error


def test_a_read_only_refusal_names_the_flag_in_a_magic_and_the_keyword_in_the_api(
    shell: InteractiveShell,
    session: Session,
    pg_server: PostgresServer,
    pg_schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGPASSWORD", pg_server.password)
    added = run(
        shell,
        f"%datasource add warehouse --type postgresql --host {pg_server.host} --port {pg_server.port} "
        f"--dbname {pg_server.dbname} --user {pg_server.user} --password-env PGPASSWORD",
    )
    assert added.error is None, added.text
    create = f"CREATE TABLE {pg_schema}.made (id integer)"
    line = usage_error(shell, f"%%dsquery warehouse\n{create}")
    assert line.endswith("- the source is read-only; register it with --read-only false to allow writes")
    assert "read_only" not in line
    with pytest.raises(QueryError) as refused:
        session.query("warehouse", create)
    assert str(refused.value).endswith("register it with read_only=False to allow writes")
    assert "--read-only" not in str(refused.value)


def test_an_encoding_hint_names_the_flag_in_a_magic_and_the_keyword_in_the_api(
    shell: InteractiveShell, session: Session, tmp_path: Path
) -> None:
    (tmp_path / "x.csv").write_bytes("name\nZoë\n".encode("latin-1"))
    assert run(shell, f"%datasource add files --type local --path '{tmp_path}'").error is None
    line = usage_error(shell, "%datasource read files x.csv")
    assert line.endswith("give the file's encoding (--encoding latin-1)")
    with pytest.raises(FormatError) as refused:
        session.read("files", "x.csv")
    assert str(refused.value).endswith("give the file's encoding (encoding='latin-1')")


@pytest.mark.parametrize(
    ("text", "spelled"),
    [
        ("register it with read_only=False", "register it with --read-only false"),
        ("give encoding='utf-16' or encoding=\"cp1252\"", "give --encoding utf-16 or --encoding cp1252"),
        ("encoding='a b'", "--encoding 'a b'"),
        ("limit=5 rows", "--limit 5 rows"),
        ("missing required option 'read_only'", "missing required option --read-only"),
        ('option "encoding" must be text', "option --encoding must be text"),
        ("reader option 'dtype' must map names", "reader option 'dtype' must map names"),
        ("pass overwrite=True to replace it", "pass --overwrite to replace it"),  # a flag without a value
        ("overwrite=False", "overwrite=False"),
        # Not an option of the magic, or not a literal: left alone.
        ("WHERE flag=True AND x.read_only=False", "WHERE flag=True AND x.read_only=False"),
        ("read_only=Falsey read_only=maybe", "read_only=Falsey read_only=maybe"),
    ],
)
def test_options_named_as_keywords_are_spelled_as_flags(text: str, spelled: str) -> None:
    flags = {"--read-only", "--encoding", "--limit", "--overwrite"}
    assert spelled_as_flags(text, flags, switches={"--overwrite"}) == spelled


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("autolimit = -1", "autolimit must be a whole number from 0 (no limit) to 1,000,000,000,000"),
        ("displaylimit = 10**13", "displaylimit must be a whole number from 0 (no limit)"),
        ("autolimit = 'many'", "The 'autolimit' trait of a DataSourceMagics instance expected an int"),
        ("progress = 'yes'", "The 'progress' trait of a DataSourceMagics instance expected a boolean"),
        ("default_source = 3", "The 'default_source' trait of a DataSourceMagics instance expected"),
        ("autolimt = 5", "no setting 'autolimt'; did you mean autolimit?"),
        (
            "colour = 'red'",
            "no setting 'colour' (settings: autolimit, autoload, cache_max_mb, cache_ttl, default_so",
        ),
    ],
)
def test_a_bad_config_value_fails_the_cell_with_one_line_and_changes_nothing(
    shell: InteractiveShell, setting: str, problem: str
) -> None:
    magics = shell.magics_manager.registry["DataSourceMagics"]
    before = (magics.autolimit, magics.displaylimit, magics.progress, magics.default_source)
    ran = run(shell, f"%config DataSourceMagics.{setting}")
    assert ran.error is not None
    assert type(ran.error).__name__ == "SettingRefused"
    assert "ERROR" not in ran.text
    assert "Traceback" not in ran.text
    lines = ran.text.strip().splitlines()
    assert len(lines) == 1, ran.text
    assert lines[0].startswith(f"UsageError: %config DataSourceMagics: {problem}")
    assert lines[0].endswith("; nothing was changed")
    assert ".;" not in lines[0]
    assert (magics.autolimit, magics.displaylimit, magics.progress, magics.default_source) == before
    assert run(shell, "%config DataSourceMagics.autolimit = 7").error is None
    assert magics.autolimit == 7


def test_an_empty_list_says_how_to_add_a_source(shell: InteractiveShell, session: Session) -> None:
    ran = run(shell, "%datasource list")
    assert ran.error is None
    assert ran.out == "no data sources yet; add one with %datasource add\n"
    assert ran.result is None
    assert session.sources().empty  # the API still gives the (empty) frame
    assert run(shell, "%datasource add w --type fakesql --host ok --no-test").error is None
    assert run(shell, "%datasource list").result["id"].tolist() == ["w"]
