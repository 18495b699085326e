"""``%datasource write SOURCE TARGET VARIABLE``: a DataFrame of the notebook into a table or a file.

Glue only: the variable is looked up in the user's namespace and handed to
:meth:`Session.write <deepanalyze_jupyter.session.Session.write>`, which checks the frame,
refuses read-only sources and writes all or nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from IPython.core.error import UsageError

from ...session import Session
from ..magic_args import subcommand_parser

__all__ = ["write_variable"]


def write_variable(session: Session, namespace: dict[str, Any] | None, words: Sequence[str]) -> None:
    """Parse a write line, write the variable's DataFrame and print what was written."""
    parser = subcommand_parser("write")
    assert parser is not None
    args = parser.parse_words(words)
    frame = _frame(namespace or {}, args.variable)
    print(
        session.write(
            args.id,
            args.target,
            frame,
            mode=args.mode,
            overwrite=args.overwrite,
            index=args.index,
            types=_types(args.types or []),
            format=args.format,
        )
    )


def _frame(namespace: dict[str, Any], name: str) -> pd.DataFrame:
    if name not in namespace:
        raise UsageError(f"%datasource write: no variable {name[:60]!r} in the notebook")
    value = namespace[name]
    if not isinstance(value, pd.DataFrame):
        raise UsageError(f"%datasource write: {name!r} is a {type(value).__name__}, not a DataFrame")
    return value


def _types(pairs: Sequence[str]) -> dict[str, str]:
    """``COLUMN=TYPE`` pairs (``--types amount=numeric(12,2)``) as a mapping."""
    types = {}
    for pair in pairs:
        column, equals, kind = pair.partition("=")
        if not equals or not column or not kind:
            raise UsageError(f"%datasource write: --types takes COLUMN=TYPE, not {pair[:60]!r}")
        types[column] = kind
    return types
