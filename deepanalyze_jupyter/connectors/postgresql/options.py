"""The options of a PostgreSQL source: what each means, and the lowest value each takes."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ...models import OptionSpec
from .dsn import DEFAULT_APPLICATION_NAME, DEFAULT_CONNECT_TIMEOUT

__all__ = ["LOWEST_VALUES", "OPTION_SPECS"]

_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

OPTION_SPECS: tuple[OptionSpec, ...] = (
    OptionSpec("host", help="Server host name, IP address or socket directory (libpq default if unset)"),
    OptionSpec("port", int, help="Server port (5432 if unset)"),
    OptionSpec("dbname", help="Database name (the user name if unset)", label="Database"),
    OptionSpec("user", help="User name (the operating-system user if unset)"),
    OptionSpec("password", secret=True, help="Password (unneeded with .pgpass, trust, peer or certificates)"),
    OptionSpec(
        "dsn",
        help="A full connection string: postgresql:// URI or key=value pairs; a password in it "
        "is stored as the secret",
        label="Connection string",
    ),
    OptionSpec("sslmode", choices=_SSL_MODES, help="TLS mode (libpq default: prefer)", label="SSL mode"),
    OptionSpec("sslrootcert", help="File of the certificate authorities to trust", label="SSL root cert"),
    OptionSpec("sslcert", help="Client certificate file", label="SSL certificate"),
    OptionSpec("sslkey", help="Client private key file", label="SSL key"),
    OptionSpec("sslpassword", secret=True, help="Passphrase of the client key", label="SSL key password"),
    OptionSpec("connect_timeout", int, help=f"Seconds to wait for a connection ({DEFAULT_CONNECT_TIMEOUT})"),
    OptionSpec("application_name", help=f"Name shown in pg_stat_activity ({DEFAULT_APPLICATION_NAME})"),
    OptionSpec("options", help="Server options for the session, e.g. '-c search_path=sales'"),
    OptionSpec(
        "set",
        repeatable=True,
        help="A server setting for every query, name=value (e.g. timezone=UTC); repeatable",
        label="Settings",
    ),
    OptionSpec("read_only", bool, default=True, help="Sessions cannot write (enforced by the server)"),
    OptionSpec("statement_timeout", float, help="Cancel statements running longer (seconds)"),
    OptionSpec("numeric_as_float", bool, default=False, help="Read numeric columns as float64, not exact"),
    OptionSpec("pool_max_size", int, default=2, help="Most connections open at once"),
    OptionSpec(
        "pool_timeout", float, default=30.0, help="Seconds a query waits when every connection is busy"
    ),
    OptionSpec("max_idle", float, default=60.0, help="Seconds after which an unused connection is closed"),
)
LOWEST_VALUES: Mapping[str, float] = MappingProxyType(
    {
        "port": 1,
        "connect_timeout": 1,
        "pool_max_size": 1,
        "statement_timeout": 0,
        "pool_timeout": 0,
        "max_idle": 1,
    }
)
