"""Text that the server escapes in ``COPY`` (backslashes, line breaks, tabs), read back as it is
stored, and without a call back to Python for each escape."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepanalyze_jupyter import Session
from deepanalyze_jupyter.connectors.postgresql import copy as copy_module
from deepanalyze_jupyter.connectors.postgresql.copy import unescape_copy_text

#: Values made mostly of what ``COPY`` text escapes, so that escapes meet and follow each other.
_ESCAPED = st.text(alphabet=st.sampled_from(["\\", "n", "t", "\n", "\t", "\r", "\b", "\f", "\v", "x", "é"]))
_SERVER_ESCAPE_RE = re.compile(r"[\\\n\t\r\b\f\v]")
_SERVER_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f", "\v": "\\v"}


def _as_copy_text(value: str) -> str:
    """``value`` escaped as the server writes it in ``COPY`` text."""
    return _SERVER_ESCAPE_RE.sub(lambda match: _SERVER_ESCAPES[match.group()], value)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(_ESCAPED)
def test_unescaping_undoes_what_the_server_escapes(value: str) -> None:
    assert unescape_copy_text(_as_copy_text(value)) == value


@settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(_ESCAPED, min_size=1, max_size=20))
def test_escaped_text_reads_back_as_the_server_holds_it(pg: Session, values: list[str]) -> None:
    frame = pg.query("pg", "SELECT unnest(CAST(:values AS text[])) AS t", {"values": values}, limit=None)
    assert frame["t"].tolist() == values


def test_a_large_value_full_of_escapes_is_unescaped_without_a_call_per_escape(
    pg: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    replace = copy_module._replace_escape

    def counted(match: re.Match[str]) -> str:
        nonlocal calls
        calls += 1
        return replace(match)

    monkeypatch.setattr(copy_module, "_replace_escape", counted)
    frame = pg.query("pg", r"SELECT repeat(E'a\\b\nc\td', 200000) AS t")
    assert frame["t"].iloc[0] == "a\\b\nc\td" * 200000
    assert calls == 0  # one call per escape took 8 s for 20 MB of backslashes
