"""A real ``dask.distributed`` LocalCluster of two worker processes, for the Dask hand-off tests."""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest


@contextmanager
def worker_cluster(environment: Mapping[str, str] | None = None) -> Iterator[Any]:
    """A client of two worker processes (one thread each) started with ``environment`` set."""
    import distributed

    saved = {name: os.environ.get(name) for name in environment or {}}
    os.environ.update(environment or {})  # the workers inherit it when they start
    # An IPython shell of an earlier test may have left a __main__ without __spec__, which the
    # "spawn" start of the worker processes reads; they get a plain one, as a script has.
    script_main = types.ModuleType("__main__")
    script_main.__spec__ = None
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setitem(sys.modules, "__main__", script_main)
            with (
                distributed.LocalCluster(
                    n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
                ) as local,
                distributed.Client(local) as client,
            ):
                yield client
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
