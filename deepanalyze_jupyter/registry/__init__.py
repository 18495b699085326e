"""The registry of data sources: configs, encrypted secrets and live connectors.

Everything that touches a source goes through :class:`DataSourceRegistry`: the magics,
the widget forms and scripts alike. Its parts:

- ``sources``: the registry itself, made of
  ``table`` (the sources registered, and the lookups on them),
  ``registration`` (adding, checking, updating and removing a source) and
  ``operations`` (connecting, testing, listing, describing, querying, reading, writing);
- ``connector_types``: the source types, built in or declared by installed packages;
- ``connections``: connecting each source on first use, reusing and replacing its connector;
- ``guard``: keeping secrets out of errors, statuses and logs;
- ``records``: what is kept per source, and the listing of sources.
"""

from __future__ import annotations

from .records import format_moment
from .sources import DEFAULT_ROW_LIMIT, DataSourceRegistry, RowLimit

__all__ = ["DEFAULT_ROW_LIMIT", "DataSourceRegistry", "RowLimit", "format_moment"]
