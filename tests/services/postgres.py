"""A real PostgreSQL server for the test session.

Either a throwaway cluster made with this machine's initdb/pg_ctl in a temporary directory, or an
existing server named by the DEEPANALYZE_TEST_PG_DSN environment variable.
"""

from __future__ import annotations

import atexit
import getpass
import os
import pwd
import secrets
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.services.process import CleanupAfterExit, ServiceUnavailable, free_loopback_port

EXTERNAL_DSN_ENV = "DEEPANALYZE_TEST_PG_DSN"
TEST_DATABASE = "deepanalyze_test"
SUPERUSER = "postgres"

_SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
_VERSIONED_INSTALLS = Path("/usr/lib/postgresql")
_INSTALL_HINT = (
    "install the server with `apt-get install postgresql`, "
    f"or set {EXTERNAL_DSN_ENV} to the DSN of an existing server"
)
# Durability is traded for speed: the cluster is thrown away after the session.
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "shared_preload_libraries": "'pg_stat_statements'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


@dataclass
class PostgresServer:
    """Where the test server listens and how to log in to it as a superuser.

    `stop()` and `start()` restart a server this session started (same data, same port); on an
    external server they skip the calling test.
    """

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    dbname: str
    # Further libpq parameters of an external DSN, such as sslmode.
    options: dict[str, str] = field(default_factory=dict, repr=False)
    _cluster: _Cluster | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_dsn(cls, dsn: str) -> PostgresServer:
        """Describe an existing server from a libpq DSN (key=value or URI)."""
        params = {key: str(value) for key, value in conninfo_to_dict(dsn).items() if value}
        user = params.pop("user", getpass.getuser())
        return cls(
            host=params.pop("host", "localhost"),
            port=int(params.pop("port", "5432")),
            user=user,
            password=params.pop("password", ""),
            dbname=params.pop("dbname", user),
            options=params,
        )

    @property
    def external(self) -> bool:
        """True when the server was not started by this session."""
        return self._cluster is None

    @property
    def dsn(self) -> str:
        """A key=value connection string, password included."""
        return make_conninfo(
            "",
            host=self.host,
            port=str(self.port),
            user=self.user,
            password=self.password,
            dbname=self.dbname,
            **self.options,
        )

    @property
    def uri(self) -> str:
        """A postgresql:// URI, password included."""
        query = dict(self.options)
        host = self.host
        if host.startswith("/"):
            query["host"] = host
            host = ""
        elif ":" in host:
            host = f"[{host}]"
        userinfo = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        uri = f"postgresql://{userinfo}@{host}:{self.port}/{quote(self.dbname, safe='')}"
        return f"{uri}?{urlencode(query)}" if query else uri

    def admin_connection(self, dbname: str | None = None) -> psycopg.Connection[tuple[Any, ...]]:
        """A new autocommit superuser connection to the test database (or `dbname`).

        Close it, e.g. with `with server.admin_connection() as conn: ...`.
        """
        conninfo = make_conninfo(self.dsn, dbname=dbname or self.dbname)
        return psycopg.connect(conninfo, autocommit=True)

    def is_running(self) -> bool:
        """True when the server accepts connections (or, if ours, its postmaster is up)."""
        if self._cluster is not None:
            return self._cluster.is_running()
        try:
            psycopg.connect(make_conninfo(self.dsn, connect_timeout=3)).close()
        except psycopg.OperationalError:
            return False
        return True

    def stop(self, *, crash: bool = False) -> None:
        """Stop the server, ending every connection; `start()` brings it back with its data.

        `crash=True` kills it instead (pg_ctl's immediate mode); since commits are
        asynchronous here, the last fraction of a second of commits may then be lost.
        """
        cluster = self._own_cluster("stop")
        if cluster.is_running():
            cluster.stop(mode="immediate" if crash else "fast")

    def start(self) -> None:
        """Start the server again after `stop()`, on the same port with the same data."""
        cluster = self._own_cluster("start")
        if not cluster.is_running():
            cluster.start()

    def close(self) -> None:
        """Stop the server for good and delete its files. Does nothing for an external server."""
        atexit.unregister(self.close)
        if self._cluster is not None:
            self._cluster.remove()

    def _own_cluster(self, action: str) -> _Cluster:
        if self._cluster is None:
            pytest.skip(
                f"cannot {action} the external PostgreSQL server given by {EXTERNAL_DSN_ENV}; "
                "restart tests need the server the test session starts itself"
            )
        return self._cluster


def start_postgres() -> PostgresServer:
    """The server named by DEEPANALYZE_TEST_PG_DSN, else a new throwaway cluster, running.

    Raises ServiceUnavailable when the PostgreSQL server programs are not installed.
    """
    dsn = os.environ.get(EXTERNAL_DSN_ENV, "").strip()
    if dsn:
        return PostgresServer.from_dsn(dsn)
    return start_own_postgres()


def start_own_postgres() -> PostgresServer:
    """A new throwaway cluster, running, whatever DEEPANALYZE_TEST_PG_DSN says.

    For the tests that stop and restart the server, which cannot do that to an external one.
    Raises ServiceUnavailable when the PostgreSQL server programs are not installed.
    """
    cluster = _Cluster(find_server_programs(), free_loopback_port())
    server = PostgresServer(
        host="127.0.0.1",
        port=cluster.port,
        user=SUPERUSER,
        password=secrets.token_urlsafe(24),
        dbname=TEST_DATABASE,
        _cluster=cluster,
    )
    atexit.register(server.close)
    try:
        cluster.create(server.password)
        cluster.start()
        with server.admin_connection(dbname="postgres") as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEST_DATABASE)))
        with server.admin_connection() as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
    except BaseException:
        server.close()
        raise
    return server


def find_server_programs() -> Path:
    """The directory holding initdb, pg_ctl and postgres.

    Looks on PATH first, then in /usr/lib/postgresql/*/bin (Debian's layout), highest version first.
    """
    candidates: list[Path] = []
    initdb = shutil.which("initdb")
    if initdb is not None:
        candidates.append(Path(initdb).resolve().parent)
    candidates += sorted(_VERSIONED_INSTALLS.glob("*/bin"), key=_major_version, reverse=True)
    for bin_dir in candidates:
        if all(os.access(bin_dir / program, os.X_OK) for program in _SERVER_PROGRAMS):
            return bin_dir
    raise ServiceUnavailable(
        f"PostgreSQL server programs ({', '.join(_SERVER_PROGRAMS)}) not found on PATH "
        f"or in {_VERSIONED_INSTALLS}/*/bin; {_INSTALL_HINT}"
    )


def _major_version(bin_dir: Path) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in bin_dir.parent.name.split("."))
    except ValueError:
        return ()


def _server_owner() -> tuple[int, int] | None:
    """The (uid, gid) to run the server programs as: PostgreSQL refuses to run as root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise ServiceUnavailable(
            f"running as root, the PostgreSQL server must run as the OS user `{SUPERUSER}`, "
            f"which does not exist; {_INSTALL_HINT}"
        ) from None
    return entry.pw_uid, entry.pw_gid


class _Cluster:
    """A PostgreSQL cluster in a temporary directory, controlled with pg_ctl."""

    def __init__(self, bin_dir: Path, port: int) -> None:
        self._bin_dir = bin_dir
        self._owner = _server_owner()
        self.port = port
        self.base_dir = Path(tempfile.mkdtemp(prefix="deepanalyze-pg-"))
        self.data_dir = self.base_dir / "data"
        self.log_file = self.base_dir / "server.log"
        if self._owner is not None:
            os.chown(self.base_dir, *self._owner)
        stop_now = shlex.join(self._argv("pg_ctl", "--pgdata", str(self.data_dir), "-m", "immediate", "stop"))
        uid, gid = self._owner if self._owner is not None else (None, None)
        self._cleanup: CleanupAfterExit | None = CleanupAfterExit(
            f"{stop_now} >/dev/null 2>&1; rm -rf {shlex.quote(str(self.base_dir))}",
            uid=uid,
            gid=gid,
        )

    def create(self, password: str) -> None:
        """initdb with a superuser password, then configure the cluster for tests."""
        password_file = self.base_dir / "superuser-password"
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        if self._owner is not None:
            os.chown(password_file, *self._owner)
        try:
            self._run(
                "initdb",
                "--pgdata",
                str(self.data_dir),
                "--username",
                SUPERUSER,
                f"--pwfile={password_file}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
        finally:
            password_file.unlink()
        settings = {
            **_SETTINGS,
            "port": str(self.port),
            "unix_socket_directories": f"'{self.base_dir}'",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# Throwaway cluster for the test session.\n")
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "--pgdata",
            str(self.data_dir),
            "--log",
            str(self.log_file),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str) -> None:
        self._run("pg_ctl", "--pgdata", str(self.data_dir), "-m", mode, "-w", "stop")

    def is_running(self) -> bool:
        status = self._run("pg_ctl", "--pgdata", str(self.data_dir), "status", check=False)
        return status.returncode == 0

    def remove(self) -> None:
        """Stop the server if it runs and delete the directory; safe to call twice."""
        if self._cleanup is None:
            return
        try:
            if self.data_dir.exists() and self.is_running():
                self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self._cleanup.cancel()
            self._cleanup = None

    def _argv(self, program: str, *args: str) -> list[str]:
        return [str(self._bin_dir / program), *args]

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = self._argv(program, *args)
        run_as: dict[str, Any] = {}
        if self._owner is not None:
            run_as = {"user": self._owner[0], "group": self._owner[1], "extra_groups": []}
        # libpq variables of the caller (PGPORT, PGDATA...) must not steer the throwaway cluster.
        env = {name: value for name, value in os.environ.items() if not name.startswith("PG")}
        result = subprocess.run(
            argv,
            cwd=self.base_dir,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            **run_as,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{shlex.join(argv)} exited with {result.returncode}:\n"
                f"{result.stdout}{result.stderr}{self._log_tail()}"
            )
        return result

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "server log (end):\n" + "\n".join(text.splitlines()[-lines:])
