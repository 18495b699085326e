"""Splitting and parsing magic lines: quoting, unknown options, help, per-type options."""

from __future__ import annotations

import argparse
import keyword
import math
from collections.abc import Callable
from typing import TypeVar

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from IPython.core.error import UsageError
from IPython.utils.process import arg_split  # type: ignore[attr-defined]

from deepanalyze_jupyter.models import OptionSpec
from deepanalyze_jupyter.notebook.magic_args import (
    MAX_ROW_LIMIT,
    MAX_TIMEOUT,
    HelpShown,
    MagicLineParser,
    OptionValues,
    add_option_arguments,
    add_parser,
    option_flag,
    output_variable,
    positive_float,
    positive_int,
    query_parser,
    split_line,
    subcommand_parser,
)

T = TypeVar("T")

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
        (["--limit", "0"], "from 1 to"),
        (["--limit", "ten"], "whole number"),
        (["--timeout", "-1"], "above 0"),
        (["-o", "1x"], "not a Python variable name"),
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


#: The single-value options of ``%%dsquery`` and a valid value of each.
QUERY_VALUES = {
    "--limit": st.integers(1, MAX_ROW_LIMIT).map(str),
    "--timeout": st.floats(0.001, MAX_TIMEOUT).map(repr),
    "-o": st.sampled_from(["df", "orders_2024", "x1", "résultat"]),
    "--format": st.sampled_from(["csv", "parquet"]),
    "--source-column": st.sampled_from(["file", "path"]),
}
QUERY_FLAGS = ("--no-limit", "--numeric-as-float")


@given(
    chosen=st.dictionaries(st.sampled_from(sorted(QUERY_VALUES)), st.none(), max_size=len(QUERY_VALUES)),
    flags=st.lists(st.sampled_from(QUERY_FLAGS), unique=True),
    repeat=st.booleans(),
    data=st.data(),
)
def test_each_option_is_taken_once_and_a_repeat_is_refused(
    chosen: dict[str, None], flags: list[str], repeat: bool, data: st.DataObject
) -> None:
    values = {flag: data.draw(QUERY_VALUES[flag], label=flag) for flag in chosen}
    if "--no-limit" in flags:
        values.pop("--limit", None)
    words = ["src", *(word for flag, value in values.items() for word in (flag, value)), *flags]
    repeated = data.draw(st.sampled_from(words[1:]), label="repeated") if repeat and len(words) > 1 else None
    if repeated is not None and repeated.startswith("-"):
        index = words.index(repeated)
        words += words[index : index + (1 if repeated in QUERY_FLAGS else 2)]
        with pytest.raises(
            UsageError, match=f"{repeated}.* was given more than once; give it once"
        ) as refused:
            query_parser().parse_words(words)
        assert "\n" not in str(refused.value)
        return
    args = query_parser().parse_words(words)
    dests = {"-o": "output", "--limit": "limit", "--timeout": "timeout"}
    for flag, value in values.items():
        parsed = getattr(args, dests.get(flag, flag.lstrip("-").replace("-", "_")))
        assert str(parsed) == value or parsed == float(value) or parsed == int(value)
    assert args.no_limit == ("--no-limit" in flags)


NUMBER_TEXT = st.one_of(
    st.text(max_size=60),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        ["inf", "-inf", "nan", "1e300", "9" * 400, "9223372036854775807", "1_000", " 5 ", "0x10"]
    ),
)


def outcome(parse: Callable[[str], T], text: str) -> tuple[T | None, str]:
    """What an argparse type makes of ``text``: its value, or its error's message."""
    try:
        return parse(text), ""
    except argparse.ArgumentTypeError as error:
        return None, str(error)


@given(NUMBER_TEXT)
def test_a_row_limit_is_in_bounds_or_refused_in_one_short_line(text: str) -> None:
    value, message = outcome(positive_int, text)
    if value is None:
        assert len(message) < 160
        assert "\n" not in message
    else:
        assert 1 <= value <= MAX_ROW_LIMIT


@given(NUMBER_TEXT)
@example("\x00" * 60)  # its quoted form is four times as long
def test_a_timeout_is_finite_and_in_bounds_or_refused_in_one_short_line(text: str) -> None:
    value, message = outcome(positive_float, text)
    if value is None:
        assert len(message) < 160
        assert "\n" not in message
    else:
        assert math.isfinite(value)
        assert 0 < value <= MAX_TIMEOUT


@given(
    st.one_of(st.text(max_size=20), st.sampled_from([*keyword.kwlist, "ﬁle", "__builtins__", "match", "_"]))
)
def test_an_accepted_output_name_is_a_variable_the_code_can_use(text: str) -> None:
    name, message = outcome(output_variable, text)
    if name is None:
        assert "is not a Python variable name" in message
        return
    namespace: dict[str, object] = {}
    exec(f"{text} = 42", {}, namespace)  # the name as a user types it in code
    assert namespace == {name: 42}


@given(
    st.text(
        alphabet=st.sampled_from(["a", "é", " ", "\t", "\n", "\r", "\x0b", "'", '"', "\\", "=", "$"]),
        max_size=16,
    )
)
def test_split_line_reads_words_as_shlex_does(line: str) -> None:
    """The linear splitter gives shlex's words (IPython's arg_split), open quotes included."""
    for strict in (True, False):
        try:
            expected: list[str] | None = arg_split(line, posix=True, strict=strict)
        except ValueError:
            expected = None
        try:
            words: list[str] | None = split_line(line, strict=strict)
        except UsageError:
            words = None
        assert words == expected, (line, strict)
