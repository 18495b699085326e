"""Canaries planted in every place a secret can live, working ones and failing ones.

Working canaries ARE the secret a real service takes: PostgreSQL roles whose passwords are
canaries, and SAS tokens signed with the blob service's key (their ``sig=`` is unique).
Failing canaries sit in registrations that cannot work: a wrong password, a DSN to a closed
port, an account key the service refuses, a tampered SAS, a source added without a test.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import (
    AccountSasPermissions,
    BlobServiceClient,
    ContainerSasPermissions,
    ResourceTypes,
    generate_account_sas,
    generate_container_sas,
)
from IPython.core.interactiveshell import InteractiveShell
from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpecManager
from jupyter_client.manager import KernelManager
from psycopg import sql
from psycopg.conninfo import make_conninfo
from traitlets.config import Config

from tests.security.canaries import CanaryBook
from tests.security.kernel import TIMEOUT, SpiedKernel
from tests.services import AzuriteServer, PostgresServer

EXTENSION = "deepanalyze_jupyter"
_BOOK_KEY = pytest.StashKey[CanaryBook]()


@dataclass(frozen=True)
class Planted:
    """The services' coordinates and every canary, by where it lives."""

    book: CanaryBook
    host: str
    port: int
    dbname: str
    #: A schema holding table ``orders`` that every canary role may read.
    schema: str
    role: str
    password: str
    sslpassword: str
    dsn: str
    uri: str
    blob_endpoint: str
    #: A container holding ``2024/jan.csv`` and ``2024/feb.csv``.
    container: str
    sas_token: str
    sas_url: str
    sas_connection_string: str
    wrong_password: str
    unreachable_dsn: str
    unreachable_password: str
    unreachable_port: int
    key_connection_string: str
    account_key: str
    tampered_sas: str
    no_test_password: str
    #: A wrong password holding quotes, a backslash, ``&<>`` and URL characters: every
    #: escaping (repr, HTML, JSON, URL) changes it, so each escaped form is searched apart.
    escaped_password: str

    def pg_options(self, **extra: Any) -> dict[str, Any]:
        """Options reaching the canary schema as the first canary role (password apart)."""
        return {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.role,
            "options": f"-c search_path={self.schema}",
            **extra,
        }


def _closed_port() -> int:
    """A loopback port nothing listens on (taken and released at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _expiry(hours: int = 2) -> datetime:
    """A SAS expiry; SAS tokens made alike within one second differ only by it."""
    return datetime.now(timezone.utc) + timedelta(hours=hours)


@pytest.fixture(scope="session")
def canary_book(request: pytest.FixtureRequest) -> CanaryBook:
    """The run's canaries and the count of checks made against them."""
    book = CanaryBook()
    request.config.stash[_BOOK_KEY] = book
    return book


@pytest.fixture(scope="session")
def planted(canary_book: CanaryBook, pg_server: PostgresServer, azurite: AzuriteServer) -> Iterator[Planted]:
    """Roles, a schema, a container and tokens whose secrets are canaries; removed afterwards."""
    book = canary_book
    tag = secrets.token_hex(4)
    schema, roles = f"canary_{tag}", [f"canary_{tag}_{n}" for n in ("a", "b", "c")]
    password = book.make("PostgreSQL password")
    dsn_password = book.make("password in a key=value DSN")
    uri_password = book.make("password in a postgresql:// URI")
    with pg_server.admin_connection() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, region text)").format(
                sql.Identifier(schema, "orders")
            )
        )
        conn.execute(
            sql.SQL("INSERT INTO {} VALUES (1, 'EU'), (2, 'US')").format(sql.Identifier(schema, "orders"))
        )
        for role, secret in zip(roles, (password, dsn_password, uri_password), strict=True):
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(secret))
            )
            conn.execute(
                sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(*map(sql.Identifier, (schema, role)))
            )
            conn.execute(
                sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(
                    *map(sql.Identifier, (schema, role))
                )
            )
    container = f"canary-{tag}"
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        box = service.create_container(container)
        box.upload_blob("2024/jan.csv", b"id,amount\n1,10\n")
        box.upload_blob("2024/feb.csv", b"id,amount\n2,20\n")
    key = azurite.account_key
    sas_token = book.plant(
        "container SAS token",
        generate_container_sas(
            azurite.account_name,
            container,
            account_key=key,
            permission=ContainerSasPermissions(read=True, list=True),
            expiry=_expiry(),
        ),
    )
    account_sas = book.plant(
        "SAS sig= in an account URL",
        generate_account_sas(
            azurite.account_name,
            key,
            resource_types=ResourceTypes(service=True, container=True, object=True),
            permission=AccountSasPermissions(read=True, list=True),
            expiry=_expiry(),
        ),
    )
    connection_sas = book.plant(
        "SharedAccessSignature in a connection string",
        generate_container_sas(
            azurite.account_name,
            container,
            account_key=key,
            permission=ContainerSasPermissions(read=True, list=True),
            expiry=_expiry(hours=3),
        ),
    )
    real_sig = sas_token.rsplit("sig=", 1)[1]
    tampered_sig = book.make("tampered SAS token signature")
    closed = _closed_port()
    unreachable_password = book.make("password of an unreachable DSN")
    planted = Planted(
        book=book,
        host=pg_server.host,
        port=pg_server.port,
        dbname=pg_server.dbname,
        schema=schema,
        role=roles[0],
        password=password,
        sslpassword=book.make("PostgreSQL SSL key password"),
        dsn=make_conninfo(
            "",
            host=pg_server.host,
            port=str(pg_server.port),
            dbname=pg_server.dbname,
            user=roles[1],
            password=dsn_password,
            options=f"-c search_path={schema}",
        ),
        uri=f"postgresql://{roles[2]}:{uri_password}@{pg_server.host}:{pg_server.port}/{pg_server.dbname}",
        blob_endpoint=azurite.blob_endpoint,
        container=container,
        sas_token=sas_token,
        sas_url=f"{azurite.blob_endpoint}?{account_sas}",
        sas_connection_string=(
            f"BlobEndpoint={azurite.blob_endpoint};SharedAccessSignature={connection_sas}"
        ),
        wrong_password=book.make("wrong PostgreSQL password"),
        unreachable_dsn=f"host=127.0.0.1 port={closed} dbname=nowhere user=nobody "
        f"password={unreachable_password} connect_timeout=3",
        unreachable_password=unreachable_password,
        unreachable_port=closed,
        key_connection_string=(
            f"DefaultEndpointsProtocol=http;AccountName={azurite.account_name};"
            f"AccountKey={book.make('AccountKey in a connection string', base64_key=True)};"
            f"BlobEndpoint={azurite.blob_endpoint};"
        ),
        account_key=book.make("storage account key", base64_key=True),
        tampered_sas=sas_token.replace(real_sig, tampered_sig),
        no_test_password=book.make("password of a source added with --no-test"),
        escaped_password=book.make("wrong password with quotes, backslash and HTML characters", special=True),
    )
    # Fixed secrets of the test services: they must never show either.
    book.plant("Azurite account key (fixed)", key)
    book.plant("PostgreSQL superuser password (fixed)", pg_server.password)
    yield planted
    with pg_server.admin_connection() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY(%s)", [roles]
        )
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        for role in roles:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        service.delete_container(container)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Say how many placement x operation checks the canary suite made."""
    book = config.stash.get(_BOOK_KEY, None)
    if book is not None and book.operations:
        terminalreporter.write_line(book.summary())


# -- logging at DEBUG ------------------------------------------------------------------------


class _Records(logging.Handler):
    """Keeps every record, formatted with its exception, at any level."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def debug_log() -> Iterator[list[str]]:
    """Every log line of every library at DEBUG while the test runs."""
    handler = _Records()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


# -- a real IPython shell ----------------------------------------------------------------------


@dataclass
class Ran:
    """What running one cell gave: its value, its displayed forms, its printed text, its error."""

    code: str
    result: Any
    shown: dict[str, Any]
    out: str
    err: str
    error: BaseException | None


@dataclass
class Shell:
    """A real IPython shell with the extension loaded; every cell run is kept for the checks."""

    ipython: InteractiveShell
    history_file: Path
    ran: list[Ran]

    def run(self, code: str) -> Ran:
        """Run ``code`` as a cell kept in the history, as a user's would be."""
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            result = self.ipython.run_cell(code, store_history=True)
        value = result.result
        shown = self.ipython.display_formatter.format(value)[0] if value is not None else {}
        ran = Ran(
            code,
            value,
            shown,
            out.getvalue(),
            err.getvalue(),
            result.error_in_exec or result.error_before_exec,
        )
        self.ran.append(ran)
        return ran

    def ok(self, code: str) -> Ran:
        """Run ``code``; it must succeed."""
        ran = self.run(code)
        assert ran.error is None, (code, ran.error, ran.err)
        return ran

    def refused(self, code: str) -> str:
        """Run ``code``; it must fail with a one-line UsageError, which is returned."""
        ran = self.run(code)
        assert type(ran.error).__name__ == "UsageError", (code, ran.error, ran.err)
        lines = ran.err.strip().splitlines()
        assert len(lines) == 1, (code, ran.err)
        assert "Traceback" not in ran.out + ran.err
        return lines[0].removeprefix("UsageError: ")

    def history_texts(self) -> list[object]:
        """Every copy of the input (and output) history the shell keeps in memory."""
        manager = self.ipython.history_manager
        namespace = self.ipython.user_ns
        inputs = [name for name in namespace if name.startswith("_i")]
        return [
            manager.input_hist_raw,
            manager.input_hist_parsed,
            manager.db_input_cache,
            namespace.get("In"),
            [namespace[name] for name in inputs],
            [repr(value) for value in manager.output_hist.values()],
        ]


@pytest.fixture(scope="session")
def ipython(tmp_path_factory: pytest.TempPathFactory) -> InteractiveShell:
    """One real shell whose history (input and output) goes to an SQLite file of its own."""
    directory = tmp_path_factory.mktemp("security-ipython")
    config = Config()
    config.HistoryManager.hist_file = str(directory / "history.sqlite")
    config.HistoryManager.db_log_output = True
    return InteractiveShell(config=config, ipython_dir=str(directory))


@pytest.fixture
def shell(ipython: InteractiveShell) -> Iterator[Shell]:
    """The shell with the extension loaded on a fresh session."""
    ipython.reset(new_session=True)
    ipython.extension_manager.load_extension(EXTENSION)
    yield Shell(ipython, Path(ipython.history_manager.hist_file), [])
    ipython.extension_manager.unload_extension(EXTENSION)


# -- a real kernel, every message kept ---------------------------------------------------------

#: Environment variables of the spied kernel, and the Planted attribute each holds.
KERNEL_ENV = {
    "CANARY_PASSWORD": "password",
    "CANARY_DSN": "dsn",
    "CANARY_WRONG": "wrong_password",
    "CANARY_ESCAPED": "escaped_password",
    "CANARY_UNREACHABLE_DSN": "unreachable_dsn",
    "CANARY_SAS": "sas_token",
    "CANARY_TAMPERED_SAS": "tampered_sas",
}


@pytest.fixture
def spied_kernel(planted: Planted, tmp_path: Path) -> Iterator[SpiedKernel]:
    """A kernel at ``--debug`` (its log in a file) with the extension loaded and the canaries
    in its environment; every message it sends is kept."""
    environment = {
        **os.environ,
        "IPYTHONDIR": str(tmp_path / "ipython"),
        **{variable: str(getattr(planted, attribute)) for variable, attribute in KERNEL_ENV.items()},
    }
    manager = KernelManager(
        kernel_name=NATIVE_KERNEL_NAME,
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True),
    )
    log_file = tmp_path / "kernel.log"
    with log_file.open("wb") as log:
        manager.start_kernel(env=environment, cwd=str(tmp_path), extra_arguments=["--debug"], stderr=log)
    client = manager.blocking_client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=TIMEOUT)
        history = tmp_path / "ipython" / "profile_default" / "history.sqlite"
        kernel = SpiedKernel(client, log_file, history)
        kernel.ok("%load_ext deepanalyze_jupyter")
        yield kernel
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
