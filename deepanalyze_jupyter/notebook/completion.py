"""Tab completion for the magics: what the position in the line means, and nothing else.

A matcher of IPython's completion API (version 2, ``IPython.core.completer.context_matcher``),
run before IPython's own ones, which both the terminal and ipykernel's ``complete_request``
use. On a ``%datasource`` or ``%%dsquery`` line it offers subcommands, source ids, flags,
the values of options that have a few (choices, ``true|false``, source types), local paths
for ``--path``, and a source's items from its cached listing (never a call to the source
while typing); and it suppresses every other matcher (Python names and keywords, Jedi,
other magics, files), so that ``%datasource `` offers no ``and`` or ``%save``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from IPython.core.completer import CompletionContext, SimpleCompletion, SimpleMatcherResult, context_matcher

from .magic_args import MagicLineParser, split_line

__all__ = ["MagicCompleter"]

_DATASOURCE = "datasource"
_QUERY = "dsquery"
#: A magic line of this package, maybe assigned (``x = %datasource ls files``).
_MAGIC_LINE_RE = re.compile(r"^\s*(?:[A-Za-z_][\w.]*\s*=\s*)?%{0,2}(datasource|dsquery)(?=\s)")
#: Above IPython's own matchers, so that its suppression of them wins.
_PRIORITY = 100.0


@dataclass(frozen=True)
class _Line:
    """A magic line up to the cursor: its command, the finished words, and the word being typed."""

    command: str
    words: list[str]
    current: str


class MagicCompleter:
    """Completes ``%datasource`` and ``%%dsquery`` lines from what the session holds."""

    def __init__(
        self,
        *,
        subcommands: Sequence[str],
        source_ids: Callable[[], list[str]],
        parser: Callable[[str, Sequence[str]], MagicLineParser | None],
        items: Callable[[str, str], list[str]],
    ) -> None:
        """``parser(subcommand, words)`` is the parser of a subcommand (``dsquery`` for the
        query magic) given the words typed; ``items(source_id, subcommand)`` the source's
        cached item names that the subcommand takes."""
        self._subcommands = list(subcommands)
        self._source_ids = source_ids
        self._parser = parser
        self._items = items
        self._shell: Any = None

    def __repr__(self) -> str:
        return "<MagicCompleter for %datasource and %%dsquery>"

    def install(self, shell: Any) -> None:
        """Put the matcher in front of ``shell``'s completer."""
        self._shell = shell
        shell.Completer.custom_matchers.insert(0, self.matcher)

    def uninstall(self, shell: Any) -> None:
        """Remove what :meth:`install` added."""
        matchers = shell.Completer.custom_matchers
        matchers[:] = [matcher for matcher in matchers if getattr(matcher, "__self__", None) is not self]

    @context_matcher(priority=_PRIORITY, identifier="deepanalyze_jupyter.magics")  # type: ignore[untyped-decorator]
    def matcher(self, context: CompletionContext) -> SimpleMatcherResult:
        """The matcher: on a line of the magics, the candidates and nothing from anyone else."""
        line = _magic_line(context)
        if line is None:
            return {"completions": [], "suppress": False}
        fragment = context.token
        start = len(line.current) - len(fragment)
        texts = [word[start:] for word in self._candidates(line, context) if start >= 0]
        # Nothing fits here: the word as typed (a completion that adds nothing), so that no other
        # matcher offers Python names or files in a place that takes none.
        completions = [SimpleCompletion(text, type="magic argument") for text in dict.fromkeys(texts)]
        return {
            "completions": completions or [SimpleCompletion(fragment, type="magic argument")],
            "suppress": True,
            "ordered": True,
        }

    def _candidates(self, line: _Line, context: CompletionContext) -> list[str]:
        """The words that complete ``line.current`` where it is."""
        if line.command == _QUERY:
            return self._arguments(_QUERY, line.words, line, context)
        if not line.words:
            return _starting(self._subcommands, line.current)
        subcommand, arguments = line.words[0], line.words[1:]
        if subcommand not in self._subcommands:
            return []
        return self._arguments(subcommand, arguments, line, context)

    def _arguments(
        self, subcommand: str, arguments: list[str], line: _Line, context: CompletionContext
    ) -> list[str]:
        parser = self._parser(subcommand, arguments)
        if parser is None:
            return []
        flag, value = _flag_and_value(line.current)
        if value is not None:  # --flag=VALUE
            return [f"{flag}={choice}" for choice in self._values(parser, flag, value, context)]
        pending = _pending_flag(parser, arguments)
        if pending is not None and not (parser.may_take_value(pending) and line.current.startswith("-")):
            values = self._values(parser, pending, line.current, context)
            if values or not parser.may_take_value(pending):
                return values
        if line.current.startswith("-"):
            return _starting(parser.flags(), line.current)
        return _starting(self._positional(subcommand, parser, arguments, line.current), line.current)

    def _values(
        self, parser: MagicLineParser, flag: str, typed: str, context: CompletionContext
    ) -> list[str]:
        if parser.takes_local_path(flag):
            return self._local_paths(typed, context)
        return _starting(parser.option_values(flag), typed)

    def _positional(
        self, subcommand: str, parser: MagicLineParser, arguments: list[str], typed: str
    ) -> list[str]:
        positionals = parser.positionals()
        index = len(_positionals_given(parser, arguments))
        if not positionals:
            return []
        action = positionals[min(index, len(positionals) - 1)]
        if index >= len(positionals) and action.nargs not in ("+", "*"):
            return []
        if action.choices is not None:
            return [str(choice) for choice in action.choices]
        if action.dest == "id":
            return [] if subcommand == "add" else self._source_ids()
        source_id = _source_of(parser, arguments)
        if source_id is None or source_id not in self._source_ids():
            return []
        return _next_level(self._items(source_id, subcommand), typed)

    def _local_paths(self, typed: str, context: CompletionContext) -> list[str]:
        """Files and folders on this machine, as IPython's own file matcher finds them (with
        its quoting of blanks, ``~`` expanded), as whole words."""
        completer = getattr(self._shell, "Completer", None)
        if completer is None:
            return []
        head = typed[: len(typed) - len(context.token)]
        return [head + completion.text for completion in completer.file_matcher(context)["completions"]]


def _magic_line(context: CompletionContext) -> _Line | None:
    """The magic line the cursor is on, or ``None`` when it is not one of these magics."""
    text = context.text_until_cursor
    match = _MAGIC_LINE_RE.match(text)
    if match is None or (match.group(1) == _QUERY and "%%" in match.group() and context.cursor_line):
        return None
    rest = text[match.end() :]
    words = split_line(rest, strict=False)
    current = "" if not rest or rest[-1].isspace() or not words else words.pop()
    return _Line(match.group(1), words, current)


def _starting(words: Sequence[str], typed: str) -> list[str]:
    return [word for word in words if word.startswith(typed)]


def _next_level(paths: list[str], typed: str) -> list[str]:
    """The paths that start with ``typed``, each cut after the folder that follows it."""
    found: dict[str, None] = {}
    for path in paths:
        if path.startswith(typed):
            cut = path.find("/", len(typed))
            found[path if cut < 0 else path[: cut + 1]] = None
    return list(found)


def _flag_and_value(word: str) -> tuple[str, str | None]:
    if word.startswith("--") and "=" in word:
        flag, value = word.split("=", 1)
        return flag, value
    return word, None


def _pending_flag(parser: MagicLineParser, arguments: Sequence[str]) -> str | None:
    """The flag the next word is the value of (or may be, for ``--read-only [true|false]``)."""
    if not arguments:
        return None
    last = arguments[-1]
    if last.startswith("-") and "=" not in last and (parser.takes_value(last) or parser.may_take_value(last)):
        return last
    return None


def _positionals_given(parser: MagicLineParser, arguments: Sequence[str]) -> list[str]:
    """The positional words among ``arguments`` (flags and their values left out)."""
    given: list[str] = []
    expects_value = maybe_value = False
    for word in arguments:
        if expects_value:
            expects_value = False
        elif maybe_value and not word.startswith("-"):
            maybe_value = False
        elif word.startswith("-") and len(word) > 1:
            expects_value = "=" not in word and parser.takes_value(word)
            maybe_value = "=" not in word and parser.may_take_value(word)
        else:
            maybe_value = False
            given.append(word)
    return given


def _source_of(parser: MagicLineParser, arguments: Sequence[str]) -> str | None:
    """The source id among the positional words, where the parser takes one."""
    names = [action.dest for action in parser.positionals()]
    given = _positionals_given(parser, arguments)
    index = names.index("id") if "id" in names else -1
    return given[index] if 0 <= index < len(given) else None
