"""IPython magics: ``%datasource`` manages and browses sources, ``%%dsquery`` queries them.

The magics are glue: they parse the line, read secrets from the environment or a hidden
prompt, and call the shell's :class:`~deepanalyze_jupyter.session.Session`. Every error of
the package shows as one ``UsageError`` line naming the source; a literal secret in a line
is refused and scrubbed from the input history.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class, no_var_expand
from IPython.display import display
from traitlets import Bool, Integer, TraitError, Unicode, observe, validate

from ..errors import DataSourceError, DataSourceExists
from ..frames import is_truncated
from ..models import OptionSpec, validate_source_id
from ..progress import NullProgress, Progress
from ..redaction import MASK, mask_text, sanitize
from ..registry import DEFAULT_ROW_LIMIT
from ..session import Session
from ..sqlparams import find_parameters
from .completion import MagicCompleter
from .display_limit import DisplayLimit
from .history import scrub_input_history
from .magic_args import (
    MAX_ROW_LIMIT,
    HelpShown,
    MagicLineParser,
    OptionValues,
    add_parser,
    peek_parser,
    query_parser,
    split_line,
    subcommand_parser,
    update_parser,
)
from .secret_input import LiteralSecretRefused, find_literal_secrets, resolve_secrets

__all__ = ["DataSourceMagics"]

T = TypeVar("T")

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
)
#: Subcommands that look for literal secrets knowing the secret options of the source type.
_TYPED_SCAN = frozenset({"add", "update"})


class Interrupted(KeyboardInterrupt):
    """An interrupt of a magic: it stops the cell like any interrupt, and shows as one line.

    IPython, in a terminal and in a kernel, shows an exception through its
    ``_render_traceback_`` when it has one (as ipyparallel does for remote errors), so the
    user sees what the interrupt did instead of a traceback through the package.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"KeyboardInterrupt: {self}"]


@magics_class
class DataSourceMagics(Magics):
    """Magics over the shell's data-source session (configurable with ``%config``)."""

    autolimit = Integer(
        DEFAULT_ROW_LIMIT,
        help="Rows a query or read returns at most unless --limit/--no-limit is given; 0 means no limit.",
    ).tag(config=True)
    displaylimit = Integer(
        0,
        help="Rows shown when a result of the magics is displayed; 0 leaves it to pandas' display options.",
    ).tag(config=True)
    default_source = Unicode("", help="The source %%dsquery uses when its line names none.").tag(config=True)
    progress = Bool(True, help="Show progress bars for long reads and queries.").tag(config=True)

    def __init__(self, shell: Any, *, session: Session) -> None:
        super().__init__(shell)
        self.session = session
        self._results = DisplayLimit(lambda: self.displaylimit)
        self._progress_factory = session.registry.progress
        session.registry.progress = self._make_progress
        self._completer = MagicCompleter(
            subcommands=SUBCOMMANDS,
            source_ids=lambda: self.session.registry.source_ids,
            source_types=lambda: self.session.registry.source_types,
            flags=self._flags,
        )
        if shell is not None:
            self._completer.install(shell)
            if self.displaylimit:
                self._results.install(shell)

    def detach(self) -> None:
        """Undo what the constructor hooked into the shell (at ``%unload_ext``)."""
        self._results.uninstall()
        if self.shell is not None:
            self._completer.uninstall(self.shell)
            configurables = getattr(self.shell, "configurables", [])
            if self in configurables:
                configurables.remove(self)
        self.session.registry.progress = self._progress_factory

    @observe("displaylimit")
    def _displaylimit_changed(self, change: Any) -> None:
        """Format results only while a limit is set, so pandas' own display stays untouched."""
        if self.shell is None:
            return
        if change["new"]:
            self._results.install(self.shell)
        else:
            self._results.uninstall()

    @validate("autolimit", "displaylimit")
    def _validate_limit(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if not 0 <= value <= MAX_ROW_LIMIT:
            raise TraitError(
                f"{proposal['trait'].name} must be a whole number from 0 (no limit) to {MAX_ROW_LIMIT:,}"
            )
        return value

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
                                          [--limit N | --no-limit]
          %datasource tables ID [SCHEMA] [--refresh]
          %datasource columns ID TABLE [--refresh]
          %datasource cache clear [ID]
          %datasource browse [ID]         (shows the browse form)

        Every subcommand takes ``--help``; ``%datasource add --type TYPE --help`` lists the
        options of a source type (``--host``, ``--read-only true|false``...).

        Secrets (passwords, keys, tokens, connection strings) never go in the line, which
        IPython keeps in its history and Jupyter in the notebook. Read one from the
        environment with ``--password-env VAR`` (or ``--password env:VAR``), type it in a
        hidden prompt with ``--prompt password``, or use the form. A literal secret is
        refused, and the line is removed from the input history.

        Example::

          %datasource add warehouse --type postgresql --host db.internal --dbname sales \\
              --user analyst --password-env PGPASSWORD
        """
        return self._guarded(line, lambda: self._datasource(line), lambda: self._datasource_interrupted(line))

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
                f"%datasource: unknown subcommand {subcommand[:40]!r}; use one of: {', '.join(SUBCOMMANDS)}"
            )
        return handler(words[1:])

    def _handlers(self) -> dict[str, Callable[[list[str]], Any]]:
        return {
            "add": self._add,
            "list": self._list,
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
        }

    def _help_text(self) -> str:
        doc = type(self).datasource.__doc__ or ""
        return "\n".join(line.removeprefix("        ") for line in doc.splitlines())

    # -- add / update ----------------------------------------------------------------------

    def _add(self, words: list[str]) -> None:
        if not words:
            from .widgets import add_form

            _show(add_form(self.session))
            return
        source_id, source_type = self._peek_add(words)
        specs = self._specs(source_type)
        self._refuse_literal_secrets(words, specs, source=source_id)
        registry = self.session.registry
        if not _asks_for_help(words):
            if source_type is None:
                known = ", ".join(registry.source_types)
                raise UsageError(f"%datasource add: missing --type; known types: {known}")
            registry.connector_class(source_type)  # an unknown type, before its options
        args = add_parser(registry.source_types, source_type, specs).parse_words(words)
        if args.id is None:
            raise UsageError("%datasource add: missing the source id (%datasource add ID --type TYPE ...)")
        validate_source_id(args.id)
        if registry.exists(args.id):  # before any prompt for a secret
            raise DataSourceExists("a data source with this id is already registered", source=args.id)
        values = OptionValues.from_namespace(args)
        values.split_secrets(specs)
        secrets = resolve_secrets(specs, values, source=args.id)
        self.session.add(
            args.id, args.type, name=args.name or "", secrets=secrets, test=not args.no_test, **values.options
        )
        print(f"Added data source {args.id!r} ({args.type}): {_tested(args.no_test)}.")

    def _peek_add(self, words: Sequence[str]) -> tuple[str | None, str | None]:
        """The id and type of an add line, read before the type's options are known."""
        args, _ = peek_parser().parse_known_args(list(words))
        source_id = args.id if args.id and not args.id.startswith("-") else None
        return source_id, args.type

    def _update(self, words: list[str]) -> None:
        source_id = words[0] if words and not words[0].startswith("-") else None
        source_type = self._source_type(source_id) if source_id else None
        specs = self._specs(source_type)
        self._refuse_literal_secrets(words, specs, source=source_id)
        if source_id and source_type is None and not _asks_for_help(words):
            self.session.registry.get_config(source_id)  # an unknown id, before its options
        args = update_parser(source_type, specs).parse_words(words)
        values = OptionValues.from_namespace(args)
        values.split_secrets(specs)
        secrets: dict[str, Any] = dict(resolve_secrets(specs, values, source=args.id))
        options: dict[str, Any] = dict(values.options)
        secret_names = {spec.name for spec in specs if spec.secret}
        for name in args.unset:
            if name in secret_names:
                secrets[name] = ""
            else:
                options[name] = None
        if not (options or secrets or args.name is not None):
            raise UsageError(f"{args.id}: nothing to update; give the options to change (see --help)")
        self.session.update(args.id, name=args.name, secrets=secrets, test=not args.no_test, **options)
        print(f"Updated data source {args.id!r}: {_tested(args.no_test)}.")

    def _specs(self, source_type: str | None) -> tuple[OptionSpec, ...]:
        if not source_type:
            return ()
        try:
            return tuple(self.session.registry.connector_class(source_type).option_specs)
        except DataSourceError:
            return ()

    def _source_type(self, source_id: str) -> str | None:
        try:
            return self.session.registry.get_config(source_id).type
        except DataSourceError:
            return None

    # -- inspecting and reading ------------------------------------------------------------

    def _list(self, words: list[str]) -> pd.DataFrame:
        _parser("list").parse_words(words)
        return self.session.sources()

    def _info(self, words: list[str]) -> pd.DataFrame:
        source_id = _parser("info").parse_words(words).id
        registry = self.session.registry
        config = registry.get_config(source_id)
        rows = [
            ("id", config.id),
            ("type", config.type),
            ("name", config.display_name),
            ("status", registry.status(source_id)),
            ("last success", _when(registry.last_success(source_id))),
            ("created", config.created_at.isoformat(timespec="seconds")),
        ]
        rows += [(f"option {key}", str(value)) for key, value in sanitize(dict(config.options)).items()]
        rows += [(f"secret {key}", MASK) for key in sorted(config.secrets)]
        return pd.DataFrame(rows, columns=["field", "value"]).astype("string")

    def _test(self, words: list[str]) -> None:
        source_id = _parser("test").parse_words(words).id
        print(f"{source_id}: OK: {self.session.test(source_id)}")

    def _remove(self, words: list[str]) -> None:
        source_id = _parser("remove").parse_words(words).id
        self.session.remove(source_id)
        print(f"Removed data source {source_id!r}.")

    def _ls(self, words: list[str]) -> pd.DataFrame:
        args = _parser("ls").parse_words(words)
        return self.session.list_items(
            args.id, args.prefix, recursive=args.recursive, limit=args.limit, refresh=args.refresh
        )

    def _tables(self, words: list[str]) -> pd.DataFrame:
        args = _parser("tables").parse_words(words)
        if self._kind(args.id) != "sql":
            raise UsageError(f"{args.id}: a file source has no tables; list it with %datasource ls {args.id}")
        # Without a schema, every table of every schema (a folder-style listing would show schemas).
        return self.session.list_items(
            args.id, args.schema, recursive=args.schema is None, refresh=args.refresh
        )

    def _columns(self, words: list[str]) -> pd.DataFrame:
        args = _parser("columns").parse_words(words)
        return self.session.describe(args.id, args.table, refresh=args.refresh)

    def _read(self, words: list[str]) -> pd.DataFrame:
        args = _parser("read").parse_words(words)
        limit = self._row_limit(args)
        frame = self.session.read(
            args.id,
            args.paths,
            format=args.format,
            limit=limit,
            source_column=args.source_column,
            **_reader_options(args),
        )
        return self._deliver(frame, args, limit)

    def _cache(self, words: list[str]) -> None:
        args = _parser("cache").parse_words(words)
        dropped = self.session.registry.clear_cache(args.id)
        whose = f"of {args.id!r}" if args.id else "of every source"
        print(f"Cleared {dropped} cached item(s) {whose}.")

    def _browse(self, words: list[str]) -> None:
        args = _parser("browse").parse_words(words)
        if args.id is not None:
            self.session.registry.get_config(args.id)  # reports an unknown id
        from .widgets import browse_form

        _show(browse_form(self.session, args.id))

    # -- %%dsquery -------------------------------------------------------------------------

    @no_var_expand
    @line_cell_magic
    def dsquery(self, line: str = "", cell: str | None = None) -> Any:
        """Query a data source; the result is a DataFrame (shown, and kept in ``_``).

        ::

          %%dsquery [ID] [-o VAR] [--limit N | --no-limit] [--timeout S]
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
        """
        return self._guarded(line, lambda: self._dsquery(line, cell), lambda: self._dsquery_interrupted(line))

    def _dsquery(self, line: str, cell: str | None) -> pd.DataFrame:
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
        limit = self._row_limit(args)
        if self._kind(source_id) == "sql":
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

    def _run_query(
        self, source_id: str, body: str, args: argparse.Namespace, limit: int | None
    ) -> pd.DataFrame:
        if args.format is not None or args.source_column is not None or args.encoding is not None:
            raise UsageError(
                f"{source_id}: --format, --source-column and --encoding apply to file sources only"
            )
        sql = body.strip()
        if not sql:
            raise UsageError(
                f"{source_id}: the query is empty; write the SQL in the cell, below the %%dsquery line"
            )
        params = self._parameters(source_id, sql)
        options = {"numeric_as_float": True} if args.numeric_as_float else {}
        return self.session.query(
            source_id, sql, params or None, limit=limit, timeout=args.timeout, **options
        )

    def _read_paths(
        self, source_id: str, body: str, args: argparse.Namespace, limit: int | None
    ) -> pd.DataFrame:
        for flag, given in (
            ("--timeout", args.timeout is not None),
            ("--numeric-as-float", args.numeric_as_float),
        ):
            if given:
                raise UsageError(f"{source_id}: {flag} applies to SQL sources only")
        paths = [text.strip() for text in body.splitlines()]
        paths = [path for path in paths if path and not path.startswith("#")]
        if not paths:
            raise UsageError(
                f"{source_id}: no path given; write one path or glob per line, below the %%dsquery line"
            )
        return self.session.read(
            source_id,
            paths,
            format=args.format,
            limit=limit,
            source_column=args.source_column,
            **_reader_options(args),
        )

    def _parameters(self, source_id: str, sql: str) -> dict[str, Any]:
        """The values of the query's ``:name`` placeholders, from the user's namespace."""
        namespace = self.shell.user_ns if self.shell is not None else {}
        values: dict[str, Any] = {}
        for name in dict.fromkeys(find_parameters(sql)):
            if name not in namespace:
                raise UsageError(f"{source_id}: the query uses :{name}, but no variable {name!r} is defined")
            values[name] = namespace[name]
        return values

    # -- shared pieces ---------------------------------------------------------------------

    def _kind(self, source_id: str) -> str:
        registry = self.session.registry
        return registry.connector_class(registry.get_config(source_id).type).kind

    def _row_limit(self, args: argparse.Namespace) -> int | None:
        if args.no_limit:
            return None
        if args.limit is not None:
            return int(args.limit)
        return self.autolimit or None

    def _deliver(self, frame: pd.DataFrame, args: argparse.Namespace, limit: int | None) -> pd.DataFrame:
        """Note a cut, assign ``-o VAR``, and return the frame for display."""
        if is_truncated(frame) and limit is not None:
            if args.limit is not None:
                cause = f"the result was cut at --limit {limit}"
            else:
                cause = f"the result was cut at the autolimit of {limit:,} rows (DataSourceMagics.autolimit)"
            print(f"Showing the first {len(frame):,} rows; {cause}. Use --no-limit to fetch all.")
        if args.output and self.shell is not None:
            self.shell.user_ns[args.output] = frame
        return self._results.remember(frame)

    def _make_progress(
        self, description: str, *, total_bytes: int | None, total_items: int | None
    ) -> Progress:
        if not self.progress:
            return NullProgress()
        return self._progress_factory(description, total_bytes=total_bytes, total_items=total_items)

    def _flags(self, subcommand: str, arguments: Sequence[str]) -> list[str]:
        """The option flags of a subcommand, for completion."""
        if subcommand == "add":
            try:
                source_type = self._peek_add(arguments[1:])[1]
            except UsageError:  # a line being typed: complete the general options
                source_type = None
            return add_parser(
                self.session.registry.source_types, source_type, self._specs(source_type)
            ).flags()
        if subcommand == "update":
            source_type = self._source_type(arguments[1]) if len(arguments) > 1 else None
            return update_parser(source_type, self._specs(source_type)).flags()
        parser = subcommand_parser(subcommand)
        return parser.flags() if parser is not None else []

    def _refuse_literal_secrets(
        self, words: Sequence[str], specs: Sequence[OptionSpec], *, source: str | None = None
    ) -> None:
        found = find_literal_secrets(words, specs)
        if found:
            secret_names = [spec.name for spec in specs if spec.secret]
            raise LiteralSecretRefused(found, source=source, secret_names=secret_names)

    def _guarded(self, line: str, action: Callable[[], T], interrupted: Callable[[], str]) -> T | None:
        """Run a magic: errors of the package become one line; secrets stay out of sight.

        An interrupt becomes :class:`Interrupted`, saying what ``interrupted()`` tells. It is
        raised after the ``except`` block, so that it holds neither the interrupted work's
        frames nor what they referenced (``sys.last_traceback`` keeps the shown error).
        """
        try:
            return action()
        except KeyboardInterrupt:
            pass
        except HelpShown:
            return None
        except LiteralSecretRefused as refusal:
            scrub_input_history(
                self.shell, [(found.value, found.masked) for found in refusal.found], line=line
            )
            raise UsageError(_one_line(str(refusal))) from None
        except (UsageError, DataSourceError) as error:
            raise UsageError(_one_line(self._clean(str(error)))) from None
        except Exception as error:
            redacted = self._redacted(error)
            if redacted is error:
                raise
            raise redacted from None
        raise Interrupted(interrupted())

    def _datasource_interrupted(self, line: str) -> str:
        words = line.split(maxsplit=2)
        subcommand = words[0] if words else ""
        where = f"{words[1]}: " if len(words) > 1 and not words[1].startswith("-") else ""
        return f"{where}interrupted; %datasource {subcommand} was stopped"

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

    def _clean(self, text: str) -> str:
        return self.session.redactor.redact(mask_text(text))

    def _redacted(self, error: Exception) -> Exception:
        """``error`` with secrets masked in its message and in the errors chained to it."""
        chain: list[BaseException] = []
        current: BaseException | None = error
        while current is not None and current not in chain:
            chain.append(current)
            current = current.__cause__ or current.__context__
        for link in chain:
            link.args = tuple(self._clean(arg) if isinstance(arg, str) else arg for arg in link.args)
        if all(self._clean(_text_of(link)) == _text_of(link) for link in chain):
            return error
        replacement = RuntimeError(f"{type(error).__name__}: {self._clean(str(error))}")
        return replacement.with_traceback(error.__traceback__)


def _parser(subcommand: str) -> MagicLineParser:
    parser = subcommand_parser(subcommand)
    if parser is None:
        raise LookupError(f"no parser for %datasource {subcommand}")
    return parser


def _reader_options(args: argparse.Namespace) -> dict[str, Any]:
    """The reader options given on a magic line (only those given)."""
    return {} if args.encoding is None else {"encoding": args.encoding}


def _when(moment: datetime | None) -> str:
    """A moment to the second, or ``never``."""
    return "never" if moment is None else moment.isoformat(timespec="seconds")


def _asks_for_help(words: Sequence[str]) -> bool:
    return "-h" in words or "--help" in words


def _show(widget: object) -> None:
    display(widget)  # type: ignore[no-untyped-call]


def _tested(skipped: bool) -> str:
    return "not tested (--no-test)" if skipped else "connected"


def _one_line(text: str) -> str:
    """``text`` on one line: a message may quote words typed with line breaks in them."""
    return " ".join(text.splitlines())


def _text_of(error: BaseException) -> str:
    try:
        return f"{error}\n{error!r}"
    except Exception:
        return MASK
