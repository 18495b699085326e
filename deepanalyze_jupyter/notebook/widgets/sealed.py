"""Form fields that never keep a typed secret in widget state.

Jupyter saves the state of every widget model the front end holds into the notebook file,
and ipywidgets echoes every value a front end sends back to all front ends (``echo_update``).
So a secret must not stay in a widget's ``value``, not even until Add. These fields take a
typed value the moment it reaches the kernel, keep it only as a Fernet token of the
session's :class:`~deepanalyze_jupyter.credentials.CredentialManager`, and set the model's
value to what may be shown: empty for a ``Password``, the text with its embedded secret
masked for a connection string or URL. The kernel answers the front end's ``update`` with
that value at once, so the front end's model (what a save writes) and its input box hold
the secret only between the user leaving the field and the kernel's answer.

- ``continuous_update`` is off: the front end sends the value once, when the field loses
  focus or Enter is pressed, not after each keystroke (each would be taken and cleared).
- ``echo_update`` is off for ``value``: the typed value is never sent back to front ends.
- The ``Comm`` logger and the kernel's own log write whole incoming messages at DEBUG;
  a log filter masks the value of this field's messages in those records.
"""

from __future__ import annotations

import logging
from typing import Any

import ipywidgets as widgets
from IPython import get_ipython
from traitlets import Unicode, validate

from ...credentials import CredentialManager
from ...models import Secret
from ...redaction import MASK, mask_text

__all__ = ["SealedPassword", "SealedText"]

#: Placeholder of a secret field once a secret was taken from it.
HELD_PLACEHOLDER = "entered and kept encrypted (type again to replace)"
#: The logger ``comm`` writes every incoming comm message to at DEBUG.
_COMM_LOGGER = "Comm"


class _Seal:
    """The encrypted value one field was given, and the text it showed for it."""

    def __init__(self, credentials: CredentialManager) -> None:
        self._credentials = credentials
        self._token: bytes | None = None
        self.shown = ""

    @property
    def held(self) -> bool:
        return self._token is not None

    def take(self, typed: str, shown: str) -> str:
        """Keep ``typed`` encrypted; return ``shown``, the value the widget keeps instead."""
        self._token = self._credentials.encrypt(typed)
        self.shown = shown
        return shown

    def reveal(self) -> Secret | None:
        return None if self._token is None else self._credentials.decrypt(self._token, field="form field")

    def forget(self) -> None:
        self._token, self.shown = None, ""


class _CommLogMask(logging.Filter):
    """Masks the state sent to one widget in log records of incoming messages."""

    def __init__(self, model_id: str) -> None:
        super().__init__()
        self.model_id = model_id

    def filter(self, record: logging.LogRecord) -> bool:
        # logging keeps a lone mapping argument as ``args`` itself
        if isinstance(record.args, dict):
            record.args = self._masked(record.args)
        elif isinstance(record.args, tuple) and any(isinstance(arg, dict) for arg in record.args):
            record.args = tuple(self._masked(arg) for arg in record.args)
        return True

    def _masked(self, value: Any) -> Any:
        if isinstance(value, dict):
            if value.get("comm_id") == self.model_id and isinstance(value.get("data"), dict):
                data = value["data"]
                state = data.get("state")
                if isinstance(state, dict) and "value" in state:
                    value = {**value, "data": {**data, "state": {**state, "value": MASK}}}
            return {key: self._masked(item) for key, item in value.items()}
        return value


def _message_loggers() -> list[logging.Logger]:
    """The loggers that write whole incoming messages: ``Comm``'s and the kernel's own."""
    loggers = [logging.getLogger(_COMM_LOGGER)]
    kernel_log = getattr(getattr(get_ipython(), "kernel", None), "log", None)
    if isinstance(kernel_log, logging.Logger):
        loggers.append(kernel_log)
    return loggers


class _SealedField:
    """What both sealed fields share: the seal, the log filter, and closing them."""

    _seal: _Seal
    _log_mask: _CommLogMask | None

    def _guard_logs(self, model_id: str) -> None:
        self._log_mask = _CommLogMask(model_id)
        for logger in _message_loggers():
            logger.addFilter(self._log_mask)

    def _unguard_logs(self) -> None:
        if self._log_mask is not None:
            for logger in _message_loggers():
                logger.removeFilter(self._log_mask)
            self._log_mask = None


class SealedPassword(widgets.Password, _SealedField):  # type: ignore[misc]
    """A ``Password`` field whose value is always empty: a typed secret is kept encrypted."""

    value = Unicode("", help="Always empty: a typed secret is taken and kept encrypted").tag(
        sync=True, echo_update=False
    )

    def __init__(self, credentials: CredentialManager, **kwargs: Any) -> None:
        self._seal = _Seal(credentials)
        self._log_mask = None
        super().__init__(continuous_update=False, **kwargs)
        self._empty_placeholder = self.placeholder
        self._guard_logs(self.model_id)

    @validate("value")
    def _take(self, proposal: Any) -> str:
        typed = proposal["value"]
        if typed:
            self._seal.take(typed, "")
            self.placeholder = HELD_PLACEHOLDER
        return ""

    @property
    def held(self) -> bool:
        """Whether a secret was typed (and is kept encrypted)."""
        return self._seal.held

    def secret(self) -> Secret | None:
        """The secret typed last, or ``None``."""
        return self._seal.reveal()

    def clear(self) -> None:
        """Forget the secret typed."""
        self._seal.forget()
        self.placeholder = self._empty_placeholder

    def close(self) -> None:
        self.clear()
        self._unguard_logs()
        super().close()


class SealedText(widgets.Text, _SealedField):  # type: ignore[misc]
    """A ``Text`` field that keeps a value embedding a secret (a connection string with a
    password, a URL with a SAS) encrypted, and shows it with the secret masked."""

    value = Unicode("", help="The text as typed, or masked where it embeds a secret").tag(
        sync=True, echo_update=False
    )

    def __init__(self, credentials: CredentialManager, **kwargs: Any) -> None:
        self._seal = _Seal(credentials)
        self._log_mask = None
        super().__init__(continuous_update=False, **kwargs)
        self._guard_logs(self.model_id)

    @validate("value")
    def _take(self, proposal: Any) -> str:
        typed: str = proposal["value"]
        shown = mask_text(typed)
        if shown != typed:
            return self._seal.take(typed, shown)
        if typed != self._seal.shown:
            self._seal.forget()
        return typed

    @property
    def held(self) -> bool:
        """Whether the field holds a text with a secret in it (kept encrypted)."""
        return self._seal.held

    def text(self) -> str:
        """The text as typed: the encrypted one while the field still shows it masked."""
        secret = self._seal.reveal() if self.value == self._seal.shown else None
        return self.value if secret is None else secret.reveal()

    def clear(self) -> None:
        """Forget a text with a secret in it, and empty the field if it showed one."""
        if self._seal.held:
            self._seal.forget()
            self.value = ""

    def close(self) -> None:
        self._seal.forget()
        self._unguard_logs()
        super().close()
