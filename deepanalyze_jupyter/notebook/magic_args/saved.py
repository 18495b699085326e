"""Parsers of ``%datasource save``, ``load`` and ``forget``: sources kept across restarts."""

from __future__ import annotations

from ...saved.references import REFERENCE_FORMS
from .parser import MagicLineParser

__all__ = ["forget_parser", "load_parser", "save_parser"]


def save_parser() -> MagicLineParser:
    parser = MagicLineParser(
        "%datasource save",
        "Save sources' definitions so that they come back after a kernel restart. A secret is never "
        f"written: each secret field is saved as a reference ({REFERENCE_FORMS}).",
    )
    parser.add_argument("ids", nargs="*", metavar="ID", help="the sources to save")
    parser.add_argument("--all", action="store_true", help="save every source of this kernel")
    parser.add_argument(
        "--project", action="store_true", help="save into .deepanalyze-sources.toml here, not the user file"
    )
    parser.add_argument(
        "--ref",
        nargs=2,
        action="append",
        metavar=("FIELD", "REFERENCE"),
        help="where secret FIELD comes from: env:VAR, prompt, keyring:SERVICE/USERNAME or none",
    )
    return parser


def load_parser() -> MagicLineParser:
    parser = MagicLineParser(
        "%datasource load",
        "Load the saved sources (the user file, then the project file); nothing connects until first use.",
    )
    parser.add_argument("--file", metavar="PATH", help="load this sources file only")
    return parser


def forget_parser() -> MagicLineParser:
    parser = MagicLineParser(
        "%datasource forget", "Remove a saved source from its file (the kernel keeps it)."
    )
    parser.add_argument("id", metavar="ID", help="the source")
    parser.add_argument("--project", action="store_true", help="from the project file, not the user file")
    return parser
