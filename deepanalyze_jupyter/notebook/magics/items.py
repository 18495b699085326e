"""``%datasource`` subcommands that browse and read a source: ls, tables, columns, read."""

from __future__ import annotations

from typing import Any

import pandas as pd
from IPython.core.error import UsageError

from .base import MagicsBase, parser_of, reader_options

__all__ = ["ItemCommands"]


class ItemCommands(MagicsBase):
    """Listing a source's items, describing tables and reading files."""

    def _ls(self, words: list[str]) -> pd.DataFrame:
        args = parser_of("ls").parse_words(words)
        return self.session.list_items(
            args.id, args.prefix, recursive=args.recursive, limit=args.limit, refresh=args.refresh
        )

    def _tables(self, words: list[str]) -> pd.DataFrame:
        args = parser_of("tables").parse_words(words)
        if self._kind(args.id) != "sql":
            raise UsageError(f"{args.id}: a file source has no tables; list it with %datasource ls {args.id}")
        # Without a schema, every table of every schema (a folder-style listing would show schemas).
        return self.session.list_items(
            args.id, args.schema, recursive=args.schema is None, refresh=args.refresh
        )

    def _columns(self, words: list[str]) -> pd.DataFrame:
        args = parser_of("columns").parse_words(words)
        return self.session.describe(args.id, args.table, refresh=args.refresh)

    def _read(self, words: list[str]) -> Any:
        args = parser_of("read").parse_words(words)
        if args.overwrite and args.to is None:
            raise UsageError(f"{args.id}: --overwrite goes with --to PATH (an export)")
        if args.to is not None:
            given = [flag for flag, value in (("--limit", args.limit), ("-o", args.output)) if value]
            if given or args.result_format is not None:
                flags = ", ".join(given + (["--as"] if args.result_format is not None else []))
                raise UsageError(f"{args.id}: --to writes every row to a file; {flags} cannot go with it")
            print(
                self.session.export_files(
                    args.id,
                    args.paths,
                    args.to,
                    overwrite=args.overwrite,
                    format=args.format,
                    source_column=args.source_column,
                    **reader_options(args),
                )
            )
            return None
        limit = self._row_limit(args)
        result = self.session.read_result(
            args.id,
            args.paths,
            format=args.format,
            limit=limit,
            source_column=args.source_column,
            output=self._result_format(args),
            **reader_options(args),
        )
        return self._deliver(result, args, limit)

    def _cached_items(self, source_id: str, subcommand: str) -> list[str]:
        """The names ``subcommand`` takes from the source's cached listings (for completion).

        Files by their path; for an SQL source, schemas (``ls``, ``tables``) or tables, bare
        and schema-qualified. Only what is cached: completion never calls the source.
        """
        names: dict[str, None] = {}
        for listing in self.session.registry.cached_listings(source_id):
            if "name" not in listing.columns:
                continue
            if "schema" not in listing.columns:
                names.update(dict.fromkeys(str(name) for name in listing["name"]))
            elif subcommand in ("ls", "tables"):
                names.update(dict.fromkeys(str(schema) for schema in listing["schema"]))
            else:
                for schema, name in zip(listing["schema"], listing["name"], strict=True):
                    names.update(dict.fromkeys((str(name), f"{schema}.{name}")))
        return sorted(names)
