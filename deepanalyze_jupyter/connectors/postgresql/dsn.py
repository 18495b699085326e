"""Connection strings and libpq parameters of a PostgreSQL source.

A source may be given a full DSN (``postgresql://`` URI or ``key=value`` pairs). Its
password is moved into the source's secrets before anything is stored, and the DSN is
kept without it. At connect time, the libpq parameters are: this package's defaults,
then the DSN's, then the explicit options, then the session settings the connector
relies on. Parsing is libpq's own (``psycopg.conninfo``), never done by hand here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ...errors import ConfigurationError, quoted

__all__ = [
    "DEFAULT_APPLICATION_NAME",
    "DEFAULT_CONNECT_TIMEOUT",
    "DSN_SECRETS",
    "LIBPQ_OPTIONS",
    "check_setting",
    "connection_params",
    "describe_target",
    "split_dsn",
]

DEFAULT_APPLICATION_NAME = "deepanalyze-jupyter"
DEFAULT_CONNECT_TIMEOUT = 10

#: Options passed to libpq as they are.
LIBPQ_OPTIONS = (
    "host",
    "port",
    "dbname",
    "user",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "application_name",
)
#: libpq parameters that are secrets: never stored in a DSN, never shown.
DSN_SECRETS = ("password", "sslpassword")

_UNKNOWN_OPTION_RE = re.compile(r'invalid connection option "(\w+)"')
_SETTING_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?")


def split_dsn(dsn: str, *, source: str) -> tuple[str, dict[str, str]]:
    """Split ``dsn`` into a ``key=value`` DSN without secrets, and the secrets it held."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as error:
        raise ConfigurationError(_malformed_dsn_message(str(error)), source=source) from None
    secrets = {name: str(params.pop(name)) for name in DSN_SECRETS if params.get(name)}
    for name in DSN_SECRETS:
        params.pop(name, None)
    return make_conninfo("", **params), secrets


def _malformed_dsn_message(libpq_message: str) -> str:
    # libpq's own message may quote a piece of the string, which may be the password.
    message = "option 'dsn' is not a valid connection string (a postgresql:// URI or key=value pairs)"
    unknown = _UNKNOWN_OPTION_RE.search(libpq_message)
    if unknown:
        message += f": unknown parameter {unknown.group(1)!r}"
    return message


def connection_params(
    options: Mapping[str, Any], *, password: str | None, sslpassword: str | None, read_only: bool
) -> dict[str, str]:
    """The libpq parameters for a source's options and (decrypted) secrets."""
    params: dict[str, Any] = {
        "connect_timeout": DEFAULT_CONNECT_TIMEOUT,
        "application_name": DEFAULT_APPLICATION_NAME,
    }
    if options.get("dsn"):
        params.update(conninfo_to_dict(options["dsn"]))
    params.update({name: options[name] for name in LIBPQ_OPTIONS if options.get(name) is not None})
    if options.get("options"):
        params["options"] = options["options"]
    if password:
        params["password"] = password
    if sslpassword:
        params["sslpassword"] = sslpassword
    params["client_encoding"] = "UTF8"
    # Later -c settings win: the user's own options cannot turn read-only off. Settings
    # given at connect are the session's reset values: a reset before reuse keeps them.
    session = [f"-c {_escaped(setting)}" for setting in options.get("set") or ()]
    session += ["-c datestyle=ISO", "-c intervalstyle=postgres"]
    timeout = options.get("statement_timeout")
    if timeout is not None:
        session.append(f"-c statement_timeout={max(0, round(float(timeout) * 1000))}")
    if read_only:
        session.append("-c default_transaction_read_only=on")
    params["options"] = " ".join(filter(None, [str(params.get("options") or ""), *session]))
    return {name: str(value) for name, value in params.items() if value is not None}


def check_setting(setting: str, *, source: str) -> str:
    """``setting`` if it reads ``name=value`` with a server setting's name, else one clear error."""
    name, equals, value = setting.partition("=")
    if not equals or not _SETTING_NAME_RE.fullmatch(name.strip()):
        raise ConfigurationError(
            f"option 'set' takes name=value (e.g. timezone=UTC), got {quoted(setting, 80)}", source=source
        )
    return f"{name.strip()}={value}"


def _escaped(setting: str) -> str:
    """A setting as one word of libpq's ``options``: backslashes and spaces escaped."""
    return setting.replace("\\", "\\\\").replace(" ", "\\ ")


def describe_target(params: Mapping[str, str]) -> str:
    """``host:port/dbname as user`` from libpq parameters, for messages (never a secret)."""
    host = params.get("host") or params.get("hostaddr") or "(default host)"
    port = params.get("port") or "5432"
    where = f"{host}:{port}"
    if params.get("dbname"):
        where += f"/{params['dbname']}"
    if params.get("user"):
        where += f" as {params['user']}"
    return where
