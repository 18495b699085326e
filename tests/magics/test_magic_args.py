"""Splitting and parsing magic lines: quoting, unknown options, help, per-type options."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from deepanalyze_jupyter.magic_args import (
    HelpShown,
    MagicLineParser,
    OptionValues,
    add_option_arguments,
    add_parser,
    option_flag,
    query_parser,
    split_line,
    subcommand_parser,
)
from deepanalyze_jupyter.models import OptionSpec

SPECS = (
    OptionSpec("host", str, "server name", required=True),
    OptionSpec("port", int, "server port", default=5432),
    OptionSpec("read_only", bool, "refuse writes", default=True),
    OptionSpec("password", str, "login password", secret=True),
    OptionSpec("sas_token", str, "a token", secret=True),
)


def test_split_line_honours_quotes_and_escapes() -> None:
    assert split_line("""ls 'my folder/' "a \\"b\\"" c\\ d""") == ["ls", "my folder/", 'a "b"', "c d"]


def test_split_line_reports_an_open_quote_in_one_line() -> None:
    with pytest.raises(UsageError, match="No closing quotation"):
        split_line("ls 'unfinished")


def test_split_line_keeps_the_rest_when_not_strict() -> None:
    assert split_line("add x --password 'open", strict=False)[:3] == ["add", "x", "--password"]


def test_option_flags_use_dashes() -> None:
    assert option_flag("read_only") == "--read-only"


def test_unknown_option_is_named_without_its_value() -> None:
    parser = subcommand_parser("ls")
    assert parser is not None
    with pytest.raises(UsageError) as raised:
        parser.parse_words(["src", "--pasword=hunter2", "hunter3"])
    message = str(raised.value)
    assert "unknown option --pasword" in message
    assert "hunter" not in message


def test_unknown_option_suggests_a_close_one() -> None:
    parser = subcommand_parser("ls")
    assert parser is not None
    with pytest.raises(UsageError, match="did you mean --refresh"):
        parser.parse_words(["src", "--refrsh"])


def test_a_missing_value_is_an_error_naming_the_option() -> None:
    parser = query_parser()
    with pytest.raises(UsageError, match="argument --limit: expected one argument"):
        parser.parse_words(["src", "--limit"])


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["--limit", "0"], "at least 1"),
        (["--limit", "ten"], "whole number"),
        (["--timeout", "-1"], "above 0"),
        (["-o", "1x"], "not a valid Python variable name"),
        (["--limit", "5", "--no-limit"], "not allowed with argument"),
    ],
)
def test_query_options_are_checked(words: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        query_parser().parse_words(["src", *words])


def test_help_prints_and_stops(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(HelpShown):
        query_parser().parse_words(["--help"])
    assert "usage: %%dsquery" in capsys.readouterr().out


def test_abbreviated_options_are_not_guessed() -> None:
    parser = add_parser(["fake"], "fake", SPECS)
    with pytest.raises(UsageError, match="unknown option --ho"):
        parser.parse_words(["x", "--type", "fake", "--ho", "h"])


def test_type_options_are_parsed_from_the_specs() -> None:
    parser = MagicLineParser("%test")
    add_option_arguments(parser, "fake options", SPECS)
    line = "--host db.internal --port 6543 --read-only false --password-env PW --prompt sas_token"
    namespace = parser.parse_words(line.split())
    values = OptionValues.from_namespace(namespace)
    assert values.options == {"host": "db.internal", "port": "6543", "read_only": "false"}
    assert values.secret_env == {"password": "PW"}
    assert values.prompts == ["sas_token"]


def test_a_boolean_option_alone_means_true() -> None:
    parser = MagicLineParser("%test")
    add_option_arguments(parser, "fake options", SPECS)
    values = OptionValues.from_namespace(parser.parse_words(["--read-only", "--host", "h"]))
    assert values.options == {"read_only": "true", "host": "h"}


def test_values_typed_for_secret_options_are_kept_apart() -> None:
    parser = MagicLineParser("%test")
    add_option_arguments(parser, "fake options", SPECS)
    values = OptionValues.from_namespace(parser.parse_words(["--host", "h", "--password", "env:PW"]))
    values.split_secrets(SPECS)
    assert values.options == {"host": "h"}
    assert values.secret_values == {"password": "env:PW"}


def test_prompt_takes_only_secret_names() -> None:
    parser = MagicLineParser("%test")
    add_option_arguments(parser, "fake options", SPECS)
    with pytest.raises(UsageError, match="invalid choice: 'host'"):
        parser.parse_words(["--prompt", "host"])


def test_every_subcommand_but_add_and_update_has_a_parser() -> None:
    names = ["list", "info", "test", "remove", "ls", "read", "tables", "columns", "cache", "browse"]
    assert all(subcommand_parser(name) is not None for name in names)
    assert subcommand_parser("nope") is None
