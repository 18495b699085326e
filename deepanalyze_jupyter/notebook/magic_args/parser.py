"""The argparse parser of one magic (sub)command: errors as one line, never an exit.

``--help`` prints the help and stops the magic through :class:`HelpShown`. An option that
takes one value (or a flag) is given at most once: a second ``--type`` or ``--limit`` is an
error, not a silent override. An unknown option is named with the closest known one.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from IPython.core.error import UsageError

from ...errors import did_you_mean, quoted, unknown_name

__all__ = ["HelpShown", "MagicLineParser"]


class HelpShown(Exception):
    """A parser printed its help: the magic stops there, without an error."""


class _Once(argparse.Action):
    """An action that refuses a second occurrence of its option instead of keeping the last."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        _refuse_repeat(parser, self, option_string)
        super().__call__(parser, namespace, values, option_string)


class _StoreOnce(_Once, argparse._StoreAction):
    """``store``, once."""


class _StoreTrueOnce(_Once, argparse._StoreTrueAction):
    """``store_true``, once."""


def _refuse_repeat(
    parser: argparse.ArgumentParser, action: argparse.Action, option_string: str | None
) -> None:
    if option_string is None or not isinstance(parser, MagicLineParser):
        return
    if action.dest in parser.given:
        parser.error(f"{'/'.join(action.option_strings)} was given more than once; give it once")
    parser.given.add(action.dest)


class MagicLineParser(argparse.ArgumentParser):
    """An argparse parser for one magic (sub)command that reports errors as one line."""

    def __init__(self, prog: str, description: str = "", epilog: str = "", *, add_help: bool = True) -> None:
        super().__init__(
            prog=prog,
            description=description,
            epilog=epilog,
            add_help=add_help,
            allow_abbrev=False,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        #: The destinations of the single-value options seen in the words being parsed.
        self.given: set[str] = set()
        #: The few values an option takes besides argparse ``choices`` (for completion), by destination.
        self.value_choices: dict[str, tuple[str, ...]] = {}
        #: The destinations of options whose value is a path on this machine (for completion).
        self.local_path_dests: set[str] = set()
        # Argument groups share these registries: every option added anywhere is checked.
        self.register("action", None, _StoreOnce)
        self.register("action", "store", _StoreOnce)
        self.register("action", "store_true", _StoreTrueOnce)

    def error(self, message: str) -> NoReturn:
        """Raise a :class:`UsageError` naming the command, instead of exiting."""
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        """Stop the magic after ``--help`` printed the help."""
        if status:
            self.error(message or "invalid arguments")
        raise HelpShown

    def parse_words(self, words: Sequence[str]) -> argparse.Namespace:
        """Parse ``words``; an unknown option names only the option, never its value."""
        namespace, extras = self.parse_known_args(list(words))
        if extras:
            self.error(self._describe_extras(extras))
        return namespace

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """argparse's, counting each single-value option afresh."""
        self.given = set()
        return super().parse_known_args(args, namespace)

    def flags(self) -> list[str]:
        """Every option flag of this parser (for completion)."""
        return sorted(flag for flag in self._option_string_actions if flag.startswith("--"))

    def takes_value(self, flag: str) -> bool:
        """Whether ``flag`` is one of this parser's options that is followed by a value."""
        action = self._option_string_actions.get(flag)
        return action is not None and action.nargs != 0 and action.nargs != "?"

    def may_take_value(self, flag: str) -> bool:
        """Whether ``flag`` is one of this parser's options that may be followed by a value."""
        action = self._option_string_actions.get(flag)
        return action is not None and action.nargs == "?"

    def option_values(self, flag: str) -> tuple[str, ...]:
        """The values of ``flag`` when they are a known few (choices, ``true|false``), else none."""
        action = self._option_string_actions.get(flag)
        if action is None:
            return ()
        if action.choices is not None:
            return tuple(str(choice) for choice in action.choices)
        return self.value_choices.get(action.dest, ())

    def takes_local_path(self, flag: str) -> bool:
        """Whether the value of ``flag`` is a path on this machine."""
        action = self._option_string_actions.get(flag)
        return action is not None and action.dest in self.local_path_dests

    def positionals(self) -> list[argparse.Action]:
        """The positional arguments, in order."""
        return [action for action in self._actions if not action.option_strings]

    def _describe_extras(self, extras: Sequence[str]) -> str:
        flags = [word.split("=", 1)[0] for word in extras if word.startswith("-") and len(word) > 1]
        if not flags:
            return f"unexpected argument {quoted(extras[0], 80)}"
        flag = flags[0][:80]
        return unknown_name("option", flag, quoted=False) + did_you_mean(flag, self._option_string_actions)
