"""Secrets for the magics: where they may come from, and refusing them typed in a line.

A magic line is kept in the input history and in the notebook, so a secret never goes in
it. A secret option takes ``--<name>-env VAR`` or the value ``env:VAR`` (read from the
environment), or ``--prompt <name>`` (a hidden prompt: a masked box in Jupyter, no echo in
a terminal). A literal secret, or one embedded in another value (a URI with a password,
``AccountKey=``, ``SharedAccessSignature=``, ``sig=``), is refused with
:class:`LiteralSecretRefused`.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from IPython.core.error import StdinNotImplementedError, UsageError

from .magic_args import OptionValues, option_flag
from .models import OptionSpec, Secret
from .redaction import MASK, is_secret_key, mask_text

__all__ = ["ENV_PREFIX", "LiteralSecret", "LiteralSecretRefused", "find_literal_secrets", "resolve_secrets"]

#: A secret option's value that names an environment variable: ``--password env:PGPASSWORD``.
ENV_PREFIX = "env:"

_EXEMPT_FLAGS = ("--prompt", "--help")


@dataclass(frozen=True)
class LiteralSecret:
    """A secret found typed in a line: the option it was given to, and the text."""

    flag: str
    value: str
    #: True when the secret sits inside a longer value (a URI, a connection string).
    embedded: bool

    @property
    def masked(self) -> str:
        """The value with the secret masked, as it may stay in the history."""
        return mask_text(self.value) if self.embedded else MASK


class LiteralSecretRefused(UsageError):
    """A line held a secret as a literal; it was refused (and must be scrubbed)."""

    def __init__(self, found: Sequence[LiteralSecret], *, source: str | None, secret_names: Collection[str]):
        self.found = tuple(found)
        first = self.found[0]
        where = f"{source}: " if source else ""
        if first.embedded:
            what = (
                f"refused the value of {first.flag}: it holds a secret (a password, key, token or signature)"
            )
        else:
            what = f"refused the literal secret given to {first.flag}"
        super().__init__(
            f"{where}{what}. A magic line is kept in the input history and the notebook, so secrets "
            f"never go in it: {_advice(first, secret_names)}. The line was removed from the input history; "
            "delete it from the cell as well."
        )


def _advice(found: LiteralSecret, secret_names: Collection[str]) -> str:
    if not found.embedded:
        name = found.flag.removeprefix("--").replace("-", "_")
        return (
            f"use {found.flag}-env VAR or {found.flag} {ENV_PREFIX}VAR (read from the environment), "
            f"--prompt {name} (a hidden prompt), or the form (%datasource add with no arguments)"
        )
    names = sorted(secret_names) or ["password"]
    flags = " or ".join(f"{option_flag(name)}-env VAR" for name in names)
    return (
        f"leave the secret out of that value and give it through its own option: {flags}, "
        f"--prompt {names[0]}, or the form (%datasource add with no arguments)"
    )


def find_literal_secrets(words: Sequence[str], specs: Sequence[OptionSpec] = ()) -> list[LiteralSecret]:
    """Find the secrets typed as literals in the words of a line.

    A value given to a secret option of ``specs``, or to an option whose name sounds
    secret (``--password``, ``--sas-token``...) and is not a plain option of ``specs``,
    counts; so does any value with an embedded secret. ``env:VAR`` references are fine.
    """
    plain = frozenset(spec.name for spec in specs if not spec.secret)
    secret = frozenset(spec.name for spec in specs if spec.secret)
    found: list[LiteralSecret] = []
    index = 0
    while index < len(words):
        word = words[index]
        flag, equals, inline = word.partition("=") if word.startswith("--") else ("", "", word)
        has_value = bool(equals)
        if flag and _names_secret(flag, secret, plain):
            value = inline if has_value else None
            if not has_value and index + 1 < len(words) and not words[index + 1].startswith("--"):
                index += 1
                value = words[index]
            if value and not value.startswith(ENV_PREFIX):
                found.append(LiteralSecret(flag, value, embedded=False))
        elif mask_text(inline) != inline:
            previous = words[index - 1] if index and words[index - 1].startswith("--") else "the line"
            found.append(LiteralSecret(flag or previous.split("=", 1)[0], inline, embedded=True))
        index += 1
    return found


def _names_secret(flag: str, secret: Collection[str], plain: Collection[str]) -> bool:
    if flag in _EXEMPT_FLAGS or flag.endswith("-env"):
        return False
    name = flag[2:].replace("-", "_")
    return name in secret or (name not in plain and is_secret_key(name))


def resolve_secrets(
    specs: Sequence[OptionSpec],
    values: OptionValues,
    *,
    source: str,
    environ: Mapping[str, str] | None = None,
    ask: Callable[[str], str] | None = None,
) -> dict[str, Secret]:
    """Read the secrets a line refers to: from the environment, or from a hidden prompt."""
    environ = os.environ if environ is None else environ
    titles = {spec.name: spec.title for spec in specs if spec.secret}
    secrets: dict[str, Secret] = {}

    def take(name: str, secret: Secret) -> None:
        if name in secrets:
            raise UsageError(
                f"{source}: {option_flag(name)} was given more than once "
                f"(as {option_flag(name)}, {option_flag(name)}-env or --prompt {name}); give it once"
            )
        secrets[name] = secret

    for name, text in values.secret_values.items():
        if not text.startswith(ENV_PREFIX):  # refused before; never reached with a literal
            raise UsageError(f"{source}: {option_flag(name)} only takes {ENV_PREFIX}VAR")
        take(name, _from_environment(text.removeprefix(ENV_PREFIX), option_flag(name), environ, source))
    for name, variable in values.secret_env.items():
        take(name, _from_environment(variable, f"{option_flag(name)}-env", environ, source))
    for name in values.prompts:
        take(name, _prompt(f"{titles.get(name, name)} for {source}: ", name, source, ask))
    return secrets


def _from_environment(variable: str, flag: str, environ: Mapping[str, str], source: str) -> Secret:
    variable = variable.strip()
    if not variable:
        raise UsageError(f"{source}: {flag} needs the name of an environment variable")
    value = environ.get(variable)
    if value is None:
        raise UsageError(f"{source}: environment variable {variable} (for {flag}) is not set")
    if not value:
        raise UsageError(f"{source}: environment variable {variable} (for {flag}) is empty")
    return Secret(value)


def _prompt(prompt: str, name: str, source: str, ask: Callable[[str], str] | None) -> Secret:
    # getpass is looked up at call time: ipykernel replaces it while a cell runs.
    reader = ask or getpass.getpass
    try:
        value = reader(prompt)
    except (StdinNotImplementedError, EOFError):
        raise UsageError(
            f"{source}: cannot prompt for {name} here (this front end takes no input); "
            f"use {option_flag(name)}-env VAR instead"
        ) from None
    if not value:
        raise UsageError(f"{source}: no {name} was entered")
    return Secret(value)
