"""IPython magics: ``%datasource`` and ``%%dsquery``."""

from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class

from .session import Session

__all__ = ["DataSourceMagics"]


@magics_class
class DataSourceMagics(Magics):
    """Magics over the shell's data-source session."""

    def __init__(self, shell: Any, *, session: Session) -> None:
        super().__init__(shell)
        self.session = session

    @line_magic
    def datasource(self, line: str) -> Any:
        """Manage data sources."""
        return self.session.sources()
