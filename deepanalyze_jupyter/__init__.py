"""deepanalyze-jupyter: connect a notebook to real data, with credentials that never show.

In IPython or Jupyter::

    %load_ext deepanalyze_jupyter

From Python, without IPython::

    from deepanalyze_jupyter import Session
"""

from __future__ import annotations

from typing import Any

from .connectors import Connector, SourceContext
from .credentials import CredentialManager
from .errors import (
    AuthenticationFailed,
    ConfigurationError,
    ConnectionFailed,
    CredentialError,
    DataSourceError,
    DataSourceExists,
    DataSourceNotFound,
    FormatError,
    ItemNotFound,
    OperationCancelled,
    QueryError,
    RegistryError,
    UnknownSourceType,
    WriteConflict,
)
from .models import DataSourceConfig, OptionSpec, Secret
from .redaction import Redactor, SecretNotMaskedWarning, sanitize
from .registry import DataSourceRegistry
from .runner import LoopRunner
from .session import ResultTruncated, Session

__version__ = "0.1.0"

__all__ = [
    "AuthenticationFailed",
    "ConfigurationError",
    "ConnectionFailed",
    "Connector",
    "CredentialError",
    "CredentialManager",
    "DataSourceConfig",
    "DataSourceError",
    "DataSourceExists",
    "DataSourceNotFound",
    "DataSourceRegistry",
    "FormatError",
    "ItemNotFound",
    "LoopRunner",
    "OperationCancelled",
    "OptionSpec",
    "QueryError",
    "Redactor",
    "RegistryError",
    "ResultTruncated",
    "Secret",
    "SecretNotMaskedWarning",
    "Session",
    "SourceContext",
    "UnknownSourceType",
    "WriteConflict",
    "__version__",
    "current_session",
    "load_ipython_extension",
    "sanitize",
    "unload_ipython_extension",
]


def current_session() -> Session:
    """The session of the running IPython shell, the one ``%datasource`` and ``%%dsquery`` use.

    Loads the extension if it is not loaded yet. For Python code in a notebook that works
    with the same sources as the magics::

        import deepanalyze_jupyter
        session = deepanalyze_jupyter.current_session()
        frames = [session.query("warehouse", sql) for sql in statements]
    """
    from .notebook.shell_session import current_session as shell_current_session

    return shell_current_session()


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext deepanalyze_jupyter``: one session for this shell, and the magics."""
    from .notebook.extension import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext deepanalyze_jupyter``: disconnect every source and stop the loop."""
    from .notebook.extension import unload

    unload(ipython)
