"""IPython magics: ``%datasource`` manages and browses sources, ``%%dsquery`` queries them.

The magics are glue: they parse the line, read secrets from the environment or a hidden
prompt, and call the shell's :class:`~deepanalyze_jupyter.session.Session`. Every error of
the package shows as one ``UsageError`` line naming the source; a literal secret in a line
is refused and scrubbed from the input history.

One module per topic, as IPython's own ``core/magics``: ``base`` (settings, errors as one
line); the mixins ``sources`` (add, update, list, info, test, remove, cache, browse),
``items`` (ls, tables, columns, read) and ``queries`` (``%%dsquery``); the functions of
``saved`` (save, load, forget, ``list --saved``) and ``write`` (write); and
``datasource``, the class that combines the mixins and dispatches every subcommand.
"""

from __future__ import annotations

from .base import Interrupted
from .datasource import SUBCOMMANDS, DataSourceMagics

__all__ = ["SUBCOMMANDS", "DataSourceMagics", "Interrupted"]
