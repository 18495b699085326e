"""Azure Blob Storage without a service: options, account URLs and error translation."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    DecodeError,
    HttpResponseError,
    IncompleteReadError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseTimeoutError,
)

from deepanalyze_jupyter.connectors.azure_blob import auth
from deepanalyze_jupyter.connectors.azure_blob.auth import (
    Tuning,
    account_name,
    connection_string_parts,
    endpoint_of,
    split_account_url,
    translate_error,
)
from deepanalyze_jupyter.connectors.azure_blob.connector import AzureBlobConnector
from deepanalyze_jupyter.connectors.azure_blob.download import ConnectionLost
from deepanalyze_jupyter.errors import (
    AuthenticationFailed,
    ConfigurationError,
    ConnectionFailed,
    ItemNotFound,
    QueryError,
)
from deepanalyze_jupyter.models import Secret

KEY = base64.b64encode(b"k" * 64).decode()
SAS = "sv=2024-08-04&sr=c&sp=rl&se=2030-01-01T00%3A00%3A00Z&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"
URL = "https://acct.blob.core.windows.net"


def prepare(options: dict[str, Any], secrets: dict[str, str] | None = None, **kwargs: Any) -> tuple[Any, Any]:
    wrapped = {name: Secret(value) for name, value in (secrets or {}).items()}
    return AzureBlobConnector.prepare("box", options, wrapped, **kwargs)


# -- account URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "url", "container", "sas"),
    [
        (URL, URL, None, None),
        (f"{URL}/", URL, None, None),
        (f"{URL}/sales", URL, "sales", None),
        (f"{URL}/sales/2024/x.csv", URL, "sales", None),
        (f"{URL}/sales?{SAS}", URL, "sales", SAS),
        (f"{URL}?{SAS}", URL, None, SAS),
        (f"{URL}?comp=list", f"{URL}?comp=list", None, None),
        ("http://127.0.0.1:10000/devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1", None, None),
        (
            "http://127.0.0.1:10000/devstoreaccount1/box",
            "http://127.0.0.1:10000/devstoreaccount1",
            "box",
            None,
        ),
        (
            "http://localhost:10000/devstoreaccount1/box?" + SAS,
            "http://localhost:10000/devstoreaccount1",
            "box",
            SAS,
        ),
    ],
)
def test_split_account_url(text: str, url: str, container: str | None, sas: str | None) -> None:
    parts = split_account_url(text)
    assert (parts.url, parts.container, parts.sas_token) == (url, container, sas)


@pytest.mark.parametrize("text", ["acct.blob.core.windows.net", "ftp://acct/x", "https://", ""])
def test_split_account_url_refuses_what_is_not_a_url(text: str) -> None:
    with pytest.raises(ValueError, match="account URL must look like"):
        split_account_url(text)


def test_account_name_and_endpoint() -> None:
    assert account_name(URL) == "acct"
    assert account_name("http://127.0.0.1:10000/devstoreaccount1") == "devstoreaccount1"
    assert endpoint_of(f"{URL}/box?{SAS}") == URL
    assert endpoint_of("http://user:pw@127.0.0.1:10000/devstoreaccount1") == "http://127.0.0.1:10000"


def test_connection_string_parts_never_echo_the_text() -> None:
    assert connection_string_parts(f"AccountName=acct;AccountKey={KEY};")["AccountKey"] == KEY
    bare_key = base64.b64encode(b"k" * 63).decode()  # no '=' padding
    for text in (f"AccountName=acct;{bare_key}", f"AccountKey={KEY}"):
        with pytest.raises(ValueError, match="connection string") as caught:
            connection_string_parts(text)
        assert KEY not in str(caught.value)
        assert bare_key not in str(caught.value)


# -- prepare -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "secrets", "auth"),
    [
        ({}, {"connection_string": f"AccountName=acct;AccountKey={KEY}"}, "connection_string"),
        ({"account_url": URL}, {"account_key": KEY}, "account_key"),
        ({"account_url": URL}, {"sas_token": SAS}, "sas_token"),
        ({"account_url": URL}, {}, "anonymous"),
        (
            {"account_url": URL, "tenant_id": "t", "client_id": "c"},
            {"client_secret": "s3cret"},
            "service_principal",
        ),
        ({"account_url": URL, "auth": "entra_id"}, {}, "entra_id"),
    ],
)
def test_auth_is_inferred_from_the_fields_given(
    options: dict[str, Any], secrets: dict[str, str], auth: str
) -> None:
    clean, kept = prepare({"container": "c", **options}, secrets)
    assert clean["auth"] == auth
    assert set(kept) == set(secrets)
    assert clean["max_concurrency"] >= 16
    assert clean["max_listing"] == 10_000


def test_a_sas_in_the_account_url_moves_into_the_secrets() -> None:
    clean, secrets = prepare({"account_url": f"{URL}/sales?{SAS}"})
    assert clean["account_url"] == URL
    assert clean["container"] == "sales"
    assert clean["auth"] == "sas_token"
    assert secrets["sas_token"].reveal() == SAS
    assert "sig=" not in repr(clean)


def test_secret_values_given_as_options_become_secrets() -> None:
    clean, secrets = prepare({"account_url": URL, "account_key": KEY})
    assert "account_key" not in clean
    assert secrets["account_key"].reveal() == KEY
    assert clean["auth"] == "account_key"


@pytest.mark.parametrize(
    ("options", "secrets", "message"),
    [
        ({"auth": "account_key", "account_url": URL}, {}, "missing required option 'account_key'"),
        ({"auth": "sas_token"}, {"sas_token": SAS}, "missing required option 'account_url'"),
        ({"auth": "service_principal", "account_url": URL}, {"client_secret": "x"}, "'tenant_id'"),
        (
            {"auth": "account_key", "account_url": URL},
            {"account_key": KEY, "sas_token": SAS},
            "does not go with",
        ),
        ({"auth": "kerberos", "account_url": URL}, {}, "must be one of connection_string"),
        ({}, {"connection_string": "just some text"}, "connection string is malformed"),
        ({}, {"connection_string": "Foo=bar"}, "names no account"),
        ({"account_url": URL}, {"account_key": "not base64!"}, "not valid base64"),
        ({"account_url": URL}, {"sas_token": "sv=2024&sp=r"}, "no signature"),
        ({"account_url": "acct.blob.core.windows.net"}, {}, "account URL must look like"),
        ({"account_url": URL, "max_concurrency": 0}, {}, "'max_concurrency' must be at least 1"),
        ({"account_url": URL, "retries": -1}, {}, "retries not negative"),
        ({"account_url": URL, "colour": "blue"}, {}, "unknown option 'colour'"),
    ],
)
def test_bad_configurations_are_refused_without_secrets(
    options: dict[str, Any], secrets: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        prepare(options, secrets)
    assert str(caught.value).startswith("box: ")
    for value in secrets.values():
        if len(value) > 8:
            assert value not in str(caught.value)


def test_options_of_another_sign_in_method_are_dropped_on_update() -> None:
    clean, _ = prepare(
        {"auth": "account_key", "account_url": URL, "tenant_id": "t", "client_id": "c"},
        {},
        present_secrets=frozenset({"account_key"}),
    )
    assert "tenant_id" not in clean
    assert "client_id" not in clean


def test_forms_show_only_the_fields_of_the_chosen_method() -> None:
    shown = {
        auth: {spec.name for spec in AzureBlobConnector.option_specs if spec.applies({"auth": auth})}
        for auth in ("connection_string", "account_key", "sas_token", "anonymous", "service_principal")
    }
    assert "account_url" not in shown["connection_string"]
    assert "connection_string" in shown["connection_string"]
    assert {"account_url", "account_key"} <= shown["account_key"]
    assert "sas_token" not in shown["account_key"]
    assert {"account_url", "sas_token"} <= shown["sas_token"]
    assert not {"account_key", "sas_token", "client_secret"} & shown["anonymous"]
    assert {"tenant_id", "client_id", "client_secret"} <= shown["service_principal"]
    secret_fields = {spec.name for spec in AzureBlobConnector.option_specs if spec.secret}
    assert secret_fields == {"connection_string", "account_key", "sas_token", "client_secret"}


def test_tuning_makes_an_unreachable_endpoint_fail_fast() -> None:
    kwargs = Tuning(connect_timeout=5.0, read_timeout=60.0, retries=2, range_size=8 << 20).client_kwargs()
    policy = kwargs["retry_policy"]
    assert policy.total_retries == 2
    assert policy.backoff <= 1
    assert kwargs["connection_timeout"] == 5.0
    assert kwargs["max_single_get_size"] == kwargs["max_chunk_get_size"] == 8 << 20


# -- errors --------------------------------------------------------------------------------------


def _response_error(cls: type[HttpResponseError], status: int, code: str) -> HttpResponseError:
    error = cls(message=f"failed with sig={SAS} and key {KEY}")
    error.status_code = status
    error.error_code = code  # type: ignore[attr-defined]
    return error


def translate(error: BaseException, **kwargs: Any) -> Any:
    return translate_error(error, source="box", endpoint=URL, container="sales", **kwargs)


@pytest.mark.parametrize(
    ("error", "blob", "kind", "message"),
    [
        (
            _response_error(ClientAuthenticationError, 403, "AuthenticationFailed"),
            None,
            AuthenticationFailed,
            "access to container 'sales' was refused: the account key or SAS token was not accepted",
        ),
        (
            _response_error(HttpResponseError, 403, "AuthorizationPermissionMismatch"),
            "a.csv",
            AuthenticationFailed,
            "does not grant the permission",
        ),
        (
            _response_error(ResourceNotFoundError, 404, "ContainerNotFound"),
            "a.csv",
            ItemNotFound,
            "container 'sales' does not exist",
        ),
        (
            _response_error(ResourceNotFoundError, 404, "BlobNotFound"),
            "a.csv",
            ItemNotFound,
            "no blob 'a.csv' in container 'sales'",
        ),
        (
            _response_error(HttpResponseError, 503, "ServerBusy"),
            None,
            ConnectionFailed,
            "failed (503 ServerBusy)",
        ),
        (_response_error(HttpResponseError, 409, "LeaseIdMissing"), "a.csv", QueryError, "(LeaseIdMissing)"),
        (
            _response_error(HttpResponseError, 412, "ConditionNotMet"),
            "a.csv",
            QueryError,
            "blob 'a.csv' in container 'sales' changed while it was read",
        ),
        (
            ServiceRequestError(f"Cannot connect to host acct:443 [Connect call failed] {SAS}"),
            None,
            ConnectionFailed,
            f"cannot reach the blob service at {URL}: connection refused",
        ),
        (ServiceResponseTimeoutError(f"timeout {SAS}"), None, ConnectionFailed, "did not answer in time"),
        (
            IncompleteReadError(f"Response payload is not completed {SAS}"),
            "a.csv",
            ConnectionFailed,
            f"connection lost while reading 'a.csv' from container 'sales': the connection to {URL} broke",
        ),
        (
            ConnectionLost("a.csv", tries=3, stopped=False),
            "a.csv",
            ConnectionFailed,
            f"reading 'a.csv' from container 'sales': the connection to {URL} broke 3 times",
        ),
        (
            ConnectionLost("a.csv", tries=1, stopped=True),
            "a.csv",
            ConnectionFailed,
            f"reading 'a.csv' from container 'sales': the blob service at {URL} stopped answering",
        ),
        (
            DecodeError(f"cannot decode {SAS}"),
            "a.csv",
            QueryError,
            f"the blob service at {URL} sent an unreadable answer for blob 'a.csv' in container 'sales'",
        ),
        (ClientAuthenticationError(f"no token {SAS}"), None, AuthenticationFailed, "Entra ID sign-in failed"),
    ],
)
def test_errors_are_translated_without_the_library_text(
    error: BaseException, blob: str | None, kind: type[Exception], message: str
) -> None:
    translated = translate(error, blob=blob)
    assert type(translated) is kind
    assert message in str(translated)
    assert str(translated).startswith("box: ")
    assert "sig=" not in str(translated)
    assert KEY not in str(translated)


def test_refused_anonymous_access_says_the_container_is_not_public() -> None:
    error = _response_error(HttpResponseError, 403, "NoAuthenticationInformation")
    translated = translate(error, anonymous=True)
    assert isinstance(translated, AuthenticationFailed)
    assert "does not allow anonymous access" in str(translated)


@pytest.mark.parametrize(
    ("no_proxy", "bypassed"),
    [
        ("127.0.0.1:10000", True),
        ("127.0.0.0/8", True),
        ("example.com, 127.0.0.1", True),
        ("127.0.0.1:9999", False),
        ("10.0.0.0/8", False),
        ("not-a-network/99", False),
    ],
)
def test_no_proxy_with_a_port_or_a_network_bypasses_the_proxy(
    monkeypatch: pytest.MonkeyPatch, no_proxy: str, bypassed: bool
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    service = auth.open_service(
        {"auth": "anonymous", "account_url": "http://127.0.0.1:10000/devstoreaccount1"},
        lambda name: None,
        Tuning(connect_timeout=1, read_timeout=1, retries=0, range_size=1 << 20),
        source="b",
    )
    assert (not service.service._config.proxy_policy.proxies) is bypassed
