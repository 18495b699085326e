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

from .commands import add_parser, list_parser, peek_parser, query_parser, subcommand_parser, update_parser
from .options import OptionValues, add_option_arguments, option_flag, spelled_as_flags
from .parser import HelpShown, MagicLineParser
from .saved import forget_parser, load_parser, save_parser
from .values import MAX_ROW_LIMIT, MAX_TIMEOUT, output_variable, positive_float, positive_int
from .words import split_line, without_final_semicolon

__all__ = [
    "MAX_ROW_LIMIT",
    "MAX_TIMEOUT",
    "HelpShown",
    "MagicLineParser",
    "OptionValues",
    "add_option_arguments",
    "add_parser",
    "forget_parser",
    "list_parser",
    "load_parser",
    "option_flag",
    "output_variable",
    "peek_parser",
    "positive_float",
    "positive_int",
    "query_parser",
    "save_parser",
    "spelled_as_flags",
    "split_line",
    "subcommand_parser",
    "update_parser",
    "without_final_semicolon",
]
