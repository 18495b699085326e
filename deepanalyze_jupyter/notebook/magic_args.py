"""Argument parsing for the magics: shell-like splitting and argparse parsers that never exit.

Parsers raise IPython's :class:`UsageError` (one line, no traceback) instead of exiting,
and ``--help`` prints the help and stops the magic through :class:`HelpShown`. The
per-type options of ``%datasource add`` and ``update`` are made from the connector's
``option_specs``: ``--host``, ``--read-only [true|false]``; a secret option ``--password``
also gets ``--password-env VAR``, and ``--prompt password`` asks for it.

An option that takes one value (or a flag) is given at most once: a second ``--type`` or
``--limit`` is an error, not a silent override; repeatable options say so in their help.
Row limits are whole numbers from 1 to :data:`MAX_ROW_LIMIT`, timeouts finite numbers of
seconds above 0 and at most :data:`MAX_TIMEOUT`.
"""

from __future__ import annotations

import argparse
import difflib
import keyword
import math
import os
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NoReturn

from IPython.core.error import UsageError
from IPython.utils.process import arg_split  # type: ignore[attr-defined]

from ..models import OptionSpec

__all__ = [
    "MAX_ROW_LIMIT",
    "MAX_TIMEOUT",
    "HelpShown",
    "MagicLineParser",
    "OptionValues",
    "add_option_arguments",
    "add_parser",
    "option_flag",
    "output_variable",
    "peek_parser",
    "positive_float",
    "positive_int",
    "query_parser",
    "split_line",
    "subcommand_parser",
    "update_parser",
]

_OPTION_DEST = "option:"
_ENV_DEST = "env:"

#: The largest row limit (``--limit``, ``autolimit``): far above any frame a kernel holds,
#: and far below the 64-bit limits of the servers (``LIMIT n + 1`` must still fit).
MAX_ROW_LIMIT = 10**12
#: The longest ``--timeout``, in seconds: one day.
MAX_TIMEOUT = 86_400.0


class HelpShown(Exception):
    """A parser printed its help: the magic stops there, without an error."""


def split_line(line: str, *, strict: bool = True) -> list[str]:
    """Split a magic line into words the way a shell does (quotes group, backslashes escape).

    The words are those of :func:`shlex.split` (POSIX rules; on Windows, IPython's own),
    found in time linear in the line. When ``strict`` is false, a line that ends inside
    quotes or after a backslash gives what was read of its last word as that word.
    """
    if os.name == "nt":  # pragma: no cover - backslashes are path separators there
        try:
            return arg_split(line, posix=False, strict=strict)
        except ValueError as error:
            raise UsageError(f"cannot read the line: {error} (check the quotes)") from None
    if not _QUOTING_CHAR_RE.search(line):
        return _BLANKS_RE.split(line.strip(_BLANKS)) if line.strip(_BLANKS) else []
    well_formed = _SHELL_WORDS_RE.match(line).end()  # type: ignore[union-attr]
    words = [_unquoted(word) for word in _SHELL_WORD_RE.findall(line, 0, well_formed)]
    rest = line[well_formed:]
    if rest:  # an open quote or a final backslash: the rest is the last word
        head = _SHELL_WORD_START_RE.match(rest).group()  # type: ignore[union-attr]
        problem, tail = _unfinished(rest[len(head) :])
        if strict:
            raise UsageError(f"cannot read the line: {problem} (check the quotes)")
        words.append(_unquoted(head) + tail)
    return words


_BLANKS = " \t\r\n"
# A word is runs of plain text between escapes and quoted parts, written so that no text
# can be read as pieces in two ways: a failed match backs off in linear time.
_PLAIN = r"""[^ \t\r\n'"\\]*"""
_SPECIAL = r"""(?:\\.|'[^']*'|"[^"\\]*(?:\\.[^"\\]*)*")"""
_WORD = rf"(?=[^ \t\r\n]){_PLAIN}(?:{_SPECIAL}{_PLAIN})*"
#: A whole POSIX shell word (:mod:`shlex` rules): plain text, escapes and quoted parts.
_SHELL_WORD_RE = re.compile(rf"{_WORD}(?=[ \t\r\n]|\Z)", re.DOTALL)
#: The words of a line up to where one is left open (a quote, a final backslash).
_SHELL_WORDS_RE = re.compile(rf"[ \t\r\n]*(?:{_WORD}(?:[ \t\r\n]+|\Z))*", re.DOTALL)
#: The complete pieces at the start of a word that does not end well.
_SHELL_WORD_START_RE = re.compile(rf"{_PLAIN}(?:{_SPECIAL}{_PLAIN})*", re.DOTALL)
_BLANKS_RE = re.compile(r"[ \t\r\n]+")
_QUOTING_CHAR_RE = re.compile(r"""['"\\]""")
_QUOTING_RE = re.compile(r"""\\(.)|'([^']*)'|"([^"\\]*(?:\\.[^"\\]*)*)\"""", re.DOTALL)
#: Inside double quotes a backslash escapes only ``"`` and itself.
_DOUBLE_QUOTED_ESCAPE_RE = re.compile(r'\\(["\\])')


def _unquoted(word: str) -> str:
    return _QUOTING_RE.sub(_unquote, word) if _QUOTING_CHAR_RE.search(word) else word


def _unquote(piece: re.Match[str]) -> str:
    escaped, single, double = piece.groups()
    if double is not None:
        return _DOUBLE_QUOTED_ESCAPE_RE.sub(r"\1", double) if "\\" in double else double
    return escaped if escaped is not None else single


def _unfinished(rest: str) -> tuple[str, str]:
    """Why ``rest`` (starting at a quote or a backslash) ends the line early, and its text."""
    if rest[0] == "\\":
        return "No escaped character", ""
    body = rest[1:]
    if rest[0] == '"':
        body = _DOUBLE_QUOTED_ESCAPE_RE.sub(r"\1", body.removesuffix("\\"))
    return "No closing quotation", body


def option_flag(name: str) -> str:
    """The command-line flag of option ``name``: ``read_only`` -> ``--read-only``."""
    return "--" + name.replace("_", "-")


class _Once(argparse.Action):
    """An action that refuses a second occurrence of its option instead of keeping the last."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        _refuse_repeat(parser, self, option_string)
        super().__call__(parser, namespace, values, option_string)


class _StoreOnce(_Once, argparse._StoreAction):
    """``store``, once."""


class _StoreTrueOnce(_Once, argparse._StoreTrueAction):
    """``store_true``, once."""


def _refuse_repeat(
    parser: argparse.ArgumentParser, action: argparse.Action, option_string: str | None
) -> None:
    if option_string is None or not isinstance(parser, MagicLineParser):
        return
    if action.dest in parser.given:
        parser.error(f"{'/'.join(action.option_strings)} was given more than once; give it once")
    parser.given.add(action.dest)


class MagicLineParser(argparse.ArgumentParser):
    """An argparse parser for one magic (sub)command that reports errors as one line."""

    def __init__(self, prog: str, description: str = "", epilog: str = "", *, add_help: bool = True) -> None:
        super().__init__(
            prog=prog,
            description=description,
            epilog=epilog,
            add_help=add_help,
            allow_abbrev=False,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        #: The destinations of the single-value options seen in the words being parsed.
        self.given: set[str] = set()
        # Argument groups share these registries: every option added anywhere is checked.
        self.register("action", None, _StoreOnce)
        self.register("action", "store", _StoreOnce)
        self.register("action", "store_true", _StoreTrueOnce)

    def error(self, message: str) -> NoReturn:
        """Raise a :class:`UsageError` naming the command, instead of exiting."""
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        """Stop the magic after ``--help`` printed the help."""
        if status:
            self.error(message or "invalid arguments")
        raise HelpShown

    def parse_words(self, words: Sequence[str]) -> argparse.Namespace:
        """Parse ``words``; an unknown option names only the option, never its value."""
        namespace, extras = self.parse_known_args(list(words))
        if extras:
            self.error(self._describe_extras(extras))
        return namespace

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """argparse's, counting each single-value option afresh."""
        self.given = set()
        return super().parse_known_args(args, namespace)

    def flags(self) -> list[str]:
        """Every option flag of this parser (for completion)."""
        return sorted(flag for flag in self._option_string_actions if flag.startswith("--"))

    def takes_value(self, flag: str) -> bool:
        """Whether ``flag`` is one of this parser's options that is followed by a value."""
        action = self._option_string_actions.get(flag)
        return action is not None and action.nargs != 0 and action.nargs != "?"

    def _describe_extras(self, extras: Sequence[str]) -> str:
        flags = [word.split("=", 1)[0] for word in extras if word.startswith("-") and len(word) > 1]
        if not flags:
            return f"unexpected argument {extras[0][:80]!r}"
        flag = flags[0][:80]
        close = difflib.get_close_matches(flag, list(self._option_string_actions), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        return f"unknown option {flag}{hint}"


def positive_int(text: str) -> int:
    """An argparse type: a whole number from 1 to :data:`MAX_ROW_LIMIT`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:40]!r}") from None
    if not 1 <= value <= MAX_ROW_LIMIT:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 1 to {MAX_ROW_LIMIT:,}, got {_shown_number(text)}"
        )
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number of seconds above 0 and at most :data:`MAX_TIMEOUT`."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text[:40]!r}") from None
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds above 0 and at most {MAX_TIMEOUT:,.0f} (one day), "
            f"got {_shown_number(text)}"
        )
    return value


def _shown_number(text: str) -> str:
    """A number as typed, cut when long (``1e300`` stays ``1e300``, 400 digits do not)."""
    text = text.strip()
    return text if len(text) <= 24 else f"{text[:20]}... ({len(text)} characters)"


def output_variable(text: str) -> str:
    """An argparse type: a name a result can be assigned to, and then used under that name.

    Python keywords and ``__dunder__`` names are refused; a name is kept in the NFKC form
    Python itself gives the names in code (``ﬁ`` is ``fi``).
    """
    name = unicodedata.normalize("NFKC", text)
    reserved = keyword.iskeyword(name) or (name.startswith("__") and name.endswith("__"))
    if not (text.isidentifier() and name.isidentifier()) or reserved:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a Python variable name a result can go to")
    return name


@dataclass
class OptionValues:
    """What a line gave for a connector's options, secrets kept apart by how they come."""

    options: dict[str, str | list[str]] = field(default_factory=dict)
    #: Values typed for secret options (only ``env:NAME`` references are accepted).
    secret_values: dict[str, str] = field(default_factory=dict)
    #: ``--<secret>-env VAR``: secret name -> environment variable.
    secret_env: dict[str, str] = field(default_factory=dict)
    #: ``--prompt NAME``: secrets to ask for.
    prompts: list[str] = field(default_factory=list)

    @classmethod
    def from_namespace(cls, namespace: argparse.Namespace) -> OptionValues:
        """Collect the values :func:`add_option_arguments` parsed into ``namespace``."""
        values = cls(prompts=list(getattr(namespace, "prompt", None) or []))
        for dest, value in vars(namespace).items():
            if value is None:
                continue
            if dest.startswith(_OPTION_DEST):
                values.options[dest.removeprefix(_OPTION_DEST)] = value
            elif dest.startswith(_ENV_DEST):
                values.secret_env[dest.removeprefix(_ENV_DEST)] = value
        return values

    def split_secrets(self, specs: Sequence[OptionSpec]) -> None:
        """Move values typed for secret options out of :attr:`options`."""
        for spec in specs:
            if spec.secret and spec.name in self.options:
                self.secret_values[spec.name] = str(self.options.pop(spec.name))


def add_option_arguments(parser: MagicLineParser, title: str, specs: Sequence[OptionSpec]) -> None:
    """Add a connector's options to ``parser``, in a help section called ``title``."""
    group = parser.add_argument_group(title)
    for spec in specs:
        flag = option_flag(spec.name)
        dest = _OPTION_DEST + spec.name
        if spec.secret:
            group.add_argument(
                flag,
                dest=dest,
                metavar="env:VAR",
                help=f"{_describe(spec)}; a secret: give env:VAR, {flag}-env VAR or --prompt {spec.name}",
            )
            group.add_argument(
                f"{flag}-env",
                dest=_ENV_DEST + spec.name,
                metavar="VAR",
                help=f"read {spec.title.lower()} from environment variable VAR",
            )
        elif spec.kind is bool:
            group.add_argument(
                flag, dest=dest, nargs="?", const="true", metavar="true|false", help=_describe(spec)
            )
        elif spec.repeatable:
            group.add_argument(
                flag, dest=dest, action="append", metavar=spec.name.upper(), help=_describe(spec)
            )
        else:
            group.add_argument(flag, dest=dest, metavar=spec.name.upper(), help=_describe(spec))
    secret_names = [spec.name for spec in specs if spec.secret]
    if secret_names:
        group.add_argument(
            "--prompt",
            action="append",
            choices=secret_names,
            metavar="NAME",
            help=f"ask for a secret with a hidden prompt ({', '.join(secret_names)}); repeatable",
        )


def _describe(spec: OptionSpec) -> str:
    parts = [spec.help or spec.title]
    if spec.choices:
        parts.append(f"one of: {', '.join(spec.choices)}")
    if spec.default is not None:
        parts.append(f"default: {spec.default}")
    if spec.required:
        parts.append(
            "required" if spec.when is None else f"required when {spec.when[0]} is {'/'.join(spec.when[1])}"
        )
    elif spec.when is not None:
        parts.append(f"used when {spec.when[0]} is {'/'.join(spec.when[1])}")
    return "; ".join(parts).replace("%", "%%")


# -- the parsers of the magics -----------------------------------------------------------


def add_parser(
    source_types: Sequence[str], source_type: str | None, specs: Sequence[OptionSpec]
) -> MagicLineParser:
    """``%datasource add``: the general options, and those of ``source_type`` when known."""
    types = ", ".join(source_types)
    parser = MagicLineParser(
        "%datasource add",
        "Register a data source; its connection is tested first unless --no-test.",
        f"Source types: {types}. The options of a type: %datasource add --type TYPE --help",
    )
    parser.add_argument("id", nargs="?", metavar="ID", help="the new source's id (letters, digits, _ - .)")
    parser.add_argument("--type", metavar="TYPE", help=f"the source type: {types}")
    parser.add_argument("--name", help="a display name (default: the id)")
    parser.add_argument("--no-test", action="store_true", help="register without testing the connection")
    if source_type and specs:
        add_option_arguments(parser, f"{source_type} options", specs)
    return parser


def peek_parser() -> MagicLineParser:
    """Reads the id and type of an add line before the type's options are known."""
    parser = MagicLineParser("%datasource add", add_help=False)
    parser.add_argument("id", nargs="?")
    parser.add_argument("--type")
    return parser


def update_parser(source_type: str | None, specs: Sequence[OptionSpec]) -> MagicLineParser:
    """``%datasource update``: the options of the source's type, ``--unset`` and ``--name``."""
    parser = MagicLineParser(
        "%datasource update",
        "Change a source's options or secrets, keeping its id; the change is tested unless --no-test.",
    )
    parser.add_argument("id", metavar="ID", help="the source to change")
    parser.add_argument("--name", help="a new display name")
    parser.add_argument("--no-test", action="store_true", help="do not test the changed connection")
    parser.add_argument(
        "--unset",
        action="append",
        default=[],
        choices=[spec.name for spec in specs] or None,
        metavar="OPTION",
        help="remove an option or secret (repeatable)",
    )
    if source_type and specs:
        add_option_arguments(parser, f"{source_type} options", specs)
    return parser


def query_parser() -> MagicLineParser:
    """``%%dsquery``'s line."""
    parser = MagicLineParser(
        "%%dsquery", "Query an SQL source, or read files of a file source, into a DataFrame."
    )
    parser.add_argument(
        "id", nargs="?", metavar="ID", help="the source (default: DataSourceMagics.default_source)"
    )
    _add_result_arguments(parser)
    parser.add_argument(
        "--timeout", type=positive_float, metavar="S", help="cancel an SQL query after S seconds"
    )
    parser.add_argument(
        "--numeric-as-float",
        action="store_true",
        help="return NUMERIC columns as float64 instead of exact decimals (PostgreSQL)",
    )
    _add_file_arguments(parser)
    return parser


def subcommand_parser(subcommand: str) -> MagicLineParser | None:
    """The parser of a ``%datasource`` subcommand other than add and update."""
    builder = _SUBCOMMAND_PARSERS.get(subcommand)
    return builder() if builder is not None else None


def _source_parser(subcommand: str, description: str) -> MagicLineParser:
    parser = MagicLineParser(f"%datasource {subcommand}", description)
    parser.add_argument("id", metavar="ID", help="the source")
    return parser


def _list_parser() -> MagicLineParser:
    return MagicLineParser("%datasource list", "The registered sources: id, type, name, status, created.")


def _info_parser() -> MagicLineParser:
    return _source_parser("info", "A source's settings (secrets masked) and its connection status.")


def _test_parser() -> MagicLineParser:
    return _source_parser("test", "Check that a source answers (a real round trip).")


def _remove_parser() -> MagicLineParser:
    return _source_parser("remove", "Disconnect and forget a source and its secrets.")


def _ls_parser() -> MagicLineParser:
    parser = _source_parser("ls", "List a source's items: folders and files, or schemas and tables.")
    parser.add_argument("prefix", nargs="?", metavar="PREFIX", help="a folder, prefix or glob to list")
    parser.add_argument("-r", "--recursive", action="store_true", help="list everything below, flat")
    parser.add_argument("--limit", type=positive_int, metavar="N", help="list at most N items")
    parser.add_argument("--refresh", action="store_true", help="ignore the cached listing")
    return parser


def _tables_parser() -> MagicLineParser:
    parser = _source_parser("tables", "List the tables and views of an SQL source.")
    parser.add_argument("schema", nargs="?", metavar="SCHEMA", help="only this schema")
    parser.add_argument("--refresh", action="store_true", help="ignore the cached listing")
    return parser


def _columns_parser() -> MagicLineParser:
    parser = _source_parser("columns", "Describe a table's columns (or a file's properties).")
    parser.add_argument("table", metavar="TABLE")
    parser.add_argument("--refresh", action="store_true", help="ignore the cached description")
    return parser


def _read_parser() -> MagicLineParser:
    parser = _source_parser("read", "Read files (paths or globs) of a source into one DataFrame.")
    parser.add_argument("paths", nargs="+", metavar="PATH")
    _add_result_arguments(parser)
    _add_file_arguments(parser)
    return parser


def _cache_parser() -> MagicLineParser:
    parser = MagicLineParser("%datasource cache", "Forget cached listings and table descriptions.")
    parser.add_argument("action", choices=["clear"], metavar="clear")
    parser.add_argument("id", nargs="?", metavar="ID", help="only this source's (default: every source's)")
    return parser


def _browse_parser() -> MagicLineParser:
    parser = MagicLineParser("%datasource browse", "Show the form that browses the sources.")
    parser.add_argument("id", nargs="?", metavar="ID", help="the source to open first")
    return parser


def _add_result_arguments(parser: MagicLineParser) -> None:
    parser.add_argument(
        "-o", "--output", type=output_variable, metavar="VAR", help="also assign the result to VAR"
    )
    limits = parser.add_mutually_exclusive_group()
    limits.add_argument("--limit", type=positive_int, metavar="N", help="return at most N rows")
    limits.add_argument("--no-limit", action="store_true", help="return every row (ignore the autolimit)")


def _add_file_arguments(parser: MagicLineParser) -> None:
    parser.add_argument("--format", metavar="F", help="the file format (default: from the file name)")
    parser.add_argument("--source-column", metavar="NAME", help="add a column NAME naming each row's file")
    parser.add_argument(
        "--encoding", metavar="E", help="the text encoding of CSV/JSON files (default: utf-8)"
    )


_SUBCOMMAND_PARSERS: Mapping[str, Callable[[], MagicLineParser]] = MappingProxyType(
    {
        "list": _list_parser,
        "info": _info_parser,
        "test": _test_parser,
        "remove": _remove_parser,
        "ls": _ls_parser,
        "tables": _tables_parser,
        "columns": _columns_parser,
        "read": _read_parser,
        "cache": _cache_parser,
        "browse": _browse_parser,
    }
)
