"""``%%dsquery``: a query of an SQL source, or the files of a file source, into a DataFrame."""

from __future__ import annotations

import argparse
import re
from typing import Any

import pandas as pd
from IPython.core.error import UsageError

from ...connectors.files.statements import is_sql
from ...errors import DataSourceError
from ...results import Result
from ...sqlparams import find_parameters, has_statement
from ..magic_args import MagicLineParser, query_parser, split_line
from .base import MagicsBase, reader_options

__all__ = ["QueryCommands"]


class QueryCommands(MagicsBase):
    """The work of ``%%dsquery``: the line's source and options, then the query or the read."""

    def _dsquery(self, line: str, cell: str | None) -> Any:
        self._refuse_literal_secrets(split_line(line, strict=False), ())
        parser = query_parser()
        header, body = self._split_query_line(line, parser) if cell is None else (split_line(line), cell)
        args = parser.parse_words(header)
        source_id = args.id or self.default_source
        if not source_id:
            raise UsageError(
                "%dsquery: no source given: name one (%%dsquery ID), "
                "or set %config DataSourceMagics.default_source = 'ID'"
            )
        self._refuse_lone_flags(source_id, args)
        if args.to is not None:
            print(self._export(source_id, body, args))
            return None
        limit = self._row_limit(args)
        if self._kind(source_id) == "sql" or is_sql(body) or args.frames:
            frame = self._run_query(source_id, body, args, limit)
        else:
            frame = self._read_paths(source_id, body, args, limit)
        return self._deliver(frame, args, limit)

    def _split_query_line(self, line: str, parser: MagicLineParser) -> tuple[list[str], str]:
        """Split ``%dsquery ID [options] BODY`` into the header's words and the body as typed."""
        header: list[str] = []
        expects_value = named_source = False
        body_start = len(line)
        for match in re.finditer(r"\S+", line):
            word = match.group()
            if expects_value:
                expects_value = False
            elif word == "--":
                body_start = match.end()
                break
            elif word.startswith("-"):
                expects_value = "=" not in word and parser.takes_value(word)
            elif not named_source and (not self.default_source or self.session.registry.exists(word)):
                named_source = True
            else:
                body_start = match.start()
                break
            header.append(word)
        return header, line[body_start:]

    def _run_query(self, source_id: str, body: str, args: argparse.Namespace, limit: int | None) -> Result:
        if args.format is not None or args.source_column is not None or args.encoding is not None:
            raise UsageError(
                f"{source_id}: --format, --source-column and --encoding apply to file sources only"
            )
        sql = body.strip()
        self._refuse_empty(source_id, sql)
        params = self._parameters(source_id, sql)
        options: dict[str, Any] = {"numeric_as_float": True} if args.numeric_as_float else {}
        if args.frames:
            options["frames"] = self._frames(source_id, args.frames)
        if args.partition_on is not None:
            options.update(partition_on=args.partition_on, partitions=args.partitions or 4)
        return self.session.query_result(
            source_id,
            sql,
            params or None,
            limit=limit,
            timeout=args.timeout,
            output=self._result_format(args),
            cache_ttl=self._cache_ttl(args),
            **options,
        )

    def _export(self, source_id: str, body: str, args: argparse.Namespace) -> str:
        """``--to PATH``: every row of the query (or of the files read) written batch by batch."""
        if self._kind(source_id) != "sql" and not is_sql(body):
            self._refuse_sql_flags(source_id, args)
            return self.session.export_files(
                source_id,
                self._paths(source_id, body),
                args.to,
                overwrite=args.overwrite,
                format=args.format,
                source_column=args.source_column,
                **reader_options(args),
            )
        sql = body.strip()
        self._refuse_empty(source_id, sql)
        options = {"numeric_as_float": True} if args.numeric_as_float else {}
        params = self._parameters(source_id, sql)
        return self.session.export(
            source_id, sql, args.to, params or None, overwrite=args.overwrite, timeout=args.timeout, **options
        )

    def _refuse_empty(self, source_id: str, sql: str) -> None:
        """An empty cell, or one of comments only, is no query (not an empty result)."""
        if not has_statement(sql):
            what = "empty" if not sql else "only comments"
            raise UsageError(
                f"{source_id}: the query is {what}; write the SQL in the cell, below the %%dsquery line"
            )

    def _refuse_lone_flags(self, source_id: str, args: argparse.Namespace) -> None:
        """Flags that only go with another one: alone they would be silently ignored."""
        if args.partitions is not None and args.partition_on is None:
            raise UsageError(f"{source_id}: --partitions goes with --partition-on COLUMN")
        if args.overwrite and args.to is None:
            raise UsageError(f"{source_id}: --overwrite goes with --to PATH (an export)")

    def _refuse_sql_flags(self, source_id: str, args: argparse.Namespace) -> None:
        for flag, given in (
            ("--timeout", args.timeout is not None),
            ("--numeric-as-float", args.numeric_as_float),
        ):
            if given:
                raise UsageError(f"{source_id}: {flag} applies to SQL sources only")

    def _paths(self, source_id: str, body: str) -> list[str]:
        """The paths or globs of a cell, one a line (``#`` lines are comments)."""
        paths = [text.strip() for text in body.splitlines()]
        paths = [path for path in paths if path and not path.startswith("#")]
        if not paths:
            raise UsageError(
                f"{source_id}: no path given; write one path or glob per line, below the %%dsquery line"
            )
        return paths

    def _read_paths(self, source_id: str, body: str, args: argparse.Namespace, limit: int | None) -> Result:
        self._refuse_sql_flags(source_id, args)
        paths = self._paths(source_id, body)
        return self.session.read_result(
            source_id,
            paths,
            format=args.format,
            limit=limit,
            source_column=args.source_column,
            output=self._result_format(args),
            cache_ttl=self._cache_ttl(args),
            **reader_options(args),
        )

    def _cache_ttl(self, args: argparse.Namespace) -> float | None:
        """Seconds a cached result may be reused: ``--cache TTL``, else ``DataSourceMagics.cache_ttl``."""
        ttl = args.cache if args.cache is not None else self.cache_ttl
        return float(ttl) or None

    def _frames(self, source_id: str, names: str) -> dict[str, Any]:
        """The DataFrames named in ``--frames``, from the user's namespace."""
        namespace = self.shell.user_ns if self.shell is not None else {}
        frames = {}
        for name in filter(None, (part.strip() for part in names.split(","))):
            if not isinstance(namespace.get(name), pd.DataFrame):
                raise UsageError(f"{source_id}: --frames names {name!r}, which is not a DataFrame variable")
            frames[name] = namespace[name]
        return frames

    def _parameters(self, source_id: str, sql: str) -> dict[str, Any]:
        """The values of the query's ``:name`` placeholders, from the user's namespace."""
        namespace = self.shell.user_ns if self.shell is not None else {}
        values: dict[str, Any] = {}
        for name in dict.fromkeys(find_parameters(sql)):
            if name not in namespace:
                raise UsageError(f"{source_id}: the query uses :{name}, but no variable {name!r} is defined")
            values[name] = namespace[name]
        return values

    def _dsquery_interrupted(self, line: str) -> str:
        words = line.split()
        source_id = next((word for word in words if self.session.registry.exists(word)), self.default_source)
        try:
            kind = self._kind(source_id)
        except (DataSourceError, UsageError):
            return "interrupted; %dsquery was stopped"
        if kind == "sql":
            where = "" if self.session.registry.get_config(source_id).type == "sqlite" else " on the server"
            return f"{source_id}: interrupted; the query was cancelled{where}"
        return f"{source_id}: interrupted; the read was stopped"
