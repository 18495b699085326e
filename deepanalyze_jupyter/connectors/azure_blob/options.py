"""Azure Blob Storage: the options a source takes, and their checks before storing.

``auth`` is inferred from the fields given when absent; a SAS token (and a container)
inside the account URL are moved into their own fields, so the stored URL holds none.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from ...errors import ConfigurationError
from ...models import OptionSpec, Secret
from ...writing import READ_ONLY_OPTION
from .auth import AUTH_METHODS, connection_string_parts, infer_auth, split_account_url

__all__ = ["OPTION_SPECS", "check_options", "normalize_options"]

_URL_AUTH = ("account_key", "sas_token", "anonymous", "entra_id", "service_principal")
_PRINCIPAL = ("service_principal",)

OPTION_SPECS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "auth",
        help="how to sign in (inferred from the fields given when absent)",
        choices=AUTH_METHODS,
        label="Sign in with",
    ),
    OptionSpec(
        "account_url",
        help="the account's blob endpoint, https://<account>.blob.core.windows.net",
        required=True,
        when=("auth", _URL_AUTH),
        label="Account URL",
    ),
    OptionSpec("container", help="the container; leave empty to name it in every path"),
    OptionSpec(
        "connection_string",
        help="the storage account's connection string",
        secret=True,
        required=True,
        when=("auth", ("connection_string",)),
    ),
    OptionSpec(
        "account_key",
        help="the storage account key",
        secret=True,
        required=True,
        when=("auth", ("account_key",)),
    ),
    OptionSpec(
        "sas_token",
        help="a shared access signature (sv=...&sig=...)",
        secret=True,
        required=True,
        when=("auth", ("sas_token",)),
        label="SAS token",
    ),
    OptionSpec("tenant_id", help="the Microsoft Entra tenant", required=True, when=("auth", _PRINCIPAL)),
    OptionSpec(
        "client_id",
        help="the service principal's application id",
        required=True,
        when=("auth", _PRINCIPAL),
    ),
    OptionSpec(
        "client_secret",
        help="the service principal's client secret",
        secret=True,
        required=True,
        when=("auth", _PRINCIPAL),
    ),
    OptionSpec("max_concurrency", int, "requests in flight at once when reading", default=32),
    OptionSpec("connect_timeout", float, "seconds to wait for a connection", default=5.0),
    OptionSpec("read_timeout", float, "seconds to wait for data on a connection", default=60.0),
    OptionSpec("retries", int, "retries of a failed request", default=2),
    OptionSpec("max_listing", int, "rows a listing returns at most unless a limit is given", default=10_000),
    OptionSpec("range_size_mb", int, "MiB per request when a large blob is read in ranges", default=16),
    OptionSpec("show_progress", bool, "show a progress bar for long reads", default=True),
    READ_ONLY_OPTION,
)
_SPECS = {spec.name: spec for spec in OPTION_SPECS}


def normalize_options(
    source: str,
    options: Mapping[str, Any],
    secrets: Mapping[str, Secret],
    present_secrets: frozenset[str],
) -> tuple[dict[str, Any], dict[str, Secret]]:
    """Take a SAS and a container out of the account URL, and fill in ``auth``."""
    given = {name: value for name, value in options.items() if value is not None}
    given_secrets = dict(secrets)
    url = given.get("account_url")
    if isinstance(url, str) and url:
        try:
            parts = split_account_url(url)
        except ValueError as error:
            raise ConfigurationError(str(error), source=source) from None
        given["account_url"] = parts.url
        if parts.sas_token and "sas_token" not in given_secrets and "sas_token" not in given:
            given_secrets["sas_token"] = Secret(parts.sas_token)
        if parts.container and not given.get("container"):
            given["container"] = parts.container
    secret_names = frozenset(given_secrets) | frozenset(
        name for name in given if name in _SPECS and _SPECS[name].secret
    )
    given.setdefault("auth", infer_auth(given, secret_names | present_secrets))
    return given, given_secrets


def check_options(source: str, options: Mapping[str, Any], secrets: Mapping[str, Secret]) -> dict[str, Any]:
    """Check validated options and secrets together; return the options that apply.

    Options of other sign-in methods (left over from an update) are dropped; a secret
    of another method is refused, as it means the wrong method was chosen.
    """
    auth = options["auth"]
    for name in secrets:
        if name in _SPECS and not _SPECS[name].applies(options):
            raise ConfigurationError(f"the secret {name!r} does not go with auth {auth!r}", source=source)
    if "connection_string" in secrets:
        try:
            connection_string_parts(secrets["connection_string"].reveal())
        except ValueError as error:
            raise ConfigurationError(str(error), source=source) from None
    if "account_key" in secrets and not _is_base64(secrets["account_key"].reveal()):
        raise ConfigurationError("the account key is not valid base64", source=source)
    if "sas_token" in secrets and "sig=" not in secrets["sas_token"].reveal():
        raise ConfigurationError("the SAS token has no signature (sig=...)", source=source)
    for name in ("max_concurrency", "max_listing", "range_size_mb"):
        if options[name] < 1:
            raise ConfigurationError(f"option {name!r} must be at least 1", source=source)
    if options["retries"] < 0 or options["connect_timeout"] <= 0 or options["read_timeout"] <= 0:
        raise ConfigurationError("timeouts must be positive and retries not negative", source=source)
    return {
        name: value for name, value in options.items() if name not in _SPECS or _SPECS[name].applies(options)
    }


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text.strip(), validate=True)
    except ValueError:
        return False
    return True
