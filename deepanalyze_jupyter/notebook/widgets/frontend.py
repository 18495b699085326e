"""Whether widgets can be shown here, and the session a form works on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..shell_session import session_for

__all__ = ["FormUnavailable", "session_for", "shows_widgets"]


@dataclass(frozen=True)
class FormUnavailable:
    """What a form call gives where no front end can draw widgets: a clear message."""

    message: str

    def __repr__(self) -> str:
        return self.message

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.message)


def shows_widgets(shell: Any) -> bool:
    """Whether ``shell`` is a kernel, whose front end (JupyterLab, Notebook, VS Code) draws widgets.

    A terminal IPython or a plain Python script has no kernel, and no way to show a form.
    """
    return shell is not None and getattr(shell, "kernel", None) is not None
