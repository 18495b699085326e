"""A connector's options as flags of a magic: ``--host``, ``--read-only [true|false]``.

A secret option ``--password`` also gets ``--password-env VAR``, and ``--prompt password``
asks for it; :class:`OptionValues` collects what a parsed line gave, secrets kept apart.
"""

from __future__ import annotations

import argparse
import ast
import re
import shlex
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from ...models import OptionSpec
from .parser import MagicLineParser

__all__ = ["OptionValues", "add_option_arguments", "option_flag", "spelled_as_flags"]

_OPTION_DEST = "option:"
_ENV_DEST = "env:"
#: Options whose value is a file or folder on this machine (completed as local paths).
_LOCAL_PATH_OPTIONS = frozenset({"path", "sslrootcert", "sslcert", "sslkey"})


def option_flag(name: str) -> str:
    """The command-line flag of option ``name``: ``read_only`` -> ``--read-only``."""
    return "--" + name.replace("_", "-")


#: ``name=value`` as the Python API takes an option: a literal bool, number or quoted string.
_KEYWORD_SETTING_RE = re.compile(
    r"""(?<![\w.-])([a-z][a-z0-9_]*)=(True|False|-?\d+(?:\.\d+)?|'[^'\\\n]*'|"[^"\\\n]*")(?![\w.])"""
)
#: An option named in a message: ``option 'read_only'``.
_NAMED_OPTION_RE = re.compile(r"""(?<![\w-])option (['"])([a-z][a-z0-9_]*)\1""")


def spelled_as_flags(text: str, flags: Collection[str], switches: Collection[str] = ()) -> str:
    """``text`` with the options in ``flags`` that it names spelled as the magic takes them.

    The package's messages name options as the Python API takes them; a magic shows them as
    its flags: ``read_only=False`` -> ``--read-only false``, ``encoding='latin-1'`` ->
    ``--encoding latin-1``, ``option 'port'`` -> ``option --port``; a flag among
    ``switches`` takes no value: ``overwrite=True`` -> ``--overwrite``. Other ``x=y`` text
    (SQL, URLs) and names that are no flag of the magic are left as they are.
    """

    def setting(match: re.Match[str]) -> str:
        name, literal = match.groups()
        flag = option_flag(name)
        if flag not in flags:
            return match.group()
        value = ast.literal_eval(literal)
        if flag in switches:
            return flag if value is True else match.group()
        return f"{flag} {str(value).lower() if isinstance(value, bool) else shlex.quote(str(value))}"

    def named(match: re.Match[str]) -> str:
        flag = option_flag(match.group(2))
        return f"option {flag}" if flag in flags else match.group()

    return _NAMED_OPTION_RE.sub(named, _KEYWORD_SETTING_RE.sub(setting, text))


@dataclass
class OptionValues:
    """What a line gave for a connector's options, secrets kept apart by how they come."""

    options: dict[str, str | list[str]] = field(default_factory=dict)
    #: Values typed for secret options (only ``env:NAME`` references are accepted).
    secret_values: dict[str, str] = field(default_factory=dict)
    #: ``--<secret>-env VAR``: secret name -> environment variable.
    secret_env: dict[str, str] = field(default_factory=dict)
    #: ``--prompt NAME``: secrets to ask for.
    prompts: list[str] = field(default_factory=list)

    @classmethod
    def from_namespace(cls, namespace: argparse.Namespace) -> OptionValues:
        """Collect the values :func:`add_option_arguments` parsed into ``namespace``."""
        values = cls(prompts=list(getattr(namespace, "prompt", None) or []))
        for dest, value in vars(namespace).items():
            if value is None:
                continue
            if dest.startswith(_OPTION_DEST):
                values.options[dest.removeprefix(_OPTION_DEST)] = value
            elif dest.startswith(_ENV_DEST):
                values.secret_env[dest.removeprefix(_ENV_DEST)] = value
        return values

    def split_secrets(self, specs: Sequence[OptionSpec]) -> None:
        """Move values typed for secret options out of :attr:`options`."""
        for spec in specs:
            if spec.secret and spec.name in self.options:
                self.secret_values[spec.name] = str(self.options.pop(spec.name))


def add_option_arguments(parser: MagicLineParser, title: str, specs: Sequence[OptionSpec]) -> None:
    """Add a connector's options to ``parser``, in a help section called ``title``."""
    group = parser.add_argument_group(title)
    for spec in specs:
        flag = option_flag(spec.name)
        dest = _OPTION_DEST + spec.name
        if spec.secret:
            group.add_argument(
                flag,
                dest=dest,
                metavar="env:VAR",
                help=f"{_describe(spec)}; a secret: give env:VAR, {flag}-env VAR or --prompt {spec.name}",
            )
            group.add_argument(
                f"{flag}-env",
                dest=_ENV_DEST + spec.name,
                metavar="VAR",
                help=f"read {spec.title.lower()} from environment variable VAR",
            )
        elif spec.kind is bool:
            group.add_argument(
                flag, dest=dest, nargs="?", const="true", metavar="true|false", help=_describe(spec)
            )
            parser.value_choices[dest] = ("true", "false")
        elif spec.repeatable:
            group.add_argument(
                flag, dest=dest, action="append", metavar=spec.name.upper(), help=_describe(spec)
            )
        else:
            group.add_argument(flag, dest=dest, metavar=spec.name.upper(), help=_describe(spec))
        if spec.choices:
            parser.value_choices[dest] = tuple(spec.choices)
        if spec.name in _LOCAL_PATH_OPTIONS:
            parser.local_path_dests.add(dest)
    secret_names = [spec.name for spec in specs if spec.secret]
    if secret_names:
        group.add_argument(
            "--prompt",
            action="append",
            choices=secret_names,
            metavar="NAME",
            help=f"ask for a secret with a hidden prompt ({', '.join(secret_names)}); repeatable",
        )


def _describe(spec: OptionSpec) -> str:
    parts = [spec.help or spec.title]
    if spec.choices:
        parts.append(f"one of: {', '.join(spec.choices)}")
    if spec.default is not None:
        parts.append(f"default: {spec.default}")
    if spec.required:
        parts.append(
            "required" if spec.when is None else f"required when {spec.when[0]} is {'/'.join(spec.when[1])}"
        )
    elif spec.when is not None:
        parts.append(f"used when {spec.when[0]} is {'/'.join(spec.when[1])}")
    return "; ".join(parts).replace("%", "%%")
