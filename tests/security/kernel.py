"""A real kernel whose every message is kept: iopub, shell and control replies, comm messages.

:class:`SpiedKernel` runs cells, sends what a front end sends (comm updates of widget
fields, button clicks, inspect and debug requests) and keeps every message the kernel
answers with. :class:`FrontEndModels` applies the widget messages the way the front end's
widget manager does, so that its ``state`` is what a saved notebook's widget state holds.
The kernel runs with ``--debug``, its log written to a file that the checks read too.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient

__all__ = ["FrontEndModels", "SpiedKernel"]

TIMEOUT = 60


@dataclass
class FrontEndModels:
    """Widget model states as a front end holds them (and saves them into the notebook)."""

    states: dict[str, dict[str, Any]] = field(default_factory=dict)

    def receive(self, message: dict[str, Any]) -> None:
        """Apply one iopub message from the kernel."""
        kind, content = message["header"]["msg_type"], message["content"]
        if kind == "comm_open" and content.get("target_name") == "jupyter.widget":
            self.states[content["comm_id"]] = dict(content["data"].get("state", {}))
        elif kind == "comm_msg" and content["comm_id"] in self.states:
            data = content["data"]
            if data.get("method") in ("update", "echo_update"):
                self.states[content["comm_id"]].update(data.get("state", {}))
        elif kind == "comm_close":
            self.states.pop(content["comm_id"], None)

    def set(self, comm_id: str, state: dict[str, Any]) -> None:
        """What the front end does before it sends an update: set its own model."""
        self.states.setdefault(comm_id, {}).update(state)


class SpiedKernel:
    """A started kernel and a client that keeps every message the kernel sends."""

    def __init__(self, client: BlockingKernelClient, log_file: Path, history_file: Path) -> None:
        self.client = client
        self.log_file = log_file
        self.history_file = history_file
        self.messages: list[dict[str, Any]] = []
        self.models = FrontEndModels()

    def _drain_iopub_until_idle(self, parent_id: str) -> None:
        while True:
            message = self.client.get_iopub_msg(timeout=TIMEOUT)
            self._keep(message)
            content = message["content"]
            if (
                message["header"]["msg_type"] == "status"
                and content.get("execution_state") == "idle"
                and message["parent_header"].get("msg_id") == parent_id
            ):
                return

    def _keep(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self.models.receive(message)

    def _shell_reply(self, msg_id: str) -> dict[str, Any]:
        """The shell reply to request ``msg_id``; earlier replies are kept too."""
        while True:
            reply = self.client.get_shell_msg(timeout=TIMEOUT)
            self.messages.append(reply)
            if reply["parent_header"].get("msg_id") == msg_id:
                return dict(reply["content"])

    def run(self, code: str) -> dict[str, Any]:
        """Run ``code``; return its execute reply's content (outputs are kept)."""
        msg_id = self.client.execute(code)
        reply = self._shell_reply(msg_id)
        self._drain_iopub_until_idle(msg_id)
        return reply

    def ok(self, code: str) -> str:
        """Run ``code``; it must succeed. Returns what it printed to stdout."""
        start = len(self.messages)
        reply = self.run(code)
        printed = "".join(
            message["content"]["text"]
            for message in self.messages[start:]
            if message["header"]["msg_type"] == "stream" and message["content"]["name"] == "stdout"
        )
        assert reply["status"] == "ok", (code, reply, printed)
        return printed

    def error_texts(self, start: int) -> str:
        """The tracebacks and stderr shown since message ``start``."""
        texts = []
        for message in self.messages[start:]:
            kind, content = message["header"]["msg_type"], message["content"]
            if kind == "error":
                texts.extend(content["traceback"])
            elif kind == "stream" and content["name"] == "stderr":
                texts.append(content["text"])
        return "\n".join(texts)

    def comm_update(self, comm_id: str, state: dict[str, Any]) -> None:
        """What a front end sends when the user leaves a field: the model's new state."""
        self.models.set(comm_id, state)
        self._comm_msg(comm_id, {"method": "update", "state": state, "buffer_paths": []})

    def click(self, comm_id: str) -> None:
        """What a front end sends when a button is clicked."""
        self._comm_msg(comm_id, {"method": "custom", "content": {"event": "click"}})

    def _comm_msg(self, comm_id: str, data: dict[str, Any]) -> None:
        message = self.client.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        self.client.shell_channel.send(message)
        self._drain_iopub_until_idle(message["header"]["msg_id"])

    def inspect(self, code: str) -> dict[str, Any]:
        """What Shift+Tab sends: an inspect request for the name at the end of ``code``."""
        msg_id = self.client.inspect(code, len(code), detail_level=0)
        reply = self._shell_reply(msg_id)
        self._drain_iopub_until_idle(msg_id)
        return reply

    def debug(self, command: str, arguments: dict[str, Any], seq: int) -> dict[str, Any]:
        """A debug request on the control channel; the reply is kept and returned."""
        request = {"type": "request", "seq": seq, "command": command, "arguments": arguments}
        message = self.client.session.msg("debug_request", request)
        self.client.control_channel.send(message)
        while True:
            reply = self.client.get_control_msg(timeout=TIMEOUT)
            self.messages.append(reply)
            if reply["parent_header"].get("msg_id") == message["header"]["msg_id"]:
                break
        self.settle()
        return dict(reply["content"])

    def settle(self) -> None:
        """Keep whatever the kernel still sends on iopub (debug events, late outputs)."""
        while True:
            try:
                self._keep(self.client.get_iopub_msg(timeout=0.3))
            except queue.Empty:
                return

    def sent_texts(self) -> list[object]:
        """Every message the kernel sent, whole (header, content, buffers)."""
        return [
            [message.get("header"), message.get("content"), message.get("metadata"), message.get("buffers")]
            for message in self.messages
        ]

    def history_bytes(self) -> bytes:
        """The kernel's SQLite history file (and its journal), once the kernel wrote it out."""
        self.ok("get_ipython().history_manager.writeout_cache()")
        assert self.history_file.exists(), self.history_file
        files = [self.history_file, self.history_file.with_name(self.history_file.name + "-wal")]
        return b"".join(path.read_bytes() for path in files if path.exists())

    def log_text(self) -> str:
        """The kernel's own log (``--debug``) so far."""
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
