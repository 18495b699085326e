"""Random and adversarial ``%datasource`` and ``%%dsquery`` input, and option values.

Whatever comes in (unicode, very long strings, unbalanced quotes, NUL bytes, shell
metacharacters, path traversal, secrets typed as literals), the magics either do what was
asked or refuse with one ``UsageError`` line, leaving the registry as it was; no other
exception escapes, and no read shows anything from outside the local folder.
"""

from __future__ import annotations

import shlex
from typing import Any

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from deepanalyze_jupyter import DataSourceError
from deepanalyze_jupyter.notebook.magic_args import add_parser, query_parser, subcommand_parser
from deepanalyze_jupyter.notebook.magics import SUBCOMMANDS
from tests.fuzz.conftest import AMOUNTS, BASELINE, FUZZ, FuzzShell

#: Texts that have broken parsers, shells and file APIs before.
ADVERSARIAL = (
    "",
    " ",
    "'",
    '"',
    "\\",
    "'unbalanced",
    '"also unbalanced',
    "\x00",
    "a\x00b",
    "\x1b[31mred",
    "$(rm -rf /)",
    "`id`",
    "; ls -la",
    "| cat /etc/passwd",
    "&& echo pwned",
    "${HOME}",
    "$HOME",
    "{x}",
    "%(x)s",
    "%s%s%s",
    "../../../../etc/passwd",
    "../",
    "..",
    "2024/../../..",
    "..\\..\\windows\\win.ini",
    "/etc/passwd",
    "~/.ssh/id_rsa",
    "file:///etc/passwd",
    "\u202eevil",
    "名前",
    "é",
    "\U0001f600",
    "\r\n",
    "\n",
    "\t",
    "\u2028",
    "\x85",
    "\x0b",
    "--bad\nflag",
    "--\x00",
    "-\n",
    "x" * 5000,
    "-",
    "--",
    "---",
    "-h",
    "=",
    "--=",
    "env:",
    "env:NO_SUCH_VARIABLE_FUZZ",
    "env:PATH",
    "*",
    "**/*",
    "?",
    "[",
    "[!]",
    "{",
    "%",
    "%%",
    "NaN",
    "-1",
    "0",
    "1e309",
    "9" * 400,
    "None",
    "true",
    "null",
    "SELECT 1",
    ":param",
    "::int",
    "'; DROP TABLE orders; --",
    "postgresql://user:fuzz-secret@host/db",
    "AccountKey=ZnV6eg==",
    "https://acct.blob.core.windows.net/c?sv=1&sig=fuzzsig",
    "2024/jan.csv",
    "2024/*.csv",
    "notes.txt",
    "orders",
)

SOURCE_IDS = (*BASELINE, "nope", "9bad", "a" * 70)
#: Every flag any ``%datasource`` subcommand or ``%%dsquery`` takes (types with a server left out:
#: a line naming one would try to reach whatever host it was given).
FLAGS = sorted(
    {
        *add_parser(["sqlite", "local"], None, ()).flags(),
        *query_parser().flags(),
        *(flag for name in SUBCOMMANDS if (parser := subcommand_parser(name)) for flag in parser.flags()),
        "--path",
        "--read-only",
        "--timeout",
        "--prompt",
        "--password",
        "--password-env",
        "--unset",
    }
)

text = st.one_of(
    st.sampled_from(ADVERSARIAL), st.text(max_size=30), st.text(st.characters(codec="utf-8"), max_size=8)
)
word = st.one_of(
    text,
    st.sampled_from(FLAGS),
    text.map(lambda value: f"--{value}"),  # an unknown option, named with anything in it
    st.sampled_from(SOURCE_IDS),
    st.sampled_from(("sqlite", "local")),
)


@st.composite
def lines(draw: st.DrawFn, head: st.SearchStrategy[str]) -> str:
    """A magic line: ``head`` then words, each typed raw or shell-quoted, or ``--flag=value``."""
    parts = [draw(head)]
    for item in draw(st.lists(word, max_size=7)):
        how = draw(st.sampled_from(("raw", "quoted", "joined")))
        if how == "quoted":
            parts.append(shlex.quote(item))
        elif how == "joined":
            parts.append(f"{draw(st.sampled_from(FLAGS))}={item}")
        else:
            parts.append(item)
    return " ".join(parts)


def _no_outside_content(result: Any) -> None:
    """A successful read of the local folder shows only what the folder holds."""
    if isinstance(result, pd.DataFrame):
        shown = result.to_string()
        assert "root:" not in shown
        assert "[fonts]" not in shown
        if "amount" in result.columns and len(result):
            assert set(pd.to_numeric(result["amount"], errors="coerce").dropna()) <= AMOUNTS


@FUZZ
@given(line=lines(st.sampled_from((*SUBCOMMANDS, "", "help", "frobnicate", "ADD", "add\x00"))))
def test_datasource_lines(fuzz_shell: FuzzShell, line: str) -> None:
    result = fuzz_shell.judge("%datasource", lambda: fuzz_shell.ipython.run_line_magic("datasource", line))
    _no_outside_content(result)


#: Well-formed lines with one slot for an adversarial value, to reach past the parsers.
TEMPLATES = (
    "ls files {}",
    "ls files {} --recursive",
    "ls files 2024/ --limit {}",
    "read files {}",
    "read files 2024/jan.csv {}",
    "read files {} --format csv --source-column file",
    "read files 2024/*.csv --format {}",
    "read files 2024/*.csv --source-column {}",
    "read files 2024/*.csv -o {}",
    "columns files {}",
    "columns shop {}",
    "tables shop {}",
    "ls shop {}",
    "info {}",
    "test {}",
    "remove {}",
    "cache clear {}",
    "browse {}",
    "update shop --timeout {} --no-test",
    "update shop --read-only {} --no-test",
    "update files --path {} --no-test",
    "update shop --name {}",
    "update shop --unset {}",
    "update shop --timeout-env {}",
    "add fresh --type sqlite --path :memory: --{}",
    "add fresh --type postgresql --host 127.0.0.1 --password-env {} --no-test",
    "ls files 2024/ --{} x",
    "add {} --type sqlite --path :memory:",
    "add fresh --type sqlite --path {}",
    "add fresh --type local --path {}",
    "add fresh --type sqlite --path :memory: --timeout {}",
    "add fresh --type {} --path :memory:",
    "add fresh --type sqlite --path :memory: --name {}",
)


@FUZZ
@given(template=st.sampled_from(TEMPLATES), value=text, quoted=st.booleans())
def test_well_formed_lines_with_one_adversarial_value(
    fuzz_shell: FuzzShell, template: str, value: str, quoted: bool
) -> None:
    line = template.format(shlex.quote(value) if quoted else value)
    result = fuzz_shell.judge(
        "%datasource templates", lambda: fuzz_shell.ipython.run_line_magic("datasource", line)
    )
    _no_outside_content(result)


@FUZZ
@given(
    line=lines(st.sampled_from(("shop", "files", "", "nope", "--limit", "-o"))),
    body=st.lists(
        st.one_of(text, st.sampled_from(("SELECT * FROM orders", "SELECT :region", "2024/*.csv"))), max_size=4
    ),
)
def test_dsquery_cells(fuzz_shell: FuzzShell, line: str, body: list[str]) -> None:
    fuzz_shell.ipython.user_ns["region"] = "EU"
    cell = "\n".join(body)
    result = fuzz_shell.judge("%%dsquery", lambda: fuzz_shell.ipython.run_cell_magic("dsquery", line, cell))
    _no_outside_content(result)


@FUZZ
@given(
    source_type=st.sampled_from(("sqlite", "local", "postgresql", "azure_blob", "nosuch", "")),
    options=st.dictionaries(
        st.sampled_from(
            (
                *("path", "read_only", "timeout", "host", "port", "dbname", "user", "dsn", "sslmode"),
                *("auth", "account_url", "container", "connect_timeout", "max_concurrency", "colour"),
            )
        ),
        text,
        max_size=4,
    ),
    source_id=st.one_of(st.sampled_from(("fresh", *SOURCE_IDS)), text),
)
def test_option_values_of_an_add(
    fuzz_shell: FuzzShell, source_type: str, options: dict[str, str], source_id: str
) -> None:
    words = [shlex.quote(source_id), "--type", shlex.quote(source_type)]
    for name, value in options.items():
        words += [f"--{name.replace('_', '-')}", shlex.quote(value)]
    if source_type in ("postgresql", "azure_blob"):
        words.append("--no-test")  # a random host may take long to fail
    line = "add " + " ".join(words)
    fuzz_shell.judge("%datasource add options", lambda: fuzz_shell.ipython.run_line_magic("datasource", line))


@FUZZ
@given(
    source_type=st.sampled_from(("sqlite", "local", "postgresql", "azure_blob")),
    options=st.dictionaries(
        st.one_of(
            st.sampled_from(("path", "read_only", "timeout", "port", "dsn", "account_url", "auth")), text
        ),
        st.one_of(text, st.integers(), st.floats(allow_nan=True), st.booleans(), st.none()),
        max_size=3,
    ),
)
def test_option_values_through_the_session(
    fuzz_shell: FuzzShell, source_type: str, options: dict[str, Any]
) -> None:
    options = {
        name: value for name, value in options.items() if name not in ("name", "secrets", "test", "type")
    }
    session = fuzz_shell.session
    testing = source_type in ("sqlite", "local")
    added = fuzz_shell.judge(
        "Session.add options",
        lambda: session.add("api_fuzz", source_type, test=testing, **options),
        refusal=DataSourceError,
        prefix="api_fuzz: ",
    )
    assert added is None or added.id == "api_fuzz"


@FUZZ
@given(
    operation=st.sampled_from(("query", "list_items", "describe", "read", "test")),
    source_id=st.one_of(st.sampled_from(SOURCE_IDS), text),
    argument=st.one_of(text, st.sampled_from(("SELECT * FROM orders", "2024/*.csv", "orders"))),
)
def test_session_operations_with_adversarial_input(
    fuzz_shell: FuzzShell, operation: str, source_id: str, argument: str
) -> None:
    session = fuzz_shell.session
    calls = {
        "query": lambda: session.query(source_id, argument),
        "list_items": lambda: session.list_items(source_id, argument, refresh=True),
        "describe": lambda: session.describe(source_id, argument, refresh=True),
        "read": lambda: session.read(source_id, argument),
        "test": lambda: session.test(source_id),
    }
    result = fuzz_shell.judge("Session operations", calls[operation], refusal=DataSourceError)
    _no_outside_content(result)
