"""Handing a query or a file source's files to Dask as a lazy DataFrame.

``handoff`` is what :meth:`Session.to_dask <deepanalyze_jupyter.Session.to_dask>` calls: it
picks the split by source type. ``query`` reads a PostgreSQL query one task per range of an
integer column; ``files`` reads a local folder or Azure Blob source one task per file;
``collection`` is what both share (the Dask import, the collection of one task per part,
worker errors). Workers unpickle the parts and readers by these modules' paths.
"""

from __future__ import annotations

from .handoff import to_dask

__all__ = ["to_dask"]
