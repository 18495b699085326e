"""The ``%datasource`` and ``%%dsquery`` magics: one class made of the topics' commands.

Each topic is a module of its own: a mixin of :class:`~.base.MagicsBase` (``sources``,
``items``, ``queries``), whose ``%datasource`` subcommands are methods ``_NAME(words)``, or
functions of the magics' session and line (``saved``, ``write``). Every subcommand is listed
in :data:`SUBCOMMANDS` and in :meth:`DataSourceMagics._handlers`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import line_cell_magic, line_magic, magics_class, no_var_expand

from ...errors import quoted
from ...session import Session
from ..completion import MagicCompleter
from ..magic_args import (
    MagicLineParser,
    add_parser,
    query_parser,
    split_line,
    subcommand_parser,
    update_parser,
    without_final_semicolon,
)
from . import saved
from .items import ItemCommands
from .queries import QueryCommands
from .sources import SourceCommands
from .write import write_variable

__all__ = ["SUBCOMMANDS", "DataSourceMagics"]

#: The subcommands of ``%datasource``, in the order the help lists them.
SUBCOMMANDS = (
    "add",
    "list",
    "info",
    "test",
    "update",
    "remove",
    "ls",
    "read",
    "tables",
    "columns",
    "cache",
    "browse",
    "save",
    "load",
    "forget",
    "write",
)
#: Subcommands that look for literal secrets knowing the secret options of the source type.
_TYPED_SCAN = frozenset({"add", "update"})


@magics_class
class DataSourceMagics(SourceCommands, ItemCommands, QueryCommands):
    """Magics over the shell's data-source session (configurable with ``%config``)."""

    def __init__(self, shell: Any, *, session: Session) -> None:
        super().__init__(shell, session=session)
        self._completer = MagicCompleter(
            subcommands=SUBCOMMANDS,
            source_ids=lambda: self.session.registry.source_ids,
            parser=self._parser_for,
            items=self._cached_items,
        )
        if shell is not None:
            self._completer.install(shell)

    def detach(self) -> None:
        """Undo what the constructor hooked into the shell (at ``%unload_ext``)."""
        if self.shell is not None:
            self._completer.uninstall(self.shell)
        super().detach()

    # -- %datasource -------------------------------------------------------------------

    @no_var_expand
    @line_magic
    def datasource(self, line: str = "") -> Any:
        """Manage data sources: add, inspect, browse and remove them.

        ::

          %datasource add ID --type TYPE [--OPTION VALUE ...] [--name NAME] [--no-test]
          %datasource add                 (no arguments: shows the form)
          %datasource list                (a DataFrame: id, type, name, status, created)
          %datasource info ID             (options with secrets masked, and status)
          %datasource test ID
          %datasource update ID [--OPTION VALUE ...] [--unset OPTION] [--name NAME] [--no-test]
          %datasource remove ID
          %datasource ls ID [PREFIX] [--recursive] [--limit N] [--refresh]
          %datasource read ID PATH [PATH ...] [--format F] [-o VAR] [--source-column NAME] [--encoding E]
                                          [--limit N | --no-limit] [--as pandas|arrow|polars]
                                          [--to PATH|dsrc://SOURCE/PATH [--overwrite]]  (batch by batch)
          %datasource tables ID [SCHEMA] [--refresh]
          %datasource columns ID TABLE [--refresh]
          %datasource cache clear [ID]    (cached listings and query results)
          %datasource browse [ID]         (shows the browse form)
          %datasource save ID... | --all [--project] [--ref FIELD REFERENCE ...]
          %datasource load [--file PATH]  (the saved sources; %load_ext loads them too)
          %datasource forget ID [--project]
          %datasource list --saved        (the saved sources and whether each can be used)
          %datasource write ID TARGET VARIABLE [--mode create|append|replace] [--overwrite]
                                          [--format F] [--index] [--types COLUMN=TYPE ...]
                                          (a table or a file; the source added with --read-only false)

        Every subcommand takes ``--help``; ``%datasource add --type TYPE --help`` lists the
        options of a source type (``--host``, ``--read-only true|false``...).

        Secrets (passwords, keys, tokens, connection strings) never go in the line, which
        IPython keeps in its history and Jupyter in the notebook. Read one from the
        environment with ``--password-env VAR`` (or ``--password env:VAR``), type it in a
        hidden prompt with ``--prompt password``, or use the form. A literal secret is
        refused, and the line is removed from the input history.

        A final ``;`` shows no output, as in IPython (``%datasource read ID a.csv -o df;``).

        Example::

          %datasource add warehouse --type postgresql --host db.internal --dbname sales \\
              --user analyst --password-env PGPASSWORD
        """
        command, silenced = without_final_semicolon(line)
        result = self._guarded(
            line, lambda: self._datasource(command), lambda: self._datasource_interrupted(command)
        )
        return None if silenced else result

    def _datasource(self, line: str) -> Any:
        scanned = split_line(line, strict=False)
        subcommand = scanned[0] if scanned else ""
        if subcommand not in _TYPED_SCAN:
            self._refuse_literal_secrets(scanned, ())
        try:
            words = split_line(line)
        except UsageError:
            self._refuse_literal_secrets(scanned, ())
            raise
        if subcommand in ("", "-h", "--help", "help"):
            print(self._help_text())
            return None
        handler = self._handlers().get(subcommand)
        if handler is None:
            raise UsageError(
                f"%datasource: unknown subcommand {quoted(subcommand)}; use one of: {', '.join(SUBCOMMANDS)}"
            )
        return handler(words[1:])

    def _handlers(self) -> dict[str, Callable[[list[str]], Any]]:
        return {
            "add": self._add,
            "list": lambda words: saved.list_sources(self, words),
            "info": self._info,
            "test": self._test,
            "update": self._update,
            "remove": self._remove,
            "ls": self._ls,
            "read": self._read,
            "tables": self._tables,
            "columns": self._columns,
            "cache": self._cache,
            "browse": self._browse,
            "save": lambda words: saved.save_sources(self, words),
            "load": lambda words: saved.load_sources(self, words),
            "forget": lambda words: saved.forget_source(self, words),
            "write": lambda words: write_variable(self.session, getattr(self.shell, "user_ns", None), words),
        }

    def _help_text(self) -> str:
        doc = type(self).datasource.__doc__ or ""
        return "\n".join(line.removeprefix("        ") for line in doc.splitlines())

    def _datasource_interrupted(self, line: str) -> str:
        words = line.split(maxsplit=2)
        subcommand = words[0] if words else ""
        where = f"{words[1]}: " if len(words) > 1 and not words[1].startswith("-") else ""
        if subcommand == "write":  # before the write began (a write that began says what it left)
            return f"{where}interrupted; nothing was written"
        return f"{where}interrupted; %datasource {subcommand} was stopped"

    # -- %%dsquery -------------------------------------------------------------------------

    @no_var_expand
    @line_cell_magic
    def dsquery(self, line: str = "", cell: str | None = None) -> Any:
        """Query a data source; the result is a DataFrame (shown, and kept in ``_``).

        ::

          %%dsquery [ID] [-o VAR] [--limit N | --no-limit] [--timeout S] [--as FORMAT] [--cache TTL]
          SELECT * FROM orders WHERE region = :region AND day >= :since

          %dsquery ID [options] SELECT ...

        For an SQL source the cell is the query. ``:name`` placeholders are bound to the
        notebook variables of that name as query parameters, never pasted into the SQL;
        ``::casts`` and text in quotes are left alone. For a file source (Azure Blob, a
        local folder) each line is a path or a glob, and the files are read into one
        DataFrame (``--format F``, ``--source-column NAME``, ``--encoding E``);
        ``%dsquery ID PATH`` reads one.

        ``-o VAR`` also assigns the DataFrame to ``VAR``. Rows are limited to
        ``DataSourceMagics.autolimit`` (100000 unless configured; see ``%config
        DataSourceMagics``); ``--limit N`` and ``--no-limit`` override it, and a note says
        when rows were cut. Without an ID, ``DataSourceMagics.default_source`` is used.
        ``--as arrow|polars`` returns a ``pyarrow.Table`` or a Polars DataFrame (default:
        ``DataSourceMagics.output``); ``--cache TTL`` reuses this session's result of the
        same query if it is younger than TTL seconds (default: ``DataSourceMagics.cache_ttl``).
        """
        return self._guarded(line, lambda: self._dsquery(line, cell), lambda: self._dsquery_interrupted(line))

    # -- completion ------------------------------------------------------------------------

    def _parser_for(self, subcommand: str, arguments: Sequence[str]) -> MagicLineParser | None:
        """The parser of a subcommand (``dsquery``: of the query magic), given the words after it."""
        if subcommand == "dsquery":
            return query_parser()
        if subcommand == "add":
            try:
                source_type = self._peek_add(arguments)[1]
            except UsageError:  # a line being typed: complete the general options
                source_type = None
            return add_parser(self.session.registry.source_types, source_type, self._specs(source_type))
        if subcommand == "update":
            source_type = self._source_type(arguments[0]) if arguments else None
            return update_parser(source_type, self._specs(source_type))
        return subcommand_parser(subcommand)
