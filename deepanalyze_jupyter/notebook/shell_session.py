"""Where a shell keeps its data-source session: read here, made by the extension."""

from __future__ import annotations

from typing import Any

from ..session import Session

__all__ = ["SESSION_ATTRIBUTE", "current_session", "get_session", "session_for"]

SESSION_ATTRIBUTE = "_deepanalyze_session"


def get_session(shell: Any) -> Session | None:
    """The session the extension made for ``shell``, or ``None`` when not loaded."""
    return getattr(shell, SESSION_ATTRIBUTE, None)


def session_for(shell: Any) -> Session:
    """The shell's session, loading the extension first (as ``%load_ext`` does) if needed."""
    session = get_session(shell)
    if session is None or session.closed:
        shell.extension_manager.load_extension("deepanalyze_jupyter")
        session = get_session(shell)
    if session is None or session.closed:
        raise RuntimeError("the deepanalyze_jupyter extension did not load")
    return session


def current_session() -> Session:
    """The session of the running IPython shell: the one its magics and forms use.

    Loads the extension first if needed. Outside IPython there is no shell session: make a
    :class:`~deepanalyze_jupyter.Session` yourself.
    """
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise RuntimeError(
            "current_session() needs a running IPython or Jupyter kernel; in a script, use "
            "deepanalyze_jupyter.Session() instead"
        )
    return session_for(shell)
