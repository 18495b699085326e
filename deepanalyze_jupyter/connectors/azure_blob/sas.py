"""Azure Blob Storage: what a distributed worker gets to read one container, never a long-lived secret.

- an account key or a connection string holding one: a service SAS the kernel mints for
  the container, read and list only, expiring after a given time (container scope: a
  folder-scoped SAS needs a hierarchical namespace, so a worker lists and reads only the
  paths its task names);
- a SAS token given by the user (also inside a connection string): that token, as given;
- Microsoft Entra ID (default credential or service principal): nothing; the worker signs
  in with its own ``DefaultAzureCredential``;
- anonymous access: nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

from ...errors import ConfigurationError
from .auth import _required_secret, account_name, split_account_url

__all__ = ["WorkerCredential", "mint_container_sas", "worker_credential"]


@dataclass(frozen=True)
class WorkerCredential:
    """How a worker signs in to one container: ``auth`` ("sas_token", "entra_id" or "anonymous")."""

    auth: str
    account_url: str
    sas_token: str | None = field(default=None, repr=False)
    #: When a SAS minted by the kernel stops working (``None`` for any other credential).
    expires: datetime | None = None


def mint_container_sas(
    account: str, key: str, container: str, lifetime: timedelta, *, https_only: bool
) -> tuple[str, datetime]:
    """A read+list service SAS for ``container`` signed with the account key; (token, expiry)."""
    expires = (datetime.now(timezone.utc) + lifetime).replace(microsecond=0)
    token = generate_container_sas(
        account,
        container,
        account_key=key,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=expires,
        protocol="https" if https_only else None,
    )
    return token, expires


def worker_credential(
    options: Mapping[str, Any],
    reveal: Callable[[str], str | None],
    container: str,
    lifetime: timedelta,
    *,
    source: str,
) -> WorkerCredential:
    """What a worker gets to read ``container`` of a source with these options (see the module)."""
    auth = options.get("auth") or "anonymous"
    if auth == "connection_string":
        try:
            return _from_connection_string(
                _required_secret(reveal, "connection_string", source), container, lifetime
            )
        except ValueError:
            raise ConfigurationError("the connection string is malformed", source=source) from None
    url = str(options.get("account_url") or "")
    if auth == "account_key":
        token, expires = mint_container_sas(
            account_name(url),
            _required_secret(reveal, "account_key", source),
            container,
            lifetime,
            https_only=url.startswith("https:"),
        )
        return WorkerCredential("sas_token", url, token, expires)
    if auth == "sas_token":
        return WorkerCredential("sas_token", url, _required_secret(reveal, "sas_token", source).lstrip("?"))
    if auth in ("entra_id", "service_principal"):
        return WorkerCredential("entra_id", url)
    return WorkerCredential("anonymous", url)


def _from_connection_string(text: str, container: str, lifetime: timedelta) -> WorkerCredential:
    """A minted SAS when the connection string holds an account key, else its own SAS."""
    with BlobServiceClient.from_connection_string(text) as service:  # parses only: no request
        url = split_account_url(service.url)
        key = getattr(service.credential, "account_key", None)
        account = service.account_name or ""
    if url.sas_token:
        return WorkerCredential("sas_token", url.url, url.sas_token)
    if not key:
        return WorkerCredential("anonymous", url.url)
    token, expires = mint_container_sas(
        account, key, container, lifetime, https_only=url.url.startswith("https:")
    )
    return WorkerCredential("sas_token", url.url, token, expires)
