"""Interrupting a real kernel (jupyter_client) in the middle of a long query or a long read.

The query must be gone from the server within a second, a read must leave no partial
result and no task behind on the session's loop, and the kernel must stay usable.
"""

from __future__ import annotations

import os
import queue
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.kernelspec import NATIVE_KERNEL_NAME
from jupyter_client.manager import KernelManager

from tests.faults.conftest import wait_until
from tests.services import AzuriteServer, PostgresServer

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(180)]

TIMEOUT = 60
BLOBS = 300
#: Prints the names of the tasks on the session's loop, found from the loop's own thread.
TASKS_CELL = (
    "import asyncio\n"
    "from deepanalyze_jupyter.notebook.extension import get_session\n"
    "async def _other_tasks():\n"
    "    current = asyncio.current_task()\n"
    "    return sorted(task.get_name() for task in asyncio.all_tasks() if task is not current)\n"
    "print(get_session(get_ipython()).run(_other_tasks()))"
)


class Kernel:
    """A started kernel, a client, and the means to interrupt it."""

    def __init__(self, manager: KernelManager, client: BlockingKernelClient) -> None:
        self.manager = manager
        self.client = client
        #: When the last interrupt was sent (``time.monotonic()``).
        self.interrupted_at = 0.0

    def ok(self, code: str) -> str:
        """Run ``code``; it must succeed. Returns what it printed."""
        printed: list[str] = []

        def keep(message: dict[str, Any]) -> None:
            if message["header"]["msg_type"] == "stream":
                printed.append(message["content"]["text"])

        reply = self.client.execute_interactive(code, output_hook=keep, timeout=TIMEOUT)
        assert reply["content"]["status"] == "ok", (code, reply["content"], printed)
        return "".join(printed)

    def interrupted(self, code: str, *, when: Callable[[], bool]) -> dict[str, Any]:
        """Start ``code``, interrupt the kernel once ``when()`` holds, and return the reply."""
        while True:  # forget the output of earlier cells
            try:
                self.client.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                break
        request = self.client.execute(code)
        wait_until(when, within=TIMEOUT)
        self.interrupted_at = time.monotonic()
        self.manager.interrupt_kernel()
        reply: dict[str, Any] = self.client.get_shell_msg(timeout=TIMEOUT)["content"]
        # The kernel refuses requests that arrive while it still unwinds the error.
        wait_until(lambda: self._went_idle(request), within=TIMEOUT, step=0)
        return reply

    def _went_idle(self, request: str) -> bool:
        try:
            message = self.client.get_iopub_msg(timeout=0.1)
        except queue.Empty:
            return False
        return (
            message["parent_header"].get("msg_id") == request
            and message["header"]["msg_type"] == "status"
            and message["content"]["execution_state"] == "idle"
        )

    def progress_shown(self) -> bool:
        """Whether the kernel has started drawing a progress bar (the read is under way)."""
        try:
            message = self.client.get_iopub_msg(timeout=0.05)
        except queue.Empty:
            return False
        return message["header"]["msg_type"] == "comm_open"


@pytest.fixture
def kernel(tmp_path: Path, pg: PostgresServer, blob_service: AzuriteServer) -> Iterator[Kernel]:
    """A kernel with the extension loaded; the services' secrets are in its environment."""
    environment = {
        **os.environ,
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "FAULTS_PG_PASSWORD": pg.password,
        "FAULTS_AZURE": blob_service.connection_string,
    }
    manager = KernelManager(kernel_name=NATIVE_KERNEL_NAME)
    manager.start_kernel(env=environment, cwd=str(tmp_path))
    client = manager.blocking_client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=TIMEOUT)
        kernel = Kernel(manager, client)
        kernel.ok("%load_ext deepanalyze_jupyter")
        yield kernel
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_interrupting_a_long_query_stops_it_on_the_server(
    kernel: Kernel, pg: PostgresServer, survived: Callable[[str], None]
) -> None:
    application = f"interrupt-{secrets.token_hex(4)}"
    kernel.ok(
        f"%datasource add pg --type postgresql --host {pg.host} --port {pg.port} --dbname {pg.dbname} "
        f"--user {pg.user} --application-name {application} --password-env FAULTS_PG_PASSWORD"
    )
    tasks_before = kernel.ok(TASKS_CELL)

    def sleeping() -> int:
        with pg.admin_connection() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND state = 'active' "
                "AND query LIKE '%%pg_sleep(60)%%'",
                [application],
            ).fetchone()
        return int(row[0]) if row else 0

    reply = kernel.interrupted("%%dsquery pg -o slept\nSELECT pg_sleep(60)", when=lambda: sleeping() > 0)
    wait_until(lambda: sleeping() == 0, within=5)
    gone_after = time.monotonic() - kernel.interrupted_at  # from the interrupt, not from idle
    assert gone_after < 1.0, f"the query ran on for {gone_after:.2f} s after the interrupt"
    assert reply["status"] == "error"
    assert reply["ename"] == "Interrupted"  # a KeyboardInterrupt, shown as one line
    assert reply["traceback"] == ["KeyboardInterrupt: pg: interrupted; the query was cancelled on the server"]
    assert kernel.ok("print('slept' in globals())").strip() == "False"
    kernel.ok("%%dsquery pg -o answer\nSELECT 42 AS n")
    assert kernel.ok("print(int(answer['n'][0]))").strip() == "42"
    assert kernel.ok(TASKS_CELL) == tasks_before
    survived("kernel interrupt during a long PostgreSQL query")


@pytest.fixture(scope="module")
def many_blobs(restartable_azurite: AzuriteServer) -> Iterator[str]:
    """A container of many small CSV blobs (a read of all of them takes seconds)."""
    name = f"faults-many-{secrets.token_hex(4)}"
    body = b"id,value\n" + b"".join(b"%d,%d\n" % (n, n * 7) for n in range(2000))
    with BlobServiceClient.from_connection_string(restartable_azurite.connection_string) as service:
        container = service.create_container(name)
        with ThreadPoolExecutor(max_workers=16) as uploads:
            list(uploads.map(lambda n: container.upload_blob(f"part/{n:04d}.csv", body), range(BLOBS)))
    yield name
    with BlobServiceClient.from_connection_string(restartable_azurite.connection_string) as service:
        service.delete_container(name)


def test_interrupting_a_multi_blob_read_leaves_nothing_behind(
    kernel: Kernel, blob_service: AzuriteServer, many_blobs: str, survived: Callable[[str], None]
) -> None:
    kernel.ok(
        f"%datasource add lake --type azure_blob --container {many_blobs} "
        "--connection-string-env FAULTS_AZURE --max-concurrency 1"
    )
    assert kernel.ok(TASKS_CELL).strip() == "[]"
    start = time.monotonic()
    reply = kernel.interrupted("%%dsquery lake -o parts\npart/*.csv", when=kernel.progress_shown)
    assert reply["status"] == "error", "the read finished before the interrupt: add blobs"
    assert reply["ename"] == "Interrupted"
    assert reply["traceback"] == ["KeyboardInterrupt: lake: interrupted; the read was stopped"]
    assert time.monotonic() - start < TIMEOUT
    assert kernel.ok("print('parts' in globals())").strip() == "False"
    assert kernel.ok(TASKS_CELL).strip() == "[]"
    kernel.ok("%datasource read lake part/0001.csv -o one")
    assert kernel.ok("print(len(one))").strip() == "2000"
    survived("kernel interrupt during a multi-blob read")
