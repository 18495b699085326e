"""Checks of option values: row limits, timeouts and the names results are assigned to.

Row limits are whole numbers from 1 to :data:`MAX_ROW_LIMIT`, timeouts finite numbers of
seconds above 0 and at most :data:`MAX_TIMEOUT`.
"""

from __future__ import annotations

import argparse
import keyword
import math
import unicodedata

from ...errors import quoted

__all__ = ["MAX_ROW_LIMIT", "MAX_TIMEOUT", "output_variable", "positive_float", "positive_int"]

#: The largest row limit (``--limit``, ``autolimit``): far above any frame a kernel holds,
#: and far below the 64-bit limits of the servers (``LIMIT n + 1`` must still fit).
MAX_ROW_LIMIT = 10**12
#: The longest ``--timeout``, in seconds: one day.
MAX_TIMEOUT = 86_400.0


def positive_int(text: str) -> int:
    """An argparse type: a whole number from 1 to :data:`MAX_ROW_LIMIT`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {quoted(text)}") from None
    if not 1 <= value <= MAX_ROW_LIMIT:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 1 to {MAX_ROW_LIMIT:,}, got {_shown_number(text)}"
        )
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number of seconds above 0 and at most :data:`MAX_TIMEOUT`."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {quoted(text)}") from None
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds above 0 and at most {MAX_TIMEOUT:,.0f} (one day), "
            f"got {_shown_number(text)}"
        )
    return value


def _shown_number(text: str) -> str:
    """A number as typed, cut when long (``1e300`` stays ``1e300``, 400 digits do not)."""
    text = text.strip()
    return text if len(text) <= 24 else f"{text[:20]}... ({len(text)} characters)"


def output_variable(text: str) -> str:
    """An argparse type: a name a result can be assigned to, and then used under that name.

    Python keywords and ``__dunder__`` names are refused; a name is kept in the NFKC form
    Python itself gives the names in code (``ﬁ`` is ``fi``).
    """
    name = unicodedata.normalize("NFKC", text)
    reserved = keyword.iskeyword(name) or (name.startswith("__") and name.endswith("__"))
    if not (text.isidentifier() and name.isidentifier()) or reserved:
        raise argparse.ArgumentTypeError(f"{quoted(text)} is not a Python variable name a result can go to")
    return name
