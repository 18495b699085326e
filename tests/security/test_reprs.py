"""``repr``, ``str``, IPython's pretty form and ``format`` of every public object, with canaries inside."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from collections.abc import Iterator

import pytest
from IPython.lib.pretty import pretty

from deepanalyze_jupyter import (
    CredentialManager,
    DataSourceConfig,
    Redactor,
    Secret,
    Session,
    sanitize,
)
from deepanalyze_jupyter.redaction import MASK
from tests.security.conftest import Planted


@pytest.fixture
def session(planted: Planted) -> Iterator[Session]:
    """Working sources of both services, and one added without a test."""
    with Session() as made:
        made.add("pg", "postgresql", dsn=planted.dsn)
        made.add("pg_uri", "postgresql", dsn=planted.uri)
        made.add("lake", "azure_blob", account_url=planted.sas_url)
        made.add(
            "lake_cs",
            "azure_blob",
            container=planted.container,
            secrets={"connection_string": planted.sas_connection_string},
        )
        made.add(
            "later",
            "postgresql",
            test=False,
            host="127.0.0.1",
            port=planted.unreachable_port,
            secrets={"password": planted.no_test_password, "sslpassword": planted.sslpassword},
        )
        yield made


def _shown(value: object) -> list[str]:
    """Every way the object shows itself."""
    return [repr(value), str(value), pretty(value), f"{value}", f"{value!r}"]


def test_every_public_object_shows_no_secret(session: Session, planted: Planted) -> None:
    book = planted.book
    registry = session.registry
    objects: list[object] = [session, registry, session.credentials, session.redactor, session.runner]
    objects += [registry.cache, session.sources()]
    for source_id in registry.source_ids:
        config = registry.get_config(source_id)
        decrypted = registry.get_config(source_id, decrypt=True)
        assert any(book.leaks(secret.reveal()) for secret in decrypted.secrets.values())
        objects += [config, decrypted, config.to_dict(), decrypted.secrets, copy.deepcopy(decrypted)]
        objects += [dataclasses.asdict(decrypted), list(decrypted.secrets.values())]
        objects.append(sanitize(decrypted.to_dict(include_secrets=True)))
    for source_id in ("pg", "pg_uri", "lake", "lake_cs"):
        connector = session.run(registry.get_connector(source_id))
        objects += [connector, connector.context, connector.context.secrets, connector.options]
    objects.append(Secret(planted.password))
    objects.append(
        DataSourceConfig("raw", "postgresql", {"dsn": planted.uri}, {"password": planted.password})
    )
    for value in objects:
        book.check(f"show {type(value).__name__}", _shown(value))


def test_secrets_refuse_pickling_and_copy_as_themselves(planted: Planted) -> None:
    secret = Secret(planted.password)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(DataSourceConfig("c", "postgresql", secrets={"password": planted.password}))
    assert copy.copy(secret) is secret
    assert copy.deepcopy(secret) is secret
    assert f"{secret:>40}" == MASK
    planted.book.check("pickle refusal", repr(secret), str(secret))


def test_managers_and_redactors_never_show_what_they_hold(planted: Planted) -> None:
    manager = CredentialManager()
    sealed = manager.seal({"password": Secret(planted.password)}, source="src")
    redactor = Redactor()
    redactor.add("src", [planted.sas_connection_string, planted.uri])
    assert redactor.redact(planted.sas_connection_string).count(MASK) >= 1
    planted.book.check("show CredentialManager, EncryptedSecrets, Redactor", _shown(manager), _shown(sealed))
    masked = redactor.redact(f"{planted.uri} {planted.sas_connection_string}")
    planted.book.check("show Redactor", _shown(redactor), masked)
