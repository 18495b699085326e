"""Fernet encryption of secrets: keys, tokens, tampering, and a store without plaintext."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from deepanalyze_jupyter.credentials import CredentialManager, EncryptedSecrets
from deepanalyze_jupyter.errors import CredentialError
from deepanalyze_jupyter.models import Secret
from deepanalyze_jupyter.registry import DataSourceRegistry
from deepanalyze_jupyter.session import Session
from tests.core.conftest import NEW_PASSWORD, PASSWORD, fake_config
from tests.core.fakes import FakeService

TOKEN = "sv=2024-01-01&sig=abcdefSIGNATURE"


def reachable_texts(root: object) -> Iterator[str | bytes]:
    """Every str and bytes reachable from ``root`` through attributes and containers.

    The credential manager (which holds the key, not secrets) and classes are not entered.
    """
    seen: set[int] = set()
    pending = [root]
    while pending:
        value = pending.pop()
        if id(value) in seen or isinstance(value, (type, CredentialManager)) or callable(value):
            continue
        seen.add(id(value))
        if isinstance(value, (str, bytes)):
            yield value
            continue
        yield repr(value)
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, (list, tuple, set, frozenset)):
            pending.extend(value)
        if dataclasses.is_dataclass(value):
            pending.extend(getattr(value, f.name) for f in dataclasses.fields(value))
        if hasattr(value, "__dict__"):
            pending.extend(vars(value).values())
        for slot in getattr(type(value), "__slots__", ()):
            if hasattr(value, slot):
                pending.append(getattr(value, slot))


def holds_plaintext(root: object, *secrets: str) -> bool:
    for text in reachable_texts(root):
        for secret in secrets:
            if (secret in text) if isinstance(text, str) else (secret.encode() in text):
                return True
    return False


class TestKeys:
    def test_a_default_key_is_made_per_manager(self) -> None:
        first, second = CredentialManager(), CredentialManager()
        token = first.encrypt(Secret(PASSWORD))
        assert first.decrypt(token).reveal() == PASSWORD
        with pytest.raises(CredentialError, match="made under another key"):
            second.decrypt(token)

    def test_each_session_has_its_own_key_kept_in_memory_only(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("DEEPANALYZE_FERNET_KEY", raising=False)
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("HOME", str(tmp_path))
        environment = dict(os.environ)
        with Session(discover=False) as first, Session(discover=False) as second:
            token = first.credentials.encrypt(PASSWORD)
            with pytest.raises(CredentialError):
                second.credentials.decrypt(token)
        assert dict(os.environ) == environment
        assert list(tmp_path.iterdir()) == []

    def test_a_supplied_key_is_used(self) -> None:
        key = Fernet.generate_key()
        token = CredentialManager(key).encrypt(PASSWORD)
        assert CredentialManager(key.decode()).decrypt(token).reveal() == PASSWORD
        assert Fernet(key).decrypt(token) == PASSWORD.encode()

    def test_the_key_can_come_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        key = Fernet.generate_key().decode()
        monkeypatch.setenv("DEEPANALYZE_FERNET_KEY", key)
        token = CredentialManager.from_env().encrypt(PASSWORD)
        assert CredentialManager(key).decrypt(token).reveal() == PASSWORD
        monkeypatch.setenv("OTHER_KEY_VARIABLE", key)
        assert CredentialManager.from_env("OTHER_KEY_VARIABLE").decrypt(token).reveal() == PASSWORD

    def test_without_the_variable_a_fresh_key_is_made(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("DEEPANALYZE_FERNET_KEY", raising=False)
        token = CredentialManager.from_env().encrypt(PASSWORD)
        with pytest.raises(CredentialError):
            CredentialManager.from_env().decrypt(token)

    def test_a_session_takes_a_key(self) -> None:
        key = Fernet.generate_key()
        with Session(key=key, discover=False) as session:
            token = session.credentials.encrypt(PASSWORD)
        assert CredentialManager(key).decrypt(token).reveal() == PASSWORD

    @pytest.mark.parametrize("key", ["not-a-key-at-all", b"short", "x" * 44])
    def test_an_invalid_key_is_refused_without_echoing_it(self, key: str | bytes) -> None:
        with pytest.raises(CredentialError, match="not a valid Fernet key") as caught:
            CredentialManager(key)
        assert str(key) not in str(caught.value)
        assert caught.value.__cause__ is None
        assert caught.value.__suppress_context__

    def test_the_manager_does_not_show_its_key(self) -> None:
        key = Fernet.generate_key()
        manager = CredentialManager(key)
        assert key.decode() not in repr(manager)
        assert key.decode() not in str(manager)


class TestTokens:
    def test_secrets_are_stored_as_fernet_tokens(self) -> None:
        key = Fernet.generate_key()
        sealed = CredentialManager(key).seal(
            {"password": Secret(PASSWORD), "token": Secret(TOKEN)}, source="s"
        )
        assert sealed.names == frozenset({"password", "token"})
        for name, token in sealed.tokens.items():
            assert PASSWORD.encode() not in token
            assert TOKEN.encode() not in token
            assert Fernet(key).decrypt(token).decode() == {"password": PASSWORD, "token": TOKEN}[name]

    def test_the_same_secret_encrypts_differently_each_time(self) -> None:
        manager = CredentialManager()
        assert manager.encrypt(PASSWORD) != manager.encrypt(PASSWORD)

    def test_reveal_one_field_or_none(self) -> None:
        sealed = CredentialManager().seal({"password": Secret(PASSWORD)}, source="shop")
        assert sealed.reveal("password") == PASSWORD
        assert sealed.reveal("token") is None
        assert "password" in sealed
        assert "token" not in sealed
        assert sealed.secrets() == {"password": Secret(PASSWORD)}
        sealed.verify()

    def test_repr_names_fields_only(self) -> None:
        sealed = CredentialManager().seal({"password": Secret(PASSWORD)}, source="shop")
        assert repr(sealed) == "<EncryptedSecrets of 'shop': password>"
        empty = CredentialManager().seal({}, source="shop")
        assert repr(empty) == "<EncryptedSecrets of 'shop': none>"

    def test_the_tokens_view_is_a_copy(self) -> None:
        sealed = CredentialManager().seal({"password": Secret(PASSWORD)}, source="shop")
        view = sealed.tokens
        view["password"] = b"changed"  # type: ignore[index]
        assert sealed.reveal("password") == PASSWORD

    @pytest.mark.parametrize("position", [0, 20, 60, -1])
    def test_a_tampered_token_is_a_clear_error(self, position: int) -> None:
        manager = CredentialManager()
        token = bytearray(manager.encrypt(PASSWORD))
        token[position] = ord("A") if token[position] != ord("A") else ord("B")
        sealed = EncryptedSecrets(manager, "shop", {"password": bytes(token)})
        with pytest.raises(CredentialError) as caught:
            sealed.reveal("password")
        assert str(caught.value) == (
            "shop: the stored password cannot be decrypted: it was altered, or made under another key"
        )
        assert caught.value.source == "shop"
        assert caught.value.__cause__ is None
        with pytest.raises(CredentialError):
            sealed.verify()

    def test_a_token_from_another_key_is_a_clear_error(self) -> None:
        token = CredentialManager().encrypt(PASSWORD)
        sealed = EncryptedSecrets(CredentialManager(), "shop", {"token": token})
        with pytest.raises(CredentialError, match=r"^shop: the stored token cannot be decrypted"):
            sealed.secrets()

    @pytest.mark.parametrize("garbage", [b"", b"not base64 at all", "a str, not bytes"])
    def test_garbage_is_a_clear_error(self, garbage: bytes) -> None:
        with pytest.raises(CredentialError, match="cannot be decrypted"):
            CredentialManager().decrypt(garbage, source="shop")


class TestRegistryStore:
    def test_the_store_holds_no_plaintext(self, registry: DataSourceRegistry) -> None:
        config = fake_config("shop", password=PASSWORD)
        config = dataclasses.replace(config, secrets={"password": Secret(PASSWORD), "token": Secret(TOKEN)})

        async def scenario() -> None:
            await registry.register_data_source(config)
            await registry.get_connector("shop")
            await registry.update_data_source("shop", secrets={"password": NEW_PASSWORD})
            await registry.get_connector("shop")

        asyncio.run(scenario())
        stored = registry._sources["shop"]
        assert not holds_plaintext(stored, PASSWORD, NEW_PASSWORD, TOKEN)
        assert not holds_plaintext(registry._sources, PASSWORD, NEW_PASSWORD, TOKEN)
        assert not holds_plaintext(registry.list_data_sources(), PASSWORD, NEW_PASSWORD, TOKEN)
        assert set(stored.secrets.tokens) == {"password", "token"}
        assert stored.config.secrets == {}
        # The walk does find plaintext where there is some: the decrypted config.
        assert holds_plaintext(registry.get_config("shop", decrypt=True).secrets, NEW_PASSWORD)

    def test_a_tampered_store_fails_the_connect_with_a_clear_error(
        self, registry: DataSourceRegistry, service: FakeService
    ) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"), test_connection=False)
            stored = registry._sources["shop"]
            token = stored.secrets.tokens["password"]
            stored.secrets._tokens["password"] = token[:-4] + b"AAAA"
            with pytest.raises(CredentialError, match=r"^shop: the stored password cannot be decrypted"):
                await registry.get_connector("shop")
            with pytest.raises(CredentialError, match=r"^shop: "):
                registry.get_config("shop", decrypt=True)
            assert registry.status("shop").startswith("error: the stored password cannot be decrypted")

        asyncio.run(scenario())
        assert service.open_connections() == 0

    def test_a_store_moved_to_another_key_fails_clearly(self, registry: DataSourceRegistry) -> None:
        async def scenario() -> None:
            await registry.register_data_source(fake_config("shop"), test_connection=False)
            registry.credentials = CredentialManager()
            source = registry._sources["shop"]
            source.secrets = EncryptedSecrets(registry.credentials, "shop", source.secrets.tokens)
            with pytest.raises(CredentialError, match="made under another key"):
                await registry.test_connection("shop")

        asyncio.run(scenario())
