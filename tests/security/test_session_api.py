"""The Session and registry API with canary secrets: every operation and every error path.

Secrets given to the API may sit inside other values (a DSN, a URI, an account URL, a
connection string); each of those is a placement of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.errors import (
    AuthenticationFailed,
    ConfigurationError,
    ConnectionFailed,
    DataSourceError,
    ItemNotFound,
    QueryError,
)
from deepanalyze_jupyter.redaction import MASK
from tests.security.conftest import Planted

#: The placements whose canary lets a source in.
WORKING_PLACEMENTS = (
    "PostgreSQL password",
    "PostgreSQL SSL key password",
    "password in a key=value DSN",
    "password in a postgresql:// URI",
    "container SAS token",
    "SAS sig= in an account URL",
    "SharedAccessSignature in a connection string",
)


@pytest.fixture
def session() -> Iterator[Session]:
    with Session() as made:
        yield made


def _working_sources(planted: Planted) -> dict[str, tuple[str, dict[str, Any]]]:
    """Sources whose canary is the secret that lets them in."""
    return {
        "pg": (
            "postgresql",
            planted.pg_options(secrets={"password": planted.password, "sslpassword": planted.sslpassword}),
        ),
        "pg_dsn": ("postgresql", {"dsn": planted.dsn}),
        "pg_uri": ("postgresql", {"dsn": planted.uri, "options": f"-c search_path={planted.schema}"}),
        "lake": (
            "azure_blob",
            {
                "account_url": planted.blob_endpoint,
                "container": planted.container,
                "secrets": {"sas_token": planted.sas_token},
            },
        ),
        "lake_url": ("azure_blob", {"account_url": planted.sas_url}),
        "lake_cs": (
            "azure_blob",
            {"container": planted.container, "secrets": {"connection_string": planted.sas_connection_string}},
        ),
    }


def _read(session: Session, source_id: str, planted: Planted) -> Any:
    if source_id.startswith("pg"):
        frame = session.query(source_id, f"SELECT * FROM {planted.schema}.orders ORDER BY id")
        assert list(frame["id"]) == [1, 2]
        return frame
    path = f"{planted.container}/2024/*.csv" if source_id == "lake_url" else "2024/*.csv"
    frame = session.read(source_id, path)
    assert sorted(frame["amount"]) == [10, 20]
    return frame


def test_every_operation_on_working_sources(session: Session, planted: Planted, debug_log: list[str]) -> None:
    book = planted.book
    for source_id, (source_type, options) in _working_sources(planted).items():
        config = session.add(source_id, source_type, **options)
        book.check("Session.add result", config, config.to_dict(), repr(config))
        book.check("Session.test", session.test(source_id))
        book.check("Session.list_items", session.list_items(source_id).to_string())
        frame = _read(session, source_id, planted)
        book.check("Session.query / Session.read", frame.to_string(), frame.to_html(), frame.attrs)
        if not source_id.startswith("pg"):
            path = f"{planted.container}/2024/*.csv" if source_id == "lake_url" else "2024/*.csv"
            batches = list(session.read_batches(source_id, path, rows=1, output="pandas"))
            assert sorted(int(batch["amount"].iloc[0]) for batch in batches) == [10, 20]
            book.check("Session.read_batches", [batch.to_string() for batch in batches])
        item = f"{planted.schema}.orders" if source_id.startswith("pg") else "2024/jan.csv"
        if source_id == "lake_url":
            item = f"{planted.container}/{item}"
        book.check("Session.describe", session.describe(source_id, item).to_string())
        stored = session.registry.get_config(source_id)
        assert stored.secrets
        assert all(secret.reveal() == MASK for secret in stored.secrets.values())
        book.check(
            "registry.get_config",
            stored,
            stored.to_dict(),
            stored.options,
            session.registry.get_config(source_id, decrypt=True),
        )
        book.check("registry.status", session.registry.status(source_id))
    book.check("Session.sources", session.sources().to_string(), session.sources().to_html())
    assert list(session.sources()["status"]) == ["connected"] * 6
    # The registry watches every secret it was given, whole or as the part that is secret.
    working = [book.value(placement) for placement in WORKING_PLACEMENTS]
    book.check("Redactor.redact of the registered secrets", session.redactor.redact(" ".join(working)))
    session.update("pg", secrets={"password": planted.password})
    session.update("lake", name="Lake", secrets={"sas_token": planted.sas_token})
    for source_id in list(session.registry.source_ids):
        session.remove(source_id)
    book.check("logging at DEBUG (API)", debug_log)


def _failures(planted: Planted) -> dict[str, tuple[type[DataSourceError], Callable[[Session], Any]]]:
    """Each error path, with the error it must raise."""
    pg = planted.pg_options()
    lake = {"account_url": planted.blob_endpoint, "container": planted.container}
    return {
        "wrong password": (
            AuthenticationFailed,
            lambda s: s.add("x", "postgresql", secrets={"password": planted.wrong_password}, **pg),
        ),
        "unreachable DSN": (
            ConnectionFailed,
            lambda s: s.add("x", "postgresql", dsn=planted.unreachable_dsn),
        ),
        "account key in a connection string": (
            AuthenticationFailed,
            lambda s: s.add(
                "x",
                "azure_blob",
                container=planted.container,
                secrets={"connection_string": planted.key_connection_string},
            ),
        ),
        "account key": (
            AuthenticationFailed,
            lambda s: s.add(
                "x",
                "azure_blob",
                account_url=planted.blob_endpoint,
                secrets={"account_key": planted.account_key},
            ),
        ),
        "tampered SAS token": (
            AuthenticationFailed,
            lambda s: s.add("x", "azure_blob", secrets={"sas_token": planted.tampered_sas}, **lake),
        ),
        "tampered SAS in the account URL": (
            AuthenticationFailed,
            lambda s: s.add(
                "x",
                "azure_blob",
                account_url=f"{planted.blob_endpoint}/{planted.container}?{planted.tampered_sas}",
            ),
        ),
        "bad SQL": (QueryError, lambda s: s.query("pg", "SELEC 1")),
        "bad SQL quoting a secret": (QueryError, lambda s: s.query("pg", f"SELECT '{planted.password}' + 1")),
        "missing table": (QueryError, lambda s: s.query("pg", "SELECT * FROM no_such_table")),
        "missing blob": (ItemNotFound, lambda s: s.read("lake", "missing.csv")),
        "missing blob glob": (ItemNotFound, lambda s: s.read("lake", "nowhere/*.csv")),
        "wrong password on update": (
            AuthenticationFailed,
            lambda s: s.update("pg", secrets={"password": planted.wrong_password}),
        ),
        "tampered SAS on update": (
            AuthenticationFailed,
            lambda s: s.update("lake", secrets={"sas_token": planted.tampered_sas}),
        ),
        "a source added without a test": (
            ConnectionFailed,
            lambda s: s.query("later", "SELECT 1"),
        ),
    }


def test_every_error_path_names_the_source_and_no_secret(
    session: Session, planted: Planted, debug_log: list[str]
) -> None:
    book = planted.book
    session.add("pg", "postgresql", secrets={"password": planted.password}, **planted.pg_options())
    session.add(
        "lake",
        "azure_blob",
        account_url=planted.blob_endpoint,
        container=planted.container,
        secrets={"sas_token": planted.sas_token},
    )
    session.add(
        "later",
        "postgresql",
        test=False,
        host="127.0.0.1",
        port=planted.unreachable_port,
        connect_timeout=3,
        secrets={"password": planted.no_test_password},
    )
    before = session.sources()[["id", "type", "name"]]
    for what, (error_type, action) in _failures(planted).items():
        with pytest.raises(error_type) as caught:
            action(session)
        error = caught.value
        assert error.source in {"x", "pg", "lake", "later"}, (what, error)
        assert str(error).startswith(f"{error.source}: "), (what, str(error))
        assert len(str(error).splitlines()) == 1, (what, str(error))
        book.check(f"error: {what}", error)
    assert session.sources()[["id", "type", "name"]].equals(before)
    assert "error: " in session.registry.status("later")
    book.check("Session.sources after errors", session.sources().to_string())
    # The sources that were refused an update still work with their own secrets.
    assert list(session.query("pg", "SELECT 1 AS one")["one"]) == [1]
    assert len(session.list_items("lake", refresh=True)) == 1
    book.check("logging at DEBUG (API errors)", debug_log)


def test_write_paths_name_the_source_and_no_secret(
    session: Session, planted: Planted, debug_log: list[str]
) -> None:
    book = planted.book
    frame = pd.DataFrame({"id": [1], "note": [planted.password]})  # a value that is a secret stays data
    session.add("pg", "postgresql", secrets={"password": planted.password}, **planted.pg_options())
    session.add(
        "pg_rw",
        "postgresql",
        read_only=False,
        secrets={"password": planted.password},
        **planted.pg_options(),
    )
    lake = {"account_url": planted.blob_endpoint, "container": planted.container}
    session.add("lake", "azure_blob", secrets={"sas_token": planted.sas_token}, **lake)
    session.add("lake_rw", "azure_blob", read_only=False, secrets={"sas_token": planted.sas_token}, **lake)
    failures: dict[str, tuple[type[DataSourceError], Callable[[], Any]]] = {
        "write to a read-only table source": (ConfigurationError, lambda: session.write("pg", "t", frame)),
        "write to a read-only blob source": (
            ConfigurationError,
            lambda: session.write("lake", "t.csv", frame),
        ),
        "write without the privilege to create": (
            QueryError,
            lambda: session.write("pg_rw", f"{planted.schema}.made", frame),
        ),
        "append to a table without the privilege": (
            QueryError,
            lambda: session.write("pg_rw", f"{planted.schema}.orders", frame[["id"]], mode="append"),
        ),
        "write a blob with a read-only SAS": (
            AuthenticationFailed,
            lambda: session.write("lake_rw", "made.csv", frame),
        ),
        "write a frame with duplicate names": (
            ConfigurationError,
            lambda: session.write("pg_rw", "t", frame.rename(columns={"note": "id"})),
        ),
        "export into a read-only blob source": (
            ConfigurationError,
            lambda: session.export_files("lake", "2024/*.csv", "dsrc://lake/all.csv"),
        ),
        "export into a blob with a read-only SAS": (
            AuthenticationFailed,
            lambda: session.export_files("lake", "2024/*.csv", "dsrc://lake_rw/all.csv"),
        ),
    }
    for what, (error_type, action) in failures.items():
        with pytest.raises(error_type) as caught:
            action()
        error = caught.value
        assert str(error).startswith(f"{error.source}: "), (what, str(error))
        assert "nothing was written" in str(error) or "duplicate" in str(error), (what, str(error))
        assert len(str(error).splitlines()) == 1, (what, str(error))
        book.check(f"error: {what}", error)
    book.check("logging at DEBUG (writes)", debug_log)
