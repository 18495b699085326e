"""Fake connectors for the magics' unit tests: an SQL one and a file one, no network.

The SQL fake answers every query with one row holding the SQL text and the parameters
it was given (so a test sees exactly what was bound), or ``n`` rows for ``ROWS n``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from deepanalyze_jupyter.connectors import Connector
from deepanalyze_jupyter.errors import AuthenticationFailed, ConnectionFailed, ItemNotFound, QueryError
from deepanalyze_jupyter.frames import mark_result
from deepanalyze_jupyter.models import OptionSpec

GOOD_PASSWORD = "correct-horse-battery"
FILES = ("2024/01.csv", "2024/02.csv", "2025/01.csv", "readme.txt")


def _limited(frame: pd.DataFrame, source: str, limit: int | None) -> pd.DataFrame:
    truncated = limit is not None and len(frame) > limit
    return mark_result(
        frame.head(limit) if truncated else frame, source=source, truncated=truncated, limit=limit
    )


class FakeSql(Connector):
    """An SQL source at host ``ok``; host ``down`` cannot be reached."""

    type_name = "fakesql"
    display_name = "Fake SQL"
    kind = "sql"
    option_specs = (
        OptionSpec("host", str, "server name", required=True),
        OptionSpec("port", int, "server port", default=5432),
        OptionSpec("user", str, "login name"),
        OptionSpec("dsn", str, "a connection string"),
        OptionSpec("password", str, "login password", secret=True),
        OptionSpec("read_only", bool, "refuse writes", default=True),
    )

    async def connect(self) -> None:
        if self.options["host"] == "down":
            raise ConnectionFailed("cannot reach down:5432 (connection refused)", source=self.source_id)
        password = self.context.secrets.reveal("password")
        if password is not None and password != GOOD_PASSWORD:
            raise AuthenticationFailed("password authentication failed", source=self.source_id)

    async def disconnect(self) -> None:
        return None

    async def test_connection(self) -> str:
        return f"Fake SQL at {self.options['host']}:{self.options['port']}"

    async def list_items(
        self, prefix: str | None = None, *, recursive: bool = False, limit: int | None = None
    ) -> pd.DataFrame:
        frame = pd.DataFrame(
            {"schema": ["public", "public"], "name": ["orders", "customers"], "kind": "table"}
        )
        if prefix:
            frame = frame[frame["schema"] == prefix]
        return _limited(frame, self.source_id, limit)

    async def describe(self, item: str) -> pd.DataFrame:
        if item != "orders":
            raise ItemNotFound(f"table {item!r} does not exist", source=self.source_id)
        return pd.DataFrame({"name": ["id", "region"], "type": ["integer", "text"]})

    async def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> pd.DataFrame:
        if sql.startswith("FAIL"):
            raise QueryError('syntax error at or near "FAIL"', source=self.source_id)
        if sql.startswith("BUG"):
            raise ValueError("a bug with a dsn postgresql://bob:leaky-secret-77@db/x inside")
        if sql.startswith("ROWS "):
            frame = pd.DataFrame({"n": range(int(sql.split()[1]))})
        else:
            row: dict[str, Any] = {"sql": sql, "timeout": timeout, **dict(params or {})}
            frame = pd.DataFrame([row])
        return _limited(frame, self.source_id, limit)


class FakeFiles(Connector):
    """A file source holding :data:`FILES`; reading gives one row per matched path."""

    type_name = "fakefiles"
    display_name = "Fake files"
    kind = "files"
    option_specs = (
        OptionSpec("root", str, "where the files are", required=True),
        OptionSpec("sas_token", str, "a SAS token", secret=True),
    )

    async def connect(self) -> None:
        return None

    async def disconnect(self) -> None:
        return None

    async def test_connection(self) -> str:
        return f"Fake files under {self.options['root']}"

    async def list_items(
        self, prefix: str | None = None, *, recursive: bool = False, limit: int | None = None
    ) -> pd.DataFrame:
        names = [name for name in FILES if name.startswith(prefix or "")]
        return _limited(pd.DataFrame({"name": names, "kind": "file"}), self.source_id, limit)

    async def read(
        self,
        paths: Sequence[str],
        *,
        format: str | None = None,
        limit: int | None = None,
        source_column: str | None = None,
        reader_options: Mapping[str, Any] | None = None,
    ) -> pd.DataFrame:
        matched = [name for path in paths for name in FILES if name.startswith(path.rstrip("*"))]
        if not matched:
            raise ItemNotFound(f"no file matches {', '.join(paths)}", source=self.source_id)
        frame = pd.DataFrame({"path": matched, "format": format})
        if source_column:
            frame[source_column] = frame["path"]
        return _limited(frame, self.source_id, limit)
