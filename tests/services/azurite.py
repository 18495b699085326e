"""A real Azure Blob Storage service for the test session.

Either Azurite (the Azure Storage emulator pinned in tests/package.json, installed into
tests/node_modules by the test session itself when it is missing) run in a temporary directory,
or an existing service named by the DEEPANALYZE_TEST_AZURE_CONN environment variable (a storage
connection string).
"""

from __future__ import annotations

import atexit
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.services.process import CleanupAfterExit, ServiceUnavailable, free_loopback_port

EXTERNAL_CONN_ENV = "DEEPANALYZE_TEST_AZURE_CONN"
# Azurite's fixed development account, published in its documentation; not a secret.
DEV_ACCOUNT_NAME = "devstoreaccount1"
DEV_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# tests/ holds the package.json that pins Azurite.
NPM_PREFIX = Path(__file__).resolve().parents[1]

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 15.0
_NPM_INSTALL = "`npm ci --prefix tests` from the repository root"
_EXTERNAL_HINT = f"or set {EXTERNAL_CONN_ENV} to the connection string of an existing service"


@dataclass
class AzuriteServer:
    """Where the test blob service listens and the account to use with it.

    `stop()` and `start()` restart an Azurite this session started (same port, same data); on an
    external service they skip the calling test.
    """

    blob_endpoint: str
    account_name: str = DEV_ACCOUNT_NAME
    account_key: str = field(default=DEV_ACCOUNT_KEY, repr=False)
    connection_string: str = field(default="", repr=False)
    _process: _AzuriteProcess | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.connection_string:
            protocol = urlsplit(self.blob_endpoint).scheme or "https"
            self.connection_string = (
                f"DefaultEndpointsProtocol={protocol};AccountName={self.account_name};"
                f"AccountKey={self.account_key};BlobEndpoint={self.blob_endpoint};"
            )

    @classmethod
    def from_connection_string(cls, text: str) -> AzuriteServer:
        """Describe an existing service from an Azure Storage connection string."""
        parts = parse_connection_string(text)
        if parts.get("UseDevelopmentStorage", "").lower() == "true":
            return cls(blob_endpoint=f"http://127.0.0.1:10000/{DEV_ACCOUNT_NAME}", connection_string=text)
        name = parts.get("AccountName", "")
        protocol = parts.get("DefaultEndpointsProtocol", "https")
        suffix = parts.get("EndpointSuffix", "core.windows.net")
        endpoint = parts.get("BlobEndpoint") or f"{protocol}://{name}.blob.{suffix}"
        return cls(
            blob_endpoint=endpoint.rstrip("/"),
            account_name=name,
            account_key=parts.get("AccountKey", ""),
            connection_string=text,
        )

    def upload(self, container: str, blobs: Mapping[str, bytes]) -> None:
        """Put ``blobs`` (name: bytes) into ``container``, through the SDK."""
        from azure.storage.blob import BlobServiceClient

        with BlobServiceClient.from_connection_string(self.connection_string) as service:
            client = service.get_container_client(container)
            for name, data in blobs.items():
                client.upload_blob(name, data, overwrite=True)

    def keyed_source(self, container: str) -> dict[str, Any]:
        """The options of a blob source for ``container``, signed with the account key."""
        return {
            "account_url": self.blob_endpoint,
            "container": container,
            "secrets": {"account_key": self.account_key},
        }

    @property
    def external(self) -> bool:
        """True when the service was not started by this session."""
        return self._process is None

    def is_running(self) -> bool:
        """True when the service accepts connections (or, if ours, its process is alive)."""
        if self._process is not None:
            return self._process.is_running()
        endpoint = urlsplit(self.blob_endpoint)
        default_port = 443 if endpoint.scheme == "https" else 80
        try:
            with socket.create_connection(
                (endpoint.hostname or "", endpoint.port or default_port), timeout=3
            ):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """Stop Azurite; `start()` brings it back with its containers and blobs."""
        self._own_process("stop").stop()

    def start(self) -> None:
        """Start Azurite again after `stop()`, on the same port with the same data."""
        self._own_process("start").start()

    def close(self) -> None:
        """Stop Azurite for good and delete its files. Does nothing for an external service."""
        atexit.unregister(self.close)
        if self._process is not None:
            self._process.remove()

    def _own_process(self, action: str) -> _AzuriteProcess:
        if self._process is None:
            pytest.skip(
                f"cannot {action} the external blob service given by {EXTERNAL_CONN_ENV}; "
                "restart tests need the Azurite the test session starts itself"
            )
        return self._process


def start_azurite() -> AzuriteServer:
    """The service named by DEEPANALYZE_TEST_AZURE_CONN, else a new Azurite, running.

    Raises ServiceUnavailable when Node.js or the Azurite package is not installed.
    """
    connection_string = os.environ.get(EXTERNAL_CONN_ENV, "").strip()
    if connection_string:
        return AzuriteServer.from_connection_string(connection_string)
    return start_own_azurite()


def start_own_azurite() -> AzuriteServer:
    """A new Azurite, running, whatever DEEPANALYZE_TEST_AZURE_CONN says.

    For the tests that stop and restart the service, which cannot do that to an external one.
    Raises ServiceUnavailable when Node.js or the Azurite package is not installed.
    """
    process = _AzuriteProcess(*find_azurite(), port=free_loopback_port())
    server = AzuriteServer(
        blob_endpoint=f"http://127.0.0.1:{process.port}/{DEV_ACCOUNT_NAME}", _process=process
    )
    atexit.register(server.close)
    try:
        process.start()
    except BaseException:
        server.close()
        raise
    return server


def find_azurite() -> tuple[str, Path]:
    """The node executable and Azurite's blob service script."""
    node = shutil.which("node")
    if node is None:
        raise ServiceUnavailable(
            "Node.js (`node`) not found on PATH; Azurite needs it: install it with "
            f"`apt-get install nodejs npm`, then Azurite with {_NPM_INSTALL}; {_EXTERNAL_HINT}"
        )
    install_pinned_npm_packages()
    launcher = NPM_PREFIX / "node_modules" / ".bin" / "azurite-blob"
    if not launcher.exists():
        raise ServiceUnavailable(
            f"Azurite not found at {launcher}; install it with {_NPM_INSTALL}; {_EXTERNAL_HINT}"
        )
    return node, launcher.resolve()


def install_pinned_npm_packages(say: Callable[[str], object] = print) -> None:
    """Run `npm ci` in tests/ when node_modules is missing or was installed from another lock file.

    The marker copy of the lock file says which lock the installed packages came from, so a
    changed pin reinstalls and an unchanged one costs nothing.
    """
    lock = NPM_PREFIX / "package-lock.json"
    marker = NPM_PREFIX / "node_modules" / ".installed-package-lock.json"
    if marker.exists() and marker.read_bytes() == lock.read_bytes():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise ServiceUnavailable(
            f"npm not found on PATH; it installs Azurite: `apt-get install nodejs npm`; {_EXTERNAL_HINT}"
        )
    say(f"installing the pinned Azurite into {NPM_PREFIX / 'node_modules'} (npm ci, once)")
    result = subprocess.run(
        [npm, "ci", "--prefix", str(NPM_PREFIX), "--no-audit", "--no-fund"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ServiceUnavailable(f"`npm ci --prefix tests` failed:\n{result.stderr[-2000:]}")
    shutil.copyfile(lock, marker)


def parse_connection_string(text: str) -> dict[str, str]:
    """Split `Key=Value;Key=Value;` into a dict (values may contain `=`)."""
    parts: dict[str, str] = {}
    for item in text.split(";"):
        key, sep, value = item.strip().partition("=")
        if not key:
            continue
        if not sep:
            # The text holds an account key: name only the offending key.
            raise ValueError(f"{EXTERNAL_CONN_ENV}: `{key}` has no value")
        parts[key.strip()] = value.strip()
    return parts


class _AzuriteProcess:
    """Azurite's blob service as a child process, with its data in a temporary directory."""

    def __init__(self, node: str, script: Path, *, port: int) -> None:
        self.port = port
        self.base_dir = Path(tempfile.mkdtemp(prefix="deepanalyze-azurite-"))
        self.data_dir = self.base_dir / "data"
        self.data_dir.mkdir()
        self.log_file = self.base_dir / "azurite.log"
        self._pid_file = self.base_dir / "azurite.pid"
        self._argv = [
            node,
            str(script),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(self.data_dir),
            "--silent",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ]
        self._process: subprocess.Popen[bytes] | None = None
        pid_file = shlex.quote(str(self._pid_file))
        self._cleanup: CleanupAfterExit | None = CleanupAfterExit(
            f'[ -f {pid_file} ] && kill -KILL "$(cat {pid_file})" 2>/dev/null; '
            f"rm -rf {shlex.quote(str(self.base_dir))}"
        )

    def start(self) -> None:
        """Start Azurite and wait until it accepts connections."""
        if self.is_running():
            return
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                self._argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
            )
        self._pid_file.write_text(f"{self._process.pid}\n")
        try:
            self._wait_until_listening(self._process)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop Azurite gracefully (it saves its metadata on SIGTERM), by force if it hangs."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._pid_file.unlink(missing_ok=True)

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def remove(self) -> None:
        """Stop Azurite and delete the directory; safe to call twice."""
        if self._cleanup is None:
            return
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self._cleanup.cancel()
            self._cleanup = None

    def _wait_until_listening(self, process: subprocess.Popen[bytes]) -> None:
        # Azurite opens its port only once its stores are loaded, so a connection means ready.
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            returncode = process.poll()
            if returncode is not None:
                raise RuntimeError(
                    f"Azurite exited with code {returncode} while starting "
                    f"({shlex.join(self._argv)}):\n{self._log_text()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"Azurite did not accept connections on 127.0.0.1:{self.port} within "
                        f"{_START_TIMEOUT:.0f} s:\n{self._log_text()}"
                    ) from None
                time.sleep(0.1)

    def _log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""
