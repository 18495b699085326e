"""Azure Blob Storage: account URLs, credentials, clients and error translation.

Secrets arrive here only as already-revealed strings inside the connector's connect
and go straight into the SDK's credential objects; no message built here holds one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit
from urllib.request import getproxies, proxy_bypass

from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    IncompleteReadError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.storage.blob.aio import BlobServiceClient, LinearRetry

from ...errors import (
    AuthenticationFailed,
    ConfigurationError,
    ConnectionFailed,
    DataSourceError,
    ItemNotFound,
    QueryError,
)
from .download import ConnectionLost

__all__ = [
    "AUTH_METHODS",
    "AccountUrl",
    "ServiceClients",
    "Tuning",
    "infer_auth",
    "open_service",
    "split_account_url",
    "translate_error",
]

#: How a source signs in; ``auth`` takes one of these.
AUTH_METHODS: tuple[str, ...] = (
    "connection_string",
    "account_key",
    "sas_token",
    "anonymous",
    "entra_id",
    "service_principal",
)

_IDENTITY_HINT = "install it with: pip install 'deepanalyze-jupyter[azure-identity]'"
_CONNECTION_STRING_KEYS = ("AccountName", "BlobEndpoint", "UseDevelopmentStorage")


@dataclass(frozen=True)
class AccountUrl:
    """An account URL taken apart: the bare URL, a container in its path, a SAS in its query."""

    url: str
    container: str | None
    sas_token: str | None


def _path_style(host: str) -> bool:
    """Whether the account name is the URL's first path segment (emulators, IP hosts)."""
    if host == "localhost" or "." not in host:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def split_account_url(text: str) -> AccountUrl:
    """``https://acct.blob.core.windows.net/box?sv=..&sig=..`` -> URL, ``box``, the SAS.

    Raises ``ValueError`` (without the URL's text) when it is not an http(s) URL.
    """
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the account URL must look like https://<account>.blob.core.windows.net")
    segments = [segment for segment in parts.path.split("/") if segment]
    account_segments = 1 if _path_style(parts.hostname) else 0
    container = segments[account_segments] if len(segments) > account_segments else None
    path = "/" + "/".join(segments[:account_segments]) if account_segments and segments else ""
    query = parts.query
    sas = query if any(key == "sig" for key, _ in parse_qsl(query)) else None
    url = urlunsplit((parts.scheme, parts.netloc, path, "" if sas else query, ""))
    return AccountUrl(url=url, container=container, sas_token=sas)


def account_name(url: str) -> str:
    """The storage account named by an account URL."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if _path_style(host):
        segments = [segment for segment in parts.path.split("/") if segment]
        return segments[0] if segments else ""
    return host.split(".", 1)[0]


def endpoint_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, for messages (never a path or query)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], "", "", ""))


def connection_string_parts(text: str) -> dict[str, str]:
    """``Key=Value;...`` -> dict; raises ``ValueError`` naming no value when malformed."""
    parts: dict[str, str] = {}
    for item in text.split(";"):
        key, sep, value = item.strip().partition("=")
        if not key.strip():
            continue
        if not sep:
            raise ValueError("the connection string is malformed (expected Key=Value pairs separated by ';')")
        parts[key.strip()] = value.strip()
    if not any(key in parts for key in _CONNECTION_STRING_KEYS):
        raise ValueError(
            "the connection string names no account (AccountName=, BlobEndpoint= or UseDevelopmentStorage=)"
        )
    return parts


def infer_auth(options: Mapping[str, Any], secret_names: frozenset[str]) -> str:
    """The sign-in method implied by which fields were given."""
    if "connection_string" in secret_names:
        return "connection_string"
    if "account_key" in secret_names:
        return "account_key"
    if "sas_token" in secret_names:
        return "sas_token"
    if "client_secret" in secret_names:
        return "service_principal"
    return "anonymous"


@dataclass(frozen=True)
class Tuning:
    """Timeouts, retries and transfer sizes of the SDK's clients."""

    connect_timeout: float
    read_timeout: float
    retries: int
    range_size: int

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the SDK's async clients."""
        return {
            # The SDK's default retry waits 15 s and more between tries; an unreachable
            # endpoint must fail within seconds instead.
            "retry_policy": LinearRetry(backoff=0.5, random_jitter_range=0.25, retry_total=self.retries),  # type: ignore[arg-type]
            "connection_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "max_single_get_size": self.range_size,
            "max_chunk_get_size": self.range_size,
        }


@dataclass
class ServiceClients:
    """An open service client and the Entra ID credential it may use (closed with it)."""

    service: BlobServiceClient
    endpoint: str
    credential: Any = None

    async def close(self) -> None:
        """Close the client's HTTP session, then the credential's."""
        try:
            await self.service.close()
        finally:
            if self.credential is not None:
                await self.credential.close()


def open_service(
    options: Mapping[str, Any], reveal: Callable[[str], str | None], tuning: Tuning, *, source: str
) -> ServiceClients:
    """Make the async service client for a source's options; secrets come from ``reveal``."""
    auth = options.get("auth") or "anonymous"
    kwargs = {**tuning.client_kwargs(), "use_env_settings": False}
    if auth == "connection_string":
        text = _required_secret(reveal, "connection_string", source)
        try:
            parts = connection_string_parts(text)
            service = BlobServiceClient.from_connection_string(text, **kwargs)
            proxies = _environment_proxies(urlsplit(service.url).netloc)
            if proxies:  # its host is known once the string is parsed; no session is open yet
                service = BlobServiceClient.from_connection_string(text, **kwargs, proxies=proxies)
        except ValueError:
            raise ConfigurationError("the connection string is malformed", source=source) from None
        endpoint = parts.get("BlobEndpoint") or f"{service.scheme}://{service.primary_hostname}"
        return ServiceClients(service, endpoint_of(endpoint))
    url = str(options.get("account_url") or "")
    if not url:
        raise ConfigurationError(f"option 'account_url' is required for auth {auth!r}", source=source)
    endpoint = endpoint_of(url)
    kwargs["proxies"] = _environment_proxies(urlsplit(endpoint).netloc)
    if auth == "account_key":
        key = _required_secret(reveal, "account_key", source)
        credential: Any = AzureNamedKeyCredential(account_name(url), key)
        return ServiceClients(BlobServiceClient(url, credential=credential, **kwargs), endpoint)
    if auth == "sas_token":
        sas = _required_secret(reveal, "sas_token", source).lstrip("?")
        return ServiceClients(BlobServiceClient(url, credential=AzureSasCredential(sas), **kwargs), endpoint)
    if auth == "anonymous":
        return ServiceClients(BlobServiceClient(url, credential=None, **kwargs), endpoint)
    identity = _identity_credential(auth, options, reveal, source)
    return ServiceClients(BlobServiceClient(url, credential=identity, **kwargs), endpoint, identity)


def _environment_proxies(netloc: str) -> dict[str, str]:
    """The HTTP(S) proxies the environment names for ``host[:port]``: none when ``NO_PROXY`` bypasses it.

    Read here, once per client, rather than by the client: told to read the environment,
    aiohttp reads the proxy variables and ``~/.netrc`` again for every request (two trips to
    a worker thread that cost more than a small blob's download), and sends the ``~/.netrc``
    login of the storage host, or its ``default`` line, with each request, which a source
    signed with a key or connection string refuses.
    """
    proxies = getproxies()
    named = {scheme: url for scheme, url in proxies.items() if scheme in ("http", "https")}
    if not named or _bypassed(netloc, proxies.get("no", "")):
        return {}
    return named


def _bypassed(netloc: str, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` names ``host[:port]``: its name or port as ``urllib`` matches them,
    or, for an IP address, a network that holds it (``127.0.0.0/8``, as curl and requests do)."""
    host = urlsplit(f"//{netloc}").hostname or netloc
    if proxy_bypass(host) or proxy_bypass(netloc):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    for entry in no_proxy.split(","):
        with contextlib.suppress(ValueError):
            if address in ipaddress.ip_network(entry.strip(), strict=False):
                return True
    return False


def _required_secret(reveal: Callable[[str], str | None], name: str, source: str) -> str:
    value = reveal(name)
    if not value:
        raise ConfigurationError(f"the secret {name!r} is missing", source=source)
    return value


def _identity_credential(
    auth: str, options: Mapping[str, Any], reveal: Callable[[str], str | None], source: str
) -> Any:
    """A Microsoft Entra ID credential from the optional azure-identity package."""
    try:
        from azure.identity.aio import ClientSecretCredential, DefaultAzureCredential
    except ImportError:
        raise ConfigurationError(
            "Microsoft Entra ID sign-in needs the optional azure-identity package, which is not "
            f"installed; {_IDENTITY_HINT}",
            source=source,
        ) from None
    if auth == "entra_id":
        return DefaultAzureCredential()
    tenant, client = options.get("tenant_id"), options.get("client_id")
    if not tenant or not client:
        raise ConfigurationError(
            "a service principal needs the options 'tenant_id' and 'client_id'", source=source
        )
    return ClientSecretCredential(tenant, client, _required_secret(reveal, "client_secret", source))


# -- errors ---------------------------------------------------------------------------------

_AUTH_DETAILS = {
    "AuthenticationFailed": "the account key or SAS token was not accepted (wrong, expired or not yet valid)",
    "AuthorizationFailure": "the credential was not accepted for this request",
    "AuthorizationPermissionMismatch": "the credential does not grant the permission this needs",
    "AuthorizationResourceTypeMismatch": "the SAS token does not cover this kind of resource",
    "AuthorizationServiceMismatch": "the SAS token does not cover the blob service",
    "NoAuthenticationInformation": "no credential was given, and anonymous access is not allowed",
    "InvalidAuthenticationInfo": "the credential is malformed",
}


def translate_error(
    error: BaseException,
    *,
    source: str,
    endpoint: str,
    container: str | None,
    blob: str | None = None,
    anonymous: bool = False,
) -> DataSourceError:
    """Turn an SDK or network error into the package's error, naming the container or blob.

    The library's own text is never copied: it can hold the request URL and its SAS.
    """
    place = f"container {container!r}" if container else "the storage account"
    if isinstance(error, DataSourceError):
        return error
    if isinstance(error, (ConnectionLost, IncompleteReadError)):
        return _connection_lost(error, source=source, endpoint=endpoint, place=place, blob=blob)
    if isinstance(error, ClientAuthenticationError) and error.response is None and not error.status_code:
        # Raised before any request reached the service: by the SDK's request signing
        # (AzureSigningError, an unusable key) or by azure-identity.
        if type(error).__name__ == "AzureSigningError":
            return AuthenticationFailed(
                f"the account key cannot sign requests for {place} (it must be the base64 key)", source=source
            )
        return AuthenticationFailed(f"Microsoft Entra ID sign-in failed for {place}", source=source)
    if isinstance(error, HttpResponseError):
        translated = _translate_response(error, source=source, endpoint=endpoint, place=place, blob=blob)
        if anonymous and isinstance(translated, AuthenticationFailed):
            return AuthenticationFailed(
                f"{place} does not allow anonymous access: give a key, SAS token or connection string",
                source=source,
            )
        return translated
    if isinstance(error, (ServiceRequestTimeoutError, ServiceResponseTimeoutError, asyncio.TimeoutError)):
        return ConnectionFailed(f"the blob service at {endpoint} did not answer in time", source=source)
    if isinstance(error, (ServiceRequestError, ServiceResponseError, OSError)):
        return ConnectionFailed(
            f"cannot reach the blob service at {endpoint}: {_network_reason(error)}", source=source
        )
    return QueryError(f"the request on {place} failed ({type(error).__name__})", source=source)


def _connection_lost(
    error: ConnectionLost | IncompleteReadError, *, source: str, endpoint: str, place: str, blob: str | None
) -> ConnectionFailed:
    what = f"reading {blob!r} from {place}" if blob else f"reading from {place}"
    if isinstance(error, ConnectionLost) and error.stopped:
        detail = f"the blob service at {endpoint} stopped answering"
    elif isinstance(error, ConnectionLost):
        detail = f"the connection to {endpoint} broke {error.tries} times"
    else:
        detail = f"the connection to {endpoint} broke"
    return ConnectionFailed(f"connection lost while {what}: {detail}", source=source)


def _translate_response(
    error: HttpResponseError, *, source: str, endpoint: str, place: str, blob: str | None
) -> DataSourceError:
    status = error.status_code or 0
    raw_code = getattr(error, "error_code", None)
    code = str(getattr(raw_code, "value", raw_code) or "")
    if isinstance(error, ClientAuthenticationError) or status in (401, 403):
        detail = _AUTH_DETAILS.get(code, f"the service refused the credentials ({code or status})")
        return AuthenticationFailed(f"access to {place} was refused: {detail}", source=source)
    if isinstance(error, ResourceNotFoundError) or status == 404:
        if code == "ContainerNotFound" or (blob is None and code != "BlobNotFound"):
            suffix = "" if code == "ContainerNotFound" else " (or is not visible with this credential)"
            return ItemNotFound(f"{place} does not exist{suffix}", source=source)
        return ItemNotFound(f"no blob {blob!r} in {place}", source=source)
    if status == 412 and blob is not None:
        return QueryError(f"blob {blob!r} in {place} changed while it was read; read it again", source=source)
    if status >= 500:
        return ConnectionFailed(
            f"the blob service at {endpoint} failed ({status}{' ' + code if code else ''})", source=source
        )
    what = f"blob {blob!r} in {place}" if blob else place
    if not status:  # no status: the response itself could not be read
        return QueryError(
            f"the blob service at {endpoint} sent an unreadable answer for {what}", source=source
        )
    return QueryError(f"the blob service refused the request on {what} ({code or status})", source=source)


def _network_reason(error: BaseException) -> str:
    text = str(error).lower()
    if "refused" in text or "connect call failed" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename" in text or "getaddrinfo" in text:
        return "host name not found"
    if "timeout" in text or "timed out" in text:
        return "timed out"
    if "certificate" in text or "sslerror" in text or "ssl error" in text:
        return "TLS handshake failed"
    return type(error).__name__
