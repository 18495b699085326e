"""Tab completion for the magics: subcommands, source ids, source types and option flags.

It plugs into IPython's ``complete_command`` hook, which both the terminal and
ipykernel's completion requests consult, and is removed again when the extension unloads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from IPython.core.error import TryNext

__all__ = ["MagicCompleter"]

_HOOK = "complete_command"
_DATASOURCE = "%datasource"
_QUERY_COMMANDS = ("%dsquery", "%%dsquery")
#: Subcommands whose first argument is a source id.
_TAKES_SOURCE = frozenset({"info", "test", "remove", "update", "ls", "read", "tables", "columns", "browse"})


class MagicCompleter:
    """Completes ``%datasource`` and ``%%dsquery`` lines from what the session holds."""

    def __init__(
        self,
        *,
        subcommands: Sequence[str],
        source_ids: Callable[[], list[str]],
        source_types: Callable[[], list[str]],
        flags: Callable[[str, Sequence[str]], list[str]],
    ) -> None:
        self._subcommands = list(subcommands)
        self._source_ids = source_ids
        self._source_types = source_types
        self._flags = flags

    def __repr__(self) -> str:
        return f"<MagicCompleter for {_DATASOURCE} and {'/'.join(_QUERY_COMMANDS)}>"

    def install(self, shell: Any) -> None:
        """Register with ``shell``'s completion hook."""
        for key in (_DATASOURCE, *_QUERY_COMMANDS):
            shell.set_hook(_HOOK, self, str_key=key)

    def uninstall(self, shell: Any) -> None:
        """Remove what :meth:`install` registered."""
        dispatcher = getattr(shell, "strdispatchers", {}).get(_HOOK)
        for key in (_DATASOURCE, *_QUERY_COMMANDS):
            chain = getattr(dispatcher, "strs", {}).get(key)
            if chain is not None:
                chain.chain[:] = [
                    entry for entry in chain.chain if getattr(entry[1], "__func__", None) is not self
                ]

    def __call__(self, shell: Any, event: Any) -> list[str]:
        """The hook: candidates for the word under the cursor (IPython filters them)."""
        candidates = self.candidates(str(event.text_until_cursor))
        if not candidates:
            raise TryNext
        return candidates

    def candidates(self, text: str) -> list[str]:
        """Candidates for the last word of ``text`` (a line up to the cursor)."""
        words = text.split()
        current = "" if not words or text[-1].isspace() else words.pop()
        if not words:
            return []
        command, arguments = words[0], words[1:]
        if command in _QUERY_COMMANDS:
            return [] if arguments or current.startswith("-") else self._source_ids()
        if command.lstrip("%") != _DATASOURCE.lstrip("%"):
            return []
        if not arguments:
            return self._subcommands
        subcommand = arguments[0]
        if arguments[-1] == "--type":
            return self._source_types()
        if current.startswith("-"):
            return self._flags(subcommand, arguments)
        if subcommand == "cache":
            return ["clear"] if len(arguments) == 1 else self._source_ids() if len(arguments) == 2 else []
        if subcommand in _TAKES_SOURCE and len(arguments) == 1:
            return self._source_ids()
        return []
