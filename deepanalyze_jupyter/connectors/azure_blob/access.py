"""What every operation on a container source uses: its clients, its paths, its errors.

:class:`ContainerAccess` holds the connector's state (the service clients, a client per
container, the timeouts); reading (:mod:`.reading`), writing (:mod:`.upload`) and the
connector itself (:mod:`.connector`) build on it.
"""

from __future__ import annotations

from typing import Any

from azure.storage.blob.aio import ContainerClient

from ...errors import ConfigurationError, DataSourceError
from ..base import Connector
from ..files.globs import is_glob
from .auth import ServiceClients, Tuning, translate_error

__all__ = ["ContainerAccess"]


class ContainerAccess(Connector):
    """The clients of one container (or account) source, and its paths made (container, name)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: ServiceClients | None = None
        self._containers: dict[str, ContainerClient] = {}
        self._tuning = Tuning(
            connect_timeout=float(self.options["connect_timeout"]),
            read_timeout=float(self.options["read_timeout"]),
            retries=int(self.options["retries"]),
            range_size=int(self.options["range_size_mb"]) << 20,
        )

    @property
    def _container(self) -> str | None:
        return self.options.get("container") or None

    def _open_clients(self) -> ServiceClients:
        if self._clients is None:
            raise ConfigurationError("the source is not connected", source=self.source_id)
        return self._clients

    def _container_client(self, name: str) -> ContainerClient:
        client = self._containers.get(name)
        if client is None:
            client = self._open_clients().service.get_container_client(name)
            self._containers[name] = client
        return client

    def _locate(self, path: str) -> tuple[str, str]:
        """(container, blob name or prefix) of a path given by the user.

        A ``..`` segment is refused: a URL resolves it, so the request would leave the
        container (and fail as if the credential were wrong, or read another container).
        """
        text = path.strip().lstrip("/")
        if "\x00" in text:
            raise ConfigurationError(
                f"{path!r} holds a NUL character ('\\x00'), which no blob name can hold",
                source=self.source_id,
            )
        if ".." in text.replace("\\", "/").split("/"):
            raise ConfigurationError(f"{path!r} leads outside the container ('..')", source=self.source_id)
        if self._container is not None:
            return self._container, text
        container, _, rest = text.partition("/")
        if not container or is_glob(container):
            raise ConfigurationError(
                f"the source has no container option: start the path with a container name "
                f"(container/path), not {path!r}",
                source=self.source_id,
            )
        return container, rest

    def _shown(self, container: str, name: str) -> str:
        return name if self._container is not None else f"{container}/{name}"

    def _error(
        self, error: BaseException, container: str | None, blob: str | None = None, *, endpoint: str = ""
    ) -> DataSourceError:
        if not endpoint and self._clients is not None:
            endpoint = self._clients.endpoint
        return translate_error(
            error,
            source=self.source_id,
            endpoint=endpoint,
            container=container,
            blob=blob,
            anonymous=self.options.get("auth") == "anonymous",
        )
