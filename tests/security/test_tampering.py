"""A modified or foreign Fernet token: a credential error naming the source, nothing decrypted.

The store's tokens are replaced in place, as memory tampering or a persisted config edited
by hand would leave them; the source must then refuse to connect without decrypting
anything (Fernet checks a token's HMAC before it decrypts a byte).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

import pytest
from cryptography.fernet import Fernet

from deepanalyze_jupyter import CredentialError, CredentialManager, Session
from deepanalyze_jupyter.credentials import EncryptedSecrets
from deepanalyze_jupyter.registry import DataSourceRegistry
from tests.security.conftest import Planted


def _flip(token: bytes, index: int) -> bytes:
    """``token`` with one bit of its raw byte ``index`` flipped."""
    raw = bytearray(base64.urlsafe_b64decode(token))
    raw[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw))


#: How a token is spoilt: Fernet tokens are version(1) | time(8) | IV(16) | ciphertext | HMAC(32).
TAMPERINGS: dict[str, Callable[[bytes], bytes]] = {
    "a flipped ciphertext bit": lambda token: _flip(token, 30),
    "a flipped HMAC bit": lambda token: _flip(token, -1),
    "a flipped IV bit": lambda token: _flip(token, 12),
    "a changed timestamp": lambda token: _flip(token, 5),
    "another version byte": lambda token: _flip(token, 0),
    "a truncated token": lambda token: token[:-10],
    "a token cut to nothing": lambda token: b"",
    "a token that is not base64": lambda token: b"%%%" + token[3:],
    "a foreign token (another key)": lambda token: Fernet(Fernet.generate_key()).encrypt(b"anything"),
}


def _store_tokens(registry: DataSourceRegistry, source_id: str, tokens: dict[str, bytes]) -> None:
    """Put ``tokens`` in the registry's store for ``source_id``, as tampering would."""
    stored = registry._sources[source_id]
    stored.secrets = EncryptedSecrets(registry.credentials, source_id, tokens)


@pytest.fixture
def session(planted: Planted) -> Iterator[Session]:
    """A session with a working PostgreSQL source and a working blob source."""
    with Session() as made:
        made.add(
            "pg",
            "postgresql",
            secrets={"password": planted.password, "sslpassword": planted.sslpassword},
            **planted.pg_options(),
        )
        made.add(
            "lake",
            "azure_blob",
            account_url=planted.blob_endpoint,
            container=planted.container,
            secrets={"sas_token": planted.sas_token},
        )
        yield made


@pytest.mark.parametrize("how", TAMPERINGS)
@pytest.mark.parametrize(
    ("source_id", "field"), [("pg", "password"), ("pg", "sslpassword"), ("lake", "sas_token")]
)
def test_a_tampered_token_is_a_credential_error_naming_the_source(
    session: Session, planted: Planted, how: str, source_id: str, field: str
) -> None:
    registry = session.registry
    original = dict(registry._sources[source_id].secrets.tokens)
    tampered = {**original, field: TAMPERINGS[how](original[field])}
    session.run(registry.disconnect(source_id))
    _store_tokens(registry, source_id, tampered)

    attempts: list[Callable[[], object]] = [
        lambda: session.test(source_id),
        lambda: registry.get_config(source_id, decrypt=True),
        lambda: registry._sources[source_id].secrets.reveal(field),
    ]
    for attempt in attempts:
        with pytest.raises(CredentialError) as caught:
            attempt()
        error = caught.value
        assert error.source == source_id
        assert str(error) == (
            f"{source_id}: the stored {field} cannot be decrypted: it was altered, or made under another key"
        )
        planted.book.check(f"tampered token: {how}", error)
    assert registry.status(source_id).startswith("error: the stored")
    # The other source is untouched; the genuine token still opens this one.
    other = "lake" if source_id == "pg" else "pg"
    assert session.test(other)
    _store_tokens(registry, source_id, original)
    assert session.test(source_id)


def test_nothing_is_decrypted_from_a_tampered_or_foreign_token(planted: Planted) -> None:
    manager = CredentialManager()
    sealed = manager.seal({"password": planted.password}, source="src")
    token = sealed.tokens["password"]
    for how, spoil in TAMPERINGS.items():
        with pytest.raises(CredentialError, match=r"^src: the stored password cannot be decrypted") as caught:
            manager.decrypt(spoil(token), source="src", field="password")
        assert caught.value.__cause__ is None
        assert caught.value.__suppress_context__
        planted.book.check(f"CredentialManager.decrypt of {how}", caught.value)
    # A token from another session's key, and this key's token in another session.
    foreign = CredentialManager().encrypt(planted.password)
    with pytest.raises(CredentialError, match=r"^src: "):
        manager.decrypt(foreign, source="src", field="password")
    with pytest.raises(CredentialError, match=r"^src: "):
        EncryptedSecrets(CredentialManager(), "src", {"password": token}).verify()
    assert manager.decrypt(token).reveal() == planted.password
