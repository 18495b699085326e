"""Secrets for the magics: where they may come from, and refusing them typed in a line.

A magic line is kept in the input history and in the notebook, so a secret never goes in
it. A secret option takes ``--<name>-env VAR`` or the value ``env:VAR`` (read from the
environment), or ``--prompt <name>`` (a hidden prompt: a masked box in Jupyter, no echo in
a terminal). A literal secret, or one embedded in another value (a URI with a password,
``AccountKey=``, ``SharedAccessSignature=``, ``sig=``), is refused with
:class:`LiteralSecretRefused`. Values are read the way the libraries read them: a
connection string as libpq does (``postgresql://u@h/db?%70assword=x`` holds a password),
a URL's query with its keys percent-decoded as the storage service does (``%73ig=``).
A value given where a name is expected (``--password-env``, ``env:``, ``--prompt``,
``--unset``) that names nothing is refused too, without being repeated: it may be a
secret typed in the wrong place.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from IPython.core.error import StdinNotImplementedError, UsageError

from ..models import OptionSpec, Secret
from ..redaction import MASK, is_secret_key, mask_text
from .magic_args import OptionValues, option_flag

__all__ = [
    "ENV_PREFIX",
    "LiteralSecret",
    "LiteralSecretRefused",
    "find_literal_secrets",
    "holds_embedded_secret",
    "resolve_secrets",
]

#: A secret option's value that names an environment variable: ``--password env:PGPASSWORD``.
ENV_PREFIX = "env:"

_EXEMPT_FLAGS = ("--prompt", "--help")
#: What an environment variable's name may be (POSIX: letters, digits, ``_``).
_VARIABLE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Query keys (percent-decoded, any case) whose value is a secret: a SAS signature, tokens.
_SECRET_QUERY_KEYS = frozenset({"sig", "password", "sslpassword", "token", "secret", "api_key", "apikey"})
#: libpq parameters that hold a secret.
_CONNINFO_SECRETS = ("password", "sslpassword")


@dataclass(frozen=True)
class LiteralSecret:
    """A secret found typed in a line: the option it was given to, and the text."""

    flag: str
    value: str
    #: True when the secret sits inside a longer value (a URI, a connection string).
    embedded: bool
    #: Set when a name was expected and the value names nothing: why it was refused.
    not_a_name: str = ""

    @property
    def masked(self) -> str:
        """The value with the secret masked, as it may stay in the history.

        Only the secret of a URI or connection string is masked when what is left holds
        none; otherwise the whole value is.
        """
        if self.embedded:
            masked = mask_text(self.value)
            if not holds_embedded_secret(masked.replace(MASK, "")):
                return masked
        return MASK


class LiteralSecretRefused(UsageError):
    """A line held a secret as a literal; it was refused (and must be scrubbed)."""

    def __init__(self, found: Sequence[LiteralSecret], *, source: str | None, secret_names: Collection[str]):
        self.found = tuple(found)
        first = self.found[0]
        where = f"{source}: " if source else ""
        scrubbed = "The line was removed from the input history; delete it from the cell as well."
        if first.not_a_name:
            super().__init__(
                f"{where}refused the value of {first.flag}: {first.not_a_name}. The value is not repeated, "
                f"in case it is a secret typed in the wrong place: {_advice(first, secret_names)}. {scrubbed}"
            )
            return
        if first.embedded:
            what = (
                f"refused the value of {first.flag}: it holds a secret (a password, key, token or signature)"
            )
        else:
            what = f"refused the literal secret given to {first.flag}"
        super().__init__(
            f"{where}{what}. A magic line is kept in the input history and the notebook, so secrets "
            f"never go in it: {_advice(first, secret_names)}. {scrubbed}"
        )


def _advice(found: LiteralSecret, secret_names: Collection[str]) -> str:
    if not found.embedded:
        name = found.flag.removeprefix("--").removesuffix("-env").replace("-", "_")
        if found.flag in ("--prompt", "--unset"):
            name = sorted(secret_names)[0] if secret_names else "password"
        flag = option_flag(name)
        return (
            f"use {flag}-env VAR or {flag} {ENV_PREFIX}VAR (read from the environment), "
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
    counts; so does any value with an embedded secret (:func:`holds_embedded_secret`).
    ``env:VAR`` references are fine when ``VAR`` can be a variable's name; with ``specs``
    known, so are ``--prompt`` and ``--unset`` values that name one of its options.
    """
    plain = frozenset(spec.name for spec in specs if not spec.secret)
    secret = frozenset(spec.name for spec in specs if spec.secret)
    found: list[LiteralSecret] = []
    index = 0
    while index < len(words):
        word = words[index]
        flag, equals, inline = word.partition("=") if word.startswith("--") else ("", "", word)
        takes_name = flag and _name_check(flag, specs) is not None
        if flag and (takes_name or _names_secret(flag, secret, plain)):
            value: str | None = inline if equals else None
            if not equals and index + 1 < len(words) and not words[index + 1].startswith("--"):
                index += 1
                value = words[index]
            if value:
                found.extend(_check_value(flag, value, specs, secret_option=not takes_name))
        elif holds_embedded_secret(inline):
            previous = words[index - 1] if index and words[index - 1].startswith("--") else "the line"
            found.append(LiteralSecret(flag or previous.split("=", 1)[0], inline, embedded=True))
        index += 1
    return found


def _check_value(
    flag: str, value: str, specs: Sequence[OptionSpec], *, secret_option: bool
) -> list[LiteralSecret]:
    """What is wrong with ``value`` given to ``flag``, an option that takes a secret or a name."""
    if secret_option:
        if not value.startswith(ENV_PREFIX):
            return [LiteralSecret(flag, value, embedded=False)]
        variable = value.removeprefix(ENV_PREFIX)
        if _VARIABLE_NAME_RE.fullmatch(variable.strip()):
            return []
        return [LiteralSecret(flag, variable, embedded=False, not_a_name=_NOT_A_VARIABLE)]
    check = _name_check(flag, specs)
    if check is None or check[0](value):
        return []
    return [LiteralSecret(flag, value, embedded=False, not_a_name=check[1])]


_NOT_A_VARIABLE = "it is not the name of an environment variable"


def _name_check(flag: str, specs: Sequence[OptionSpec]) -> tuple[Callable[[str], bool], str] | None:
    """For an option that takes a name: how to tell a valid one, and what it should be."""
    secret_names = sorted(spec.name for spec in specs if spec.secret)
    if flag.endswith("-env") and flag != "--env":
        return (lambda value: _VARIABLE_NAME_RE.fullmatch(value.strip()) is not None), _NOT_A_VARIABLE
    if flag == "--prompt" and secret_names:
        names = ", ".join(secret_names)
        return (lambda value: value in secret_names), f"it is not the name of a secret option ({names})"
    if flag == "--unset" and specs:
        options = {spec.name for spec in specs}
        return (lambda value: value in options), "it is not the name of an option of this source type"
    return None


def holds_embedded_secret(value: str) -> bool:
    """Whether ``value`` holds a secret inside it, read as the libraries that take it read it.

    A libpq connection string (URI or ``key=value``) with a password, however it is
    spelled (``%70assword=``); an Azure connection string's ``AccountKey=`` or
    ``SharedAccessSignature=``; a URL query with a ``sig=`` (SAS) or a token, its keys
    percent-decoded; and whatever :func:`~deepanalyze_jupyter.redaction.mask_text` masks.
    """
    if not value or ("=" not in value and "@" not in value):
        return False
    return mask_text(value) != value or _query_holds_secret(value) or _conninfo_holds_secret(value)


def _query_holds_secret(value: str) -> bool:
    query = value.partition("?")[2] or value
    return any(
        key.strip().lower() in _SECRET_QUERY_KEYS and item.strip()
        for key, item in parse_qsl(query, keep_blank_values=True)
    )


def _conninfo_holds_secret(value: str) -> bool:
    """Whether libpq reads a password out of ``value`` (psycopg's ``conninfo_to_dict``)."""
    if "=" not in value and "://" not in value:
        return False
    # libpq is loaded only when a line may hold a DSN.
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(value)
    except (psycopg.Error, ValueError):
        return False
    return any(params.get(name) for name in _CONNINFO_SECRETS)


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

    secret_names = list(titles)
    for name, text in values.secret_values.items():
        if not text.startswith(ENV_PREFIX):  # refused before; never reached with a literal
            raise UsageError(f"{source}: {option_flag(name)} only takes {ENV_PREFIX}VAR")
        variable = text.removeprefix(ENV_PREFIX)
        take(name, _from_environment(variable, option_flag(name), environ, source, secret_names))
    for name, variable in values.secret_env.items():
        take(name, _from_environment(variable, f"{option_flag(name)}-env", environ, source, secret_names))
    for name in values.prompts:
        take(name, _prompt(f"{titles.get(name, name)} for {source}: ", name, source, ask))
    return secrets


def _from_environment(
    variable: str, flag: str, environ: Mapping[str, str], source: str, secret_names: Collection[str]
) -> Secret:
    """The secret in environment variable ``variable``; the name is never repeated in an error."""
    name = variable.strip()
    if not name:
        raise UsageError(f"{source}: {flag} needs the name of an environment variable")
    value = environ.get(name)
    if not value:
        problem = "is not set in the kernel's environment" if value is None else "is empty"
        refused = LiteralSecret(
            flag, variable, embedded=False, not_a_name=f"that environment variable {problem}"
        )
        raise LiteralSecretRefused([refused], source=source, secret_names=secret_names)
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
