"""What a Dask worker gets for each way a blob source signs in: a minted read+list container SAS
for a key, the user's own SAS as given, and nothing for Entra ID or anonymous access."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs

import pytest

from deepanalyze_jupyter.connectors.azure_blob.sas import worker_credential

KEY = "a2V5LW9mLXRoZS10ZXN0LWFjY291bnQtbm90LWEtcmVhbC1vbmU="
URL = "https://acct.blob.core.windows.net"


def _reveal(secrets: dict[str, str], asked: list[str]) -> Callable[[str], str | None]:
    def reveal(name: str) -> str | None:
        asked.append(name)
        return secrets.get(name)

    return reveal


def _fields(token: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(token).items()}


def test_an_account_key_gives_a_read_list_sas_of_the_container_that_expires() -> None:
    before = datetime.now(timezone.utc)
    credential = worker_credential(
        {"auth": "account_key", "account_url": URL},
        _reveal({"account_key": KEY}, []),
        "box",
        timedelta(minutes=20),
        source="lake",
    )
    assert (credential.auth, credential.account_url) == ("sas_token", URL)
    fields = _fields(credential.sas_token or "")
    assert (fields["sp"], fields["sr"], fields["spr"]) == ("rl", "c", "https")
    assert KEY not in (credential.sas_token or "")
    assert KEY not in repr(credential)
    assert credential.expires is not None
    assert timedelta(minutes=19) < credential.expires - before <= timedelta(minutes=20)
    assert datetime.fromisoformat(fields["se"].replace("Z", "+00:00")) == credential.expires


@pytest.mark.parametrize(
    ("text", "url"),
    [
        (
            f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};EndpointSuffix=core.windows.net",
            URL,
        ),
        ("UseDevelopmentStorage=true", "http://127.0.0.1:10000/devstoreaccount1"),
    ],
)
def test_a_connection_string_with_a_key_gives_a_minted_sas(text: str, url: str) -> None:
    credential = worker_credential(
        {"auth": "connection_string"},
        _reveal({"connection_string": text}, []),
        "box",
        timedelta(hours=1),
        source="lake",
    )
    assert (credential.auth, credential.account_url) == ("sas_token", url)
    assert _fields(credential.sas_token or "")["sp"] == "rl"
    assert credential.expires is not None
    assert "AccountKey" not in repr(credential)


def test_a_users_sas_travels_as_given() -> None:
    sas = "sv=2025-01-05&sr=c&sp=rl&sig=abc%3D"
    in_string = worker_credential(
        {"auth": "connection_string"},
        _reveal({"connection_string": f"BlobEndpoint={URL};SharedAccessSignature={sas}"}, []),
        "box",
        timedelta(hours=1),
        source="lake",
    )
    given = worker_credential(
        {"auth": "sas_token", "account_url": URL},
        _reveal({"sas_token": "?" + sas}, []),
        "box",
        timedelta(hours=1),
        source="lake",
    )
    for credential in (in_string, given):
        assert (credential.auth, credential.account_url, credential.sas_token) == ("sas_token", URL, sas)
        assert credential.expires is None
        assert sas not in repr(credential)


@pytest.mark.parametrize(
    ("auth", "expected"),
    [("entra_id", "entra_id"), ("service_principal", "entra_id"), ("anonymous", "anonymous")],
)
def test_entra_id_and_anonymous_sources_send_nothing_secret(auth: str, expected: str) -> None:
    asked: list[str] = []
    options = {"auth": auth, "account_url": URL, "tenant_id": "t", "client_id": "c"}
    credential = worker_credential(
        options, _reveal({"client_secret": "s3cret"}, asked), "box", timedelta(hours=1), source="lake"
    )
    assert (credential.auth, credential.sas_token, credential.expires) == (expected, None, None)
    assert asked == []
