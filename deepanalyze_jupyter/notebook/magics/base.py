"""What every magic of the package shares: its ``%config`` settings, and errors shown as one line.

:class:`MagicsBase` holds the session, the settings (``autolimit``, ``displaylimit``,
``default_source``, ``progress``) and the pieces the topics share; :meth:`MagicsBase._guarded`
runs a magic so that every error of the package shows as one ``UsageError`` line naming the
source, with secrets masked in any message.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import Magics
from IPython.display import display
from traitlets import Bool, Float, Integer, TraitError, Unicode, observe, validate
from traitlets.config import Config

from ...errors import DataSourceError, did_you_mean
from ...models import OptionSpec
from ...progress import NullProgress, Progress
from ...redaction import MASK, mask_text
from ...registry import DEFAULT_ROW_LIMIT
from ...results import OUTPUT_FORMATS, Result, check_output, result_rows
from ...results_cache import DEFAULT_RESULT_CACHE_BYTES
from ...session import Session
from ...writing import WriteInterrupted
from ..display_limit import DisplayLimit
from ..history import scrub_input_history
from ..magic_args import (
    MAX_ROW_LIMIT,
    HelpShown,
    MagicLineParser,
    add_parser,
    query_parser,
    spelled_as_flags,
    split_line,
    subcommand_parser,
)
from ..secret_input import LiteralSecretRefused, find_literal_secrets

__all__ = ["Interrupted", "MagicsBase", "SettingRefused"]

T = TypeVar("T")


class Interrupted(KeyboardInterrupt):
    """An interrupt of a magic: it stops the cell like any interrupt, and shows as one line.

    IPython, in a terminal and in a kernel, shows an exception through its
    ``_render_traceback_`` when it has one (as ipyparallel does for remote errors), so the
    user sees what the interrupt did instead of a traceback through the package.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"KeyboardInterrupt: {self}"]


class SettingRefused(BaseException):
    """A ``%config DataSourceMagics.NAME = VALUE`` with a bad value: it stops the cell, as one line.

    IPython's ``%config`` logs any ``Exception`` a configurable raises and lets the cell
    succeed; this is not an ``Exception``, so the cell fails, shown through
    ``_render_traceback_`` (as :class:`Interrupted` is) without a traceback.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"UsageError: {self}"]


class MagicsBase(Magics):
    """The session, the settings and the shared pieces of the data-source magics."""

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
    autoload = Bool(True, help="Load the saved sources at %load_ext (see %datasource load).").tag(config=True)
    output = Unicode(
        "pandas", help=f"The format of results unless --as is given: {', '.join(OUTPUT_FORMATS)}."
    ).tag(config=True)
    cache_ttl = Float(
        0.0,
        help="Seconds %%dsquery reuses this session's result of the same query unless --cache is given; "
        "0 asks the source every time.",
    ).tag(config=True)
    cache_max_mb = Integer(
        DEFAULT_RESULT_CACHE_BYTES // 2**20,
        help="MiB of query results the session keeps for --cache at most; the least recently used go first.",
    ).tag(config=True)

    def __init__(self, shell: Any, *, session: Session) -> None:
        super().__init__(shell)
        self.session = session
        self._results = DisplayLimit(lambda: self.displaylimit)
        self._progress_factory = session.registry.progress
        session.registry.progress = self._make_progress
        session.registry.results.max_bytes = self.cache_max_mb * 2**20
        if shell is not None and self.displaylimit:
            self._results.install(shell)

    def detach(self) -> None:
        """Undo what the constructor hooked into the shell (at ``%unload_ext``)."""
        self._results.uninstall()
        if self.shell is not None:
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

    def update_config(self, config: Config) -> None:
        """Apply ``%config`` settings; a bad name or value changes nothing and fails the cell in one line."""
        problem = self._unknown_setting(config)
        if problem is None:
            try:
                super().update_config(config)
            except TraitError as error:
                problem = _one_line(str(error)).rstrip(".")
            else:
                return
        raise SettingRefused(f"%config {type(self).__name__}: {problem}; nothing was changed")

    def _unknown_setting(self, config: Config) -> str | None:
        """What is wrong with a setting of this class that does not exist (a typo), if one is given."""
        name = type(self).__name__
        if name not in config:
            return None
        known = sorted(self.trait_names(config=True))
        for setting in config[name]:
            if setting not in known:
                hint = did_you_mean(setting, known) or f" (settings: {', '.join(known)})"
                return f"no setting {setting!r}{hint}"
        return None

    @observe("cache_max_mb")
    def _cache_max_mb_changed(self, change: Any) -> None:
        session = getattr(self, "session", None)  # None while the constructor applies the config
        if session is not None:
            session.registry.results.max_bytes = int(change["new"]) * 2**20

    @validate("output")
    def _validate_output(self, proposal: Any) -> str:
        try:
            return check_output(str(proposal["value"]))
        except DataSourceError as error:
            raise TraitError(str(error)) from None

    @validate("cache_ttl", "cache_max_mb")
    def _validate_not_negative(self, proposal: Any) -> Any:
        if not proposal["value"] >= 0 or proposal["value"] == math.inf:  # NaN is not >= 0
            raise TraitError(f"{proposal['trait'].name} must be 0 or more (a finite number)")
        return proposal["value"]

    @validate("autolimit", "displaylimit")
    def _validate_limit(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if not 0 <= value <= MAX_ROW_LIMIT:
            raise TraitError(
                f"{proposal['trait'].name} must be a whole number from 0 (no limit) to {MAX_ROW_LIMIT:,}"
            )
        return value

    # -- shared pieces ---------------------------------------------------------------------

    def _kind(self, source_id: str) -> str:
        registry = self.session.registry
        return registry.connector_class(registry.get_config(source_id).type).kind

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

    def _row_limit(self, args: argparse.Namespace) -> int | None:
        if args.no_limit:
            return None
        if args.limit is not None:
            return int(args.limit)
        return self.autolimit or None

    def _result_format(self, args: argparse.Namespace) -> str:
        """The format asked with ``--as``, else ``DataSourceMagics.output``."""
        return str(args.result_format or self.output)

    def _deliver(self, result: Result, args: argparse.Namespace, limit: int | None) -> Any:
        """Note a cut and a cached result, assign ``-o VAR``, and return the result for display."""
        value, info = result.value, result.info
        if info.get("cache_age") is not None:
            print(f"{info.get('source', '')}: from the cache, {info['cache_age']:.0f} s old.".lstrip(": "))
        if info.get("truncated") and limit is not None:
            if args.limit is not None:
                cause = f"the result was cut at --limit {limit}"
            else:
                cause = f"the result was cut at the autolimit of {limit:,} rows (DataSourceMagics.autolimit)"
            print(f"Showing the first {result_rows(value):,} rows; {cause}. Use --no-limit to fetch all.")
        if args.output and self.shell is not None:
            self.shell.user_ns[args.output] = value
        return self._results.remember(value) if isinstance(value, pd.DataFrame) else value

    def _make_progress(
        self, description: str, *, total_bytes: int | None, total_items: int | None, items: str = "files"
    ) -> Progress:
        if not self.progress:
            return NullProgress()
        return self._progress_factory(
            description, total_bytes=total_bytes, total_items=total_items, items=items
        )

    def _refuse_literal_secrets(
        self, words: Sequence[str], specs: Sequence[OptionSpec], *, source: str | None = None
    ) -> None:
        found = find_literal_secrets(words, specs)
        if found:
            secret_names = [spec.name for spec in specs if spec.secret]
            raise LiteralSecretRefused(found, source=source, secret_names=secret_names)

    # -- errors ----------------------------------------------------------------------------

    def _guarded(self, line: str, action: Callable[[], T], interrupted: Callable[[], str]) -> T | None:
        """Run a magic: errors of the package become one line; secrets stay out of sight.

        An interrupt becomes :class:`Interrupted`, saying what the interrupted write said it
        left (:class:`WriteInterrupted`), else what ``interrupted()`` tells. It is raised after
        the ``except`` block, so that it holds neither the interrupted work's frames nor what
        they referenced (``sys.last_traceback`` keeps the shown error).
        """
        told = ""
        try:
            return action()
        except WriteInterrupted as interrupt:
            told = self._clean(str(interrupt))
        except KeyboardInterrupt:
            pass
        except HelpShown:
            return None
        except LiteralSecretRefused as refusal:
            self._watch_refused(refusal, line)
            scrub_input_history(
                self.shell, [(found.value, found.masked) for found in refusal.found], line=line
            )
            raise UsageError(_one_line(str(refusal))) from None
        except (UsageError, DataSourceError) as error:
            raise UsageError(_one_line(self._clean(self._spelled_as_flags(str(error))))) from None
        except Exception as error:
            redacted = self._redacted(error)
            if redacted is error:
                raise
            raise redacted from None
        raise Interrupted(told or interrupted())

    def _watch_refused(self, refusal: LiteralSecretRefused, line: str) -> None:
        """Mask the refused secrets in outputs from now on, as every secret entered is.

        The line that held them stays in the frames of the error (``%debug``, ``%tb``,
        ``sys.last_traceback``); the other words of the line are its ordinary text.
        """
        values = [found.value for found in refusal.found]
        ordinary = [word for word in split_line(line, strict=False) if not any(v in word for v in values)]
        self.session.redactor.add("refused", values, ordinary=ordinary)

    def _spelled_as_flags(self, text: str) -> str:
        """``text`` with the options it names as the magics' flags (``--read-only false``).

        Messages of the package name options as the Python API takes them (``read_only=False``).
        """
        registry = self.session.registry
        parsers = [query_parser(), parser_of("write")]
        parsers += [
            add_parser(registry.source_types, source_type, self._specs(source_type))
            for source_type in registry.source_types
        ]
        flags = {flag for parser in parsers for flag in parser.flags()}
        switches = {
            flag
            for parser in parsers
            for flag in parser.flags()
            if not parser.takes_value(flag) and not parser.may_take_value(flag)
        }
        return spelled_as_flags(text, flags, switches)

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


def parser_of(subcommand: str) -> MagicLineParser:
    """The parser of a ``%datasource`` subcommand other than add and update."""
    parser = subcommand_parser(subcommand)
    if parser is None:
        raise LookupError(f"no parser for %datasource {subcommand}")
    return parser


def reader_options(args: argparse.Namespace) -> dict[str, Any]:
    """The reader options given on a magic line (only those given)."""
    return {} if args.encoding is None else {"encoding": args.encoding}


def show(widget: object) -> None:
    """Display a widget form in the cell's output."""
    display(widget)  # type: ignore[no-untyped-call]


def _one_line(text: str) -> str:
    """``text`` on one line: a message may quote words typed with line breaks in them."""
    return " ".join(text.splitlines())


def _text_of(error: BaseException) -> str:
    try:
        return f"{error}\n{error!r}"
    except Exception:
        return MASK
