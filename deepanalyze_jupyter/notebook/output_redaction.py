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


class _RedactingLogWrite:
    """Wraps IPython's ``Logger.log_write`` (``%logstart``, ``%logstart -o``): what it writes
    to the log file is masked."""

    def __init__(self, log_write: Callable[..., Any], redactor: Redactor) -> None:
        self.original = log_write
        self._redactor = redactor

    def __call__(self, data: Any, kind: str = "input") -> Any:
        if isinstance(data, str):
            data = self._redactor.redact(data)
        return self.original(data, kind)


class _RedactingStoreOutput:
    """Wraps ``HistoryManager.store_output``: an output kept in memory and written to the
    history database (``db_log_output``) is masked first."""

    def __init__(self, store_output: Callable[[int], Any], reprs: dict[int, Any], redactor: Redactor) -> None:
        self.original = store_output
        self._reprs = reprs
        self._redactor = redactor

    def __call__(self, line_num: int) -> Any:
        text = self._reprs.get(line_num)
        if isinstance(text, str):
            self._reprs[line_num] = self._redactor.redact(text)
        return self.original(line_num)


class OutputRedaction:
    """Masks the secrets a :class:`Redactor` watches in everything a shell outputs, and in
    IPython's own logs of it (the ``%logstart`` file, the history database's outputs)."""

    def __init__(self, shell: Any, redactor: Redactor) -> None:
        self._shell = shell
        self._redactor = redactor
        self._sessions: list[Any] = []
        self._streams: list[tuple[str, _RedactingStream]] = []
        self._logs: list[tuple[Any, str]] = []

    @property
    def installed(self) -> bool:
        """Whether the wrappers are in place."""
        return bool(self._sessions or self._streams or self._logs)

    def install(self) -> None:
        """Wrap the kernel's session (or, without a kernel, stdout and stderr) and IPython's logs."""
        if self.installed:
            return
        self._wrap_logs()
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
        for owner, name in self._logs:
            wrapper = owner.__dict__.get(name)
            if isinstance(wrapper, (_RedactingLogWrite, _RedactingStoreOutput)):
                del owner.__dict__[name]  # the class's own method again
        self._logs.clear()

    def _wrap_logs(self) -> None:
        logger = getattr(self._shell, "logger", None)
        if logger is not None and callable(getattr(logger, "log_write", None)):
            logger.log_write = _RedactingLogWrite(logger.log_write, self._redactor)
            self._logs.append((logger, "log_write"))
        history = getattr(self._shell, "history_manager", None)
        reprs = getattr(history, "output_hist_reprs", None)
        if (
            history is not None
            and isinstance(reprs, dict)
            and callable(getattr(history, "store_output", None))
        ):
            history.store_output = _RedactingStoreOutput(history.store_output, reprs, self._redactor)
            self._logs.append((history, "store_output"))

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
