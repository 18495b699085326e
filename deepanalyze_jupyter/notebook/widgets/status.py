"""The status line of a form, and the run-report-re-enable pattern of its buttons."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from typing import Literal

import ipywidgets as widgets

from ...errors import DataSourceError
from ...redaction import Redactor, mask_text

__all__ = ["FORM_WIDTH", "LABEL_WIDTH", "Outcome", "StatusLine", "error_line", "field_layout", "run_action"]

#: Width of the labels left of the fields, the same in every form so that fields line up.
LABEL_WIDTH = "140px"
#: Width of one labelled field, label included.
FORM_WIDTH = "480px"

Outcome = Literal["idle", "working", "success", "error"]

_LOOK: dict[Outcome, tuple[str, str]] = {
    "idle": ("", "var(--jp-ui-font-color2, #616161)"),
    "working": ("\u23f3", "var(--jp-ui-font-color2, #616161)"),
    "success": ("\u2714", "var(--jp-success-color1, #2e7d32)"),
    "error": ("\u2716", "var(--jp-error-color1, #c62828)"),
}


def field_layout() -> dict[str, object]:
    """Keyword arguments that give a labelled field the forms' common width and label width."""
    return {"layout": widgets.Layout(width=FORM_WIDTH), "style": {"description_width": LABEL_WIDTH}}


class StatusLine(widgets.HTML):  # type: ignore[misc]
    """One line under a form: what is running, what worked, or what went wrong.

    ``message`` and ``outcome`` keep the plain text and its kind for programs and tests;
    the widget shows them escaped, with an icon and a colour.
    """

    def __init__(self) -> None:
        super().__init__(value="", layout=widgets.Layout(min_height="1.8em", width="auto"))
        self.add_class("deepanalyze-status")
        self.message = ""
        self.outcome: Outcome = "idle"

    def show(self, outcome: Outcome, message: str) -> None:
        """Replace the line by ``message`` (one line; newlines are folded)."""
        line = " ".join(message.split())
        self.message, self.outcome = line, outcome
        icon, colour = _LOOK[outcome]
        text = f"{icon} {html.escape(line)}" if icon else html.escape(line)
        self.value = f'<span class="deepanalyze-status-{outcome}" style="color: {colour}">{text}</span>'


def error_line(error: BaseException, redactor: Redactor) -> str:
    """One secret-free line for an error: a package error as is, anything else flagged unexpected."""
    if isinstance(error, DataSourceError):
        return redactor.redact(str(error))
    text = (str(error).strip().splitlines() or [""])[0]
    detail = redactor.redact(mask_text(text))
    name = type(error).__name__
    return f"Unexpected error: {name}: {detail}" if detail else f"Unexpected error: {name}"


def run_action(
    action: Callable[[], str],
    *,
    working: str,
    status: StatusLine,
    controls: Iterable[widgets.DOMWidget],
    redactor: Redactor,
) -> bool:
    """Disable ``controls``, say ``working``, run ``action`` and show its line or its error.

    The controls are enabled again in ``finally``, whatever happened. Returns whether the
    action succeeded; a kernel interrupt is reported as such instead of escaping the callback.
    """
    held = list(controls)
    for control in held:
        control.disabled = True
    status.show("working", working)
    try:
        status.show("success", action())
        return True
    except KeyboardInterrupt:
        status.show("error", "Interrupted; nothing was changed")
    except Exception as error:
        status.show("error", error_line(error, redactor))
    finally:
        for control in held:
            control.disabled = False
    return False
