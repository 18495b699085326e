"""A session with a fake SQL connector whose password check is under the tests' control."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd
import pytest

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.connectors import Connector
from deepanalyze_jupyter.errors import AuthenticationFailed, ConfigurationError
from deepanalyze_jupyter.models import OptionSpec

RIGHT_PASSWORD = "right-password-4821"
RIGHT_TOKEN = "token-value-99173"


class FakeDatabase(Connector):
    """Accepts RIGHT_PASSWORD (or RIGHT_TOKEN with auth=token); holds one table."""

    type_name = "fakedb"
    display_name = "Fake DB"
    kind = "sql"
    option_specs = (
        OptionSpec("host", str, "server name", required=True),
        OptionSpec("port", int, "server port", default=5432),
        OptionSpec("user", str, "login name", required=True),
        OptionSpec("auth", str, "how to log in", default="password", choices=("password", "token")),
        OptionSpec(
            "password", str, "login password", secret=True, required=True, when=("auth", ("password",))
        ),
        OptionSpec("token", str, "access token", secret=True, required=True, when=("auth", ("token",))),
        OptionSpec("read_only", bool, "refuse writes", default=True, label="Read-only"),
        OptionSpec("timeout", float, "seconds to wait"),
    )

    async def connect(self) -> None:
        if self.options.get("auth") == "token":
            accepted = self.context.secrets.reveal("token") == RIGHT_TOKEN
        else:
            accepted = self.context.secrets.reveal("password") == RIGHT_PASSWORD
        if not accepted:
            raise AuthenticationFailed(
                f"password authentication failed for user {self.options['user']!r}", source=self.source_id
            )

    async def disconnect(self) -> None:
        return None

    async def test_connection(self) -> str:
        return f"Fake DB at {self.options['host']}:{self.options['port']} as {self.options['user']}"

    async def list_items(
        self, prefix: str | None = None, *, recursive: bool = False, limit: int | None = None
    ) -> pd.DataFrame:
        return pd.DataFrame({"schema": ["public"], "name": ["orders"], "kind": ["table"]})

    async def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> pd.DataFrame:
        if sql != 'SELECT * FROM "public"."orders"':
            raise ConfigurationError(f"unexpected query {sql!r}", source=self.source_id)
        frame = pd.DataFrame({"id": range(50)})
        return frame.head(limit) if limit is not None else frame


@pytest.fixture
def session() -> Iterator[Session]:
    """A session that knows the built-in types and ``fakedb``."""
    with Session() as made:
        made.registry.register_connector_class(FakeDatabase)
        yield made
