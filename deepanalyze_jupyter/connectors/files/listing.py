"""The listing of a file source as a DataFrame: one shape for a local folder and a blob container."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

__all__ = ["LISTING_COLUMNS", "listing_frame"]

#: The columns of a listing: name and kind (file/folder) as strings, size as Int64,
#: last_modified as datetime64[us, UTC], content_type and etag as strings.
LISTING_COLUMNS = ("name", "kind", "size", "last_modified", "content_type", "etag")


def listing_frame(rows: Sequence[Sequence[Any]], *, time_format: str | None = None) -> pd.DataFrame:
    """Rows of ``(name, kind, size, last_modified, content_type, etag)`` as a DataFrame.

    ``last_modified`` holds datetimes, or text written as ``time_format``.
    """
    columns: list[Any] = list(zip(*rows, strict=True)) or [() for _ in LISTING_COLUMNS]
    names, kinds, sizes, modified, content_types, etags = columns
    string = pd.StringDtype("pyarrow")
    stamps = pd.to_datetime(pd.Series(modified, dtype=object), utc=True, format=time_format)
    return pd.DataFrame(
        {
            "name": pd.array(names, dtype=string),
            "kind": pd.array(kinds, dtype=string),
            "size": pd.array(sizes, dtype=pd.Int64Dtype()),
            "last_modified": stamps.astype(pd.DatetimeTZDtype("us", "UTC")),
            "content_type": pd.array(content_types, dtype=string),
            "etag": pd.array(etags, dtype=string),
        }
    )
