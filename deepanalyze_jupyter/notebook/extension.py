"""Loading and unloading the IPython extension: one session per shell."""

from __future__ import annotations

from typing import Any

from ..session import Session
from .magics.saved import autoload_saved_sources
from .output_redaction import OutputRedaction
from .progress_bar import tqdm_progress
from .shell_session import SESSION_ATTRIBUTE, get_session

__all__ = ["get_session", "load", "unload"]

_REDACTION_ATTRIBUTE = "_deepanalyze_output_redaction"


def load(shell: Any) -> Session:
    """Make the shell's session and register the magics; loading twice is harmless."""
    session = get_session(shell)
    if session is not None and not session.closed:
        return session
    from .magics import DataSourceMagics

    session = Session(progress=tqdm_progress)
    setattr(shell, SESSION_ATTRIBUTE, session)
    magics = DataSourceMagics(shell, session=session)
    shell.register_magics(magics)
    redaction = OutputRedaction(shell, session.redactor)
    redaction.install()
    setattr(shell, _REDACTION_ATTRIBUTE, redaction)
    autoload_saved_sources(magics)
    return session


def unload(shell: Any) -> None:
    """Remove the magics, disconnect every source and stop the session's loop."""
    session = get_session(shell)
    if session is None:
        return
    from .magics import DataSourceMagics

    _unregister_magics(shell, DataSourceMagics)
    redaction = getattr(shell, _REDACTION_ATTRIBUTE, None)
    if redaction is not None:
        redaction.uninstall()
        delattr(shell, _REDACTION_ATTRIBUTE)
    delattr(shell, SESSION_ATTRIBUTE)
    session.close()


def _unregister_magics(shell: Any, magics_class: type) -> None:
    manager = shell.magics_manager
    instance = manager.registry.pop(magics_class.__name__, None)
    if instance is None:
        return
    instance.detach()  # its completers, display formatters and configurable entry
    for kind, names in instance.magics.items():
        for name in names:
            manager.magics[kind].pop(name, None)
