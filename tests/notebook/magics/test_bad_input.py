"""Malformed lines: each gives one clear UsageError line and leaves the registry as it was."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

from deepanalyze_jupyter.session import Session

from .conftest import run, usage_error

#: (cell, a piece of the message that says what is wrong)
BAD_INPUT = [
    ("%datasource frobnicate", "unknown subcommand 'frobnicate'"),
    ("%datasource add x --type nosuchtype --host h", "unknown source type 'nosuchtype'"),
    ("%datasource add x --type postgres", "unknown source type 'postgres'; did you mean postgresql?"),
    ("%datasource add --type fakesql --host ok", "missing the source id"),
    ("%datasource add w --type fakesql --host ok", "w: a data source with this id is already registered"),
    ("%datasource add x --type fakesql --host ok --colour blue", "unknown option --colour"),
    ("%datasource add x --type fakesql --host ok --hots ok2", "unknown option --hots; did you mean --host?"),
    (
        "%datasource add x --type fakesql --host ok --Pa55w0rd!",  # a secret typed as a flag is not repeated
        "unknown option (not repeated here: its name has characters no option name has)",
    ),
    ("%datasource add x --type fakesql --host ok --port abc", "x: option --port must be a whole number"),
    ("%datasource add x --type fakesql --host ok --port", "argument --port: expected one argument"),
    ("%datasource add x --type fakesql", "x: missing required option --host"),
    ("%datasource add x --host ok", "missing --type; known types:"),
    ("%datasource add 9bad --type fakesql --host ok", "invalid source id '9bad'"),
    ("%datasource add x --type fakesql --host ok --read-only maybe", "--read-only must be true or false"),
    ("%datasource add x --type fakesql --host down", "x: cannot reach down:5432"),
    ("%datasource add x --type fakesql --host ok --password-env NO_SUCH_VARIABLE_XYZ", "is not set"),
    (
        "%datasource add x --type fakesql --host ok --prompt host",
        "not the name of a secret option (password)",
    ),
    ("%datasource add x --type fakesql --host 'ok", "No closing quotation"),
    (
        "%datasource add x --type azure_blob --account-url notaurl --container c --sas-token-env FAKE_SAS",
        "x: ",
    ),
    ("%datasource info", "the following arguments are required: ID"),
    ("%datasource info nope", "nope: no such data source (known: w, f, files)"),
    ("%datasource test nope", "nope: no such data source"),
    ("%datasource remove nope", "nope: no such data source"),
    ("%datasource remove w extra", "unexpected argument 'extra'"),
    ("%datasource update nope --port 1", "nope: no such data source"),
    ("%datasource update w --port notaport", "w: option --port must be a whole number"),
    ("%datasource update w --colour red", "unknown option --colour"),
    ("%datasource ls", "the following arguments are required: ID"),
    ("%datasource ls nope", "nope: no such data source"),
    ("%datasource ls f --limit 0", "argument --limit: expected a whole number from 1 to"),
    ("%datasource read f", "the following arguments are required: PATH"),
    ("%datasource read files missing.csv", "files: "),
    ("%datasource read files broken.parquet", "files: "),
    ("%datasource read f x.csv --format", "argument --format: expected one argument"),
    ("%datasource tables f", "f: a file source has no tables"),
    ("%datasource columns w", "the following arguments are required: TABLE"),
    ("%datasource columns w nope", "w: table 'nope' does not exist"),
    ("%datasource cache purge", "invalid choice: 'purge'"),
    ("%datasource cache clear nope", "nope: no such data source"),
    ("%datasource list extra", "unexpected argument 'extra'"),
    ("%%dsquery w\n", "the cell body is empty"),
    ("%%dsquery w\n   \n", "w: the query is empty"),
    ("%dsquery w", "w: the query is empty"),
    ("%%dsquery w\nSELECT :not_defined_variable", "no variable 'not_defined_variable' is defined"),
    (
        "%%dsquery w --limit -5\nSELECT 1",
        "argument --limit: expected a whole number from 1 to 1,000,000,000,000, got -5",
    ),
    (
        "%%dsquery w --limit 9223372036854775807\nSELECT 1",
        "from 1 to 1,000,000,000,000, got 9223372036854775807",
    ),
    ("%%dsquery w --timeout inf\nSELECT 1", "above 0 and at most 86,400 (one day), got inf"),
    ("%%dsquery w --timeout 1e300\nSELECT 1", "at most 86,400 (one day), got 1e300"),
    ("%%dsquery w -o class\nSELECT 1", "'class' is not a Python variable name a result can go to"),
    (
        "%%dsquery w --limit 5 --limit 6\nSELECT 1",
        "%%dsquery: --limit was given more than once; give it once",
    ),
    ("%datasource add x --type fakesql --type fakefiles --host ok", "--type was given more than once"),
    ("%datasource add x --type fakesql --host ok --host ok2", "--host was given more than once"),
    ("%datasource read f a.csv -o a -o b", "-o/--output was given more than once"),
    ("%%dsquery w --limit five\nSELECT 1", "expected a whole number"),
    ("%%dsquery w -o 1x\nSELECT 1", "'1x' is not a Python variable name a result can go to"),
    ("%%dsquery w --timeout soon\nSELECT 1", "expected a number of seconds"),
    ("%%dsquery nope\nSELECT 1", "nope: no such data source"),
    ("%%dsquery f\n  \n", "f: no path given"),
    ("%%dsquery w --format csv\nSELECT 1", "apply to file sources only"),
    ("%%dsquery w --encoding latin-1\nSELECT 1", "apply to file sources only"),
    ("%%dsquery f --timeout 3\nx.csv", "applies to SQL sources only"),
    ("%%dsquery f --numeric-as-float\nx.csv", "--numeric-as-float applies to SQL sources only"),
    ("%%dsquery w --bogus\nSELECT 1", "unknown option --bogus"),
    ("%%dsquery\nSELECT 1", "no source given"),
    ("%%dsquery w\n-- only a comment\n", "w: the query is only comments"),
    ("%%dsquery w\n/* a comment */ ;\n-- and another", "w: the query is only comments"),
    ("%%dsquery w --to out.csv\n-- only a comment", "w: the query is only comments"),
    ("%%dsquery w --partitions 3\nSELECT 1", "w: --partitions goes with --partition-on COLUMN"),
    ("%%dsquery w --overwrite\nSELECT 1", "w: --overwrite goes with --to PATH"),
    ("%datasource read f x.csv --overwrite", "f: --overwrite goes with --to PATH"),
]


@pytest.fixture
def registered(shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Session:
    monkeypatch.setenv("FAKE_SAS", "sv=2024-01-01&sig=abcdefgh")
    (tmp_path / "broken.parquet").write_bytes(b"this is not parquet")
    for line in (
        "%datasource add w --type fakesql --host ok",
        "%datasource add f --type fakefiles --root r",
        f"%datasource add files --type local --path '{tmp_path}'",
    ):
        assert run(shell, line).error is None
    session = shell.magics_manager.registry["DataSourceMagics"].session
    assert isinstance(session, Session)
    return session


def test_there_are_enough_cases() -> None:
    assert len(BAD_INPUT) >= 30


@pytest.mark.parametrize(("cell", "expected"), BAD_INPUT, ids=[cell for cell, _ in BAD_INPUT])
def test_bad_input_is_one_clear_line(
    shell: InteractiveShell, registered: Session, cell: str, expected: str
) -> None:
    before = registered.sources()
    message = usage_error(shell, cell)
    assert expected in message
    pd.testing.assert_frame_equal(registered.sources().drop(columns="status"), before.drop(columns="status"))
