"""The parsers of the magics: ``%datasource`` and its subcommands, and ``%%dsquery``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

from ...models import OptionSpec
from ...results import OUTPUT_FORMATS
from ...writing import WRITE_MODES
from .options import add_option_arguments
from .parser import MagicLineParser
from .saved import forget_parser, load_parser, save_parser
from .values import output_variable, positive_float, positive_int

__all__ = [
    "add_parser",
    "list_parser",
    "peek_parser",
    "query_parser",
    "subcommand_parser",
    "update_parser",
]


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
    parser.value_choices["type"] = tuple(source_types)
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
        "%%dsquery",
        "Query an SQL source, or a file source with SQL (DuckDB) or one path per line, into a DataFrame.",
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
    parser.add_argument(
        "--cache",
        type=positive_float,
        metavar="TTL",
        help="reuse this session's result of the same query if younger than TTL seconds",
    )
    parser.add_argument(
        "--frames",
        metavar="NAMES",
        help="DataFrame variables (comma-separated) the SQL on a file source may use as tables",
    )
    _add_export_arguments(parser)
    parser.add_argument(
        "--partition-on", metavar="COLUMN", help="read in ranges of this integer column at once (PostgreSQL)"
    )
    parser.add_argument(
        "--partitions",
        type=positive_int,
        metavar="N",
        help="with --partition-on: how many ranges (default 4)",
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


def list_parser() -> MagicLineParser:
    parser = MagicLineParser("%datasource list", "The registered sources: id, type, name, status, created.")
    parser.add_argument(
        "--saved", action="store_true", help="the saved sources instead, and whether each can be used"
    )
    return parser


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
    _add_export_arguments(parser)
    return parser


def _cache_parser() -> MagicLineParser:
    parser = MagicLineParser(
        "%datasource cache", "Forget cached listings, table descriptions and query results (--cache)."
    )
    parser.add_argument("action", choices=["clear"], metavar="clear")
    parser.add_argument("id", nargs="?", metavar="ID", help="only this source's (default: every source's)")
    return parser


def _browse_parser() -> MagicLineParser:
    parser = MagicLineParser("%datasource browse", "Show the form that browses the sources.")
    parser.add_argument("id", nargs="?", metavar="ID", help="the source to open first")
    return parser


def _write_parser() -> MagicLineParser:
    parser = _source_parser("write", "Write a DataFrame variable into a table or a file, all or nothing.")
    parser.add_argument("target", metavar="TARGET", help="a table (schema.table) or a file path")
    parser.add_argument("variable", metavar="VARIABLE", help="the DataFrame to write")
    parser.add_argument(
        "--mode", choices=WRITE_MODES, default="create", help="tables: create, append or replace"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing table or file")
    parser.add_argument("--format", metavar="F", help="the file format (default: from the file name)")
    parser.add_argument("--index", action="store_true", help="write the index as columns too")
    parser.add_argument("--types", nargs="+", metavar="COLUMN=TYPE", help="SQL types for some columns")
    return parser


def _add_result_arguments(parser: MagicLineParser) -> None:
    parser.add_argument(
        "-o", "--output", type=output_variable, metavar="VAR", help="also assign the result to VAR"
    )
    limits = parser.add_mutually_exclusive_group()
    limits.add_argument("--limit", type=positive_int, metavar="N", help="return at most N rows")
    limits.add_argument("--no-limit", action="store_true", help="return every row (ignore the autolimit)")
    parser.add_argument(
        "--as",
        dest="result_format",
        choices=OUTPUT_FORMATS,
        metavar="FORMAT",
        help=f"the result's format: {', '.join(OUTPUT_FORMATS)} (default: DataSourceMagics.output)",
    )
    parser.value_choices["result_format"] = OUTPUT_FORMATS


def _add_export_arguments(parser: MagicLineParser) -> None:
    parser.add_argument(
        "--to",
        metavar="PATH",
        help="write every row batch by batch instead, to a local path or a path in a local or blob "
        "source (dsrc://SOURCE/path); .parquet, .csv, .tsv or .jsonl",
    )
    parser.add_argument("--overwrite", action="store_true", help="with --to: replace an existing file")


def _add_file_arguments(parser: MagicLineParser) -> None:
    parser.add_argument("--format", metavar="F", help="the file format (default: from the file name)")
    parser.add_argument("--source-column", metavar="NAME", help="add a column NAME naming each row's file")
    parser.add_argument(
        "--encoding", metavar="E", help="the text encoding of CSV/JSON files (default: utf-8)"
    )


_SUBCOMMAND_PARSERS: Mapping[str, Callable[[], MagicLineParser]] = MappingProxyType(
    {
        "list": list_parser,
        "info": _info_parser,
        "test": _test_parser,
        "remove": _remove_parser,
        "ls": _ls_parser,
        "tables": _tables_parser,
        "columns": _columns_parser,
        "read": _read_parser,
        "cache": _cache_parser,
        "browse": _browse_parser,
        "save": save_parser,
        "load": load_parser,
        "forget": forget_parser,
        "write": _write_parser,
    }
)
