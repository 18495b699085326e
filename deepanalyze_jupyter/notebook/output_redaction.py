"""The safety net under every output: registered secrets are masked before they leave.

In a Jupyter kernel every message the kernel sends goes through its ``Session.send``:
outputs on iopub (stream text, display data, results, errors and their tracebacks),
the replies on shell and control (``inspect_reply`` with a variable's string form,
``history_reply``, the debugger's ``inspectVariables``/``richInspectVariables``) and
comm messages (widget state). :class:`OutputRedaction` wraps that one call and masks
every string in the content of every message. In a terminal IPython it wraps
``sys.stdout`` and ``sys.stderr`` instead, where rich reprs and tracebacks are printed too.

The :class:`~deepanalyze_jupyter.redaction.Redactor` finds each secret in every form a
display or serializer gives it (escaped, encoded, cut). This is a net, not a boundary: a
secret it does not mask (too short, a common word, text of another option), one
transformed otherwise before printing (reversed, split across two writes), or one written
straight to a file descriptor or ``sys.__stdout__`` is not caught.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

from ..redaction import Redactor

__all__ = ["OutputRedaction"]


def _redact_value(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redact_value(item, redact) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_value(item, redact) for item in value]
    if isinstance(value, tuple):
        return tuple(_redact_value(item, redact) for item in value)
    return value


class _RedactingSend:
    """A replacement for ``Session.send`` that masks secrets in every message it sends."""

    def __init__(self, send: Callable[..., Any], redactor: Redactor) -> None:
        self.original = send
        self._redactor = redactor

    def __call__(self, stream: Any, msg_or_type: Any, content: Any = None, *args: Any, **kwargs: Any) -> Any:
        redact = self._redactor.redact
        if isinstance(msg_or_type, dict):
            msg_or_type = {**msg_or_type, "content": _redact_value(msg_or_type.get("content"), redact)}
        elif content is not None:
            content = _redact_value(content, redact)
        return self.original(stream, msg_or_type, content, *args, **kwargs)


class _RedactingStream:
    """A text stream proxy that masks secrets in what is written to it."""

    def __init__(self, stream: TextIO, redactor: Redactor) -> None:
        self.original = stream
        self._redactor = redactor

    def write(self, text: str) -> int:
        self.original.write(self._redactor.redact(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


class OutputRedaction:
    """Masks the secrets a :class:`Redactor` watches in everything a shell outputs."""

    def __init__(self, shell: Any, redactor: Redactor) -> None:
        self._shell = shell
        self._redactor = redactor
        self._sessions: list[Any] = []
        self._streams: list[tuple[str, _RedactingStream]] = []

    @property
    def installed(self) -> bool:
        """Whether the wrappers are in place."""
        return bool(self._sessions or self._streams)

    def install(self) -> None:
        """Wrap the kernel's session (or, without a kernel, stdout and stderr)."""
        if self.installed:
            return
        for session in self._kernel_sessions():
            session.send = _RedactingSend(session.send, self._redactor)
            self._sessions.append(session)
        if not self._sessions:
            for name in ("stdout", "stderr"):
                proxy = _RedactingStream(getattr(sys, name), self._redactor)
                setattr(sys, name, proxy)
                self._streams.append((name, proxy))

    def uninstall(self) -> None:
        """Put back what :meth:`install` wrapped."""
        for session in self._sessions:
            if isinstance(session.send, _RedactingSend):
                session.send = session.send.original
        self._sessions.clear()
        for name, proxy in self._streams:
            if getattr(sys, name) is proxy:
                setattr(sys, name, proxy.original)
        self._streams.clear()

    def _kernel_sessions(self) -> list[Any]:
        holders = [
            getattr(self._shell, "kernel", None),
            getattr(self._shell, "display_pub", None),
            getattr(self._shell, "displayhook", None),
            sys.stdout,
            sys.stderr,
        ]
        sessions: list[Any] = []
        for holder in holders:
            session = getattr(holder, "session", None)
            sendable = session is not None and callable(getattr(session, "send", None))
            if sendable and not any(session is known for known in sessions):
                sessions.append(session)
        return sessions
