"""``%datasource save``, ``load``, ``forget`` and ``list --saved``: sources kept across restarts.

Each handler takes the :class:`~deepanalyze_jupyter.notebook.magics.DataSourceMagics`
instance and the words after the subcommand, and calls the session. A secret is never
written: ``save`` writes each secret field as a reference (``--ref FIELD REFERENCE``, or
the one the source was loaded with).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import pandas as pd

from ...errors import DataSourceError
from ...saved.references import REFERENCE_FORMS, parse_reference
from ...session import Session
from ..magic_args import forget_parser, list_parser, load_parser, save_parser
from ..secret_input import LiteralSecret, LiteralSecretRefused


class DataSourceMagics(Protocol):
    """What these handlers use of the ``%datasource`` magics."""

    session: Session
    autoload: bool

    def _list(self, words: list[str]) -> pd.DataFrame | None: ...


__all__ = ["autoload_saved_sources", "forget_source", "list_sources", "load_sources", "save_sources"]


def save_sources(magics: DataSourceMagics, words: Sequence[str]) -> None:
    """``%datasource save ID... | --all [--project] [--ref FIELD REFERENCE ...]``."""
    args = save_parser().parse_words(words)
    if bool(args.ids) == args.all:
        raise save_parser().error("name the sources to save, or give --all")
    references = dict(_checked_references(args.ref or [], args.ids))
    path = magics.session.save(*args.ids, all_sources=args.all, project=args.project, references=references)
    saved = ", ".join(args.ids) if args.ids else "every source"
    print(f"Saved {saved} to {path} (secrets as references only; nothing connects until first use).")


def _checked_references(pairs: Sequence[Sequence[str]], ids: Sequence[str]) -> list[tuple[str, str]]:
    """The ``--ref`` pairs; a value that is not a reference may be a typed secret: refused and scrubbed."""
    checked = []
    for field, text in pairs:
        try:
            parse_reference(text, source="", field=field)
        except DataSourceError:
            refused = LiteralSecret(
                "--ref", text, embedded=False, not_a_name=f"it is not a reference ({REFERENCE_FORMS})"
            )
            raise LiteralSecretRefused(
                [refused], source=ids[0] if ids else None, secret_names=[field]
            ) from None
        checked.append((field, text))
    return checked


def load_sources(magics: DataSourceMagics, words: Sequence[str]) -> None:
    """``%datasource load [--file PATH]``: register the saved sources, connecting nothing."""
    args = load_parser().parse_words(words)
    lines = magics.session.load(Path(args.file).expanduser() if args.file else None)
    if not lines:
        saved = magics.session.saved()
        print(f"No saved sources (in {saved.user_file} or {saved.project_file}).")
    _report(lines)


def forget_source(magics: DataSourceMagics, words: Sequence[str]) -> None:
    """``%datasource forget ID [--project]``: remove a source from the file, not from the kernel."""
    args = forget_parser().parse_words(words)
    path = magics.session.forget(args.id, project=args.project)
    print(f"Removed {args.id!r} from {path}; this kernel keeps it until %datasource remove {args.id}.")


def list_sources(magics: DataSourceMagics, words: Sequence[str]) -> pd.DataFrame | None:
    """``%datasource list [--saved]``: the kernel's sources, or the saved ones with their status."""
    if "--saved" not in words:
        return magics._list(list(words))
    list_parser().parse_words(words)
    frame = magics.session.saved_sources()
    _report(frame.attrs.get("problems", []))
    return frame


def autoload_saved_sources(magics: DataSourceMagics) -> None:
    """Load the saved sources at ``%load_ext`` when ``DataSourceMagics.autoload`` is on."""
    if not magics.autoload:
        return
    try:
        _report(magics.session.load())
    except DataSourceError as error:
        print(str(error), file=sys.stderr)


def _report(lines: Sequence[str]) -> None:
    """Print what loading did: loaded sources to stdout, problems to stderr (one line each)."""
    for line in lines:
        loaded = ": loaded from " in line and "not usable" not in line
        print(line, file=sys.stdout if loaded else sys.stderr)
