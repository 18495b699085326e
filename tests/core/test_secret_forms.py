"""The redactor masks every form a display or serializer gives a secret, keeps none of them.

Each form is made here by the library that makes it in real outputs (``repr``, pandas,
``json``, ``html``, ``urllib.parse``, ``base64``, IPython's ``%whos`` cut), never by
:func:`secret_forms` itself, so the two are checked against each other.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import html
import json
import secrets
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepanalyze_jupyter import secret_hashes
from deepanalyze_jupyter.redaction import (
    FRAGMENT_LENGTH,
    MASK,
    Redactor,
    SecretNotMaskedWarning,
    is_unmaskable,
    masked_texts,
    secret_forms,
)
from deepanalyze_jupyter.registry import DataSourceRegistry
from deepanalyze_jupyter.secret_hashes import KeyedTextHashes
from tests.core.conftest import fake_config
from tests.core.fakes import FakeService

#: Quotes, a backslash, a newline and HTML's special characters: every escaper changes it.
TRICKY = "bs\\q'uo\"te-Pw9\n<P&ss>"
#: An account key: 88 characters, cut by pandas (47 kept) and %whos (25 + 25 kept).
ACCOUNT_KEY = base64.b64encode(b"canary" + bytes(range(60))).decode()


def _whos(value: str) -> str:
    """How ``%whos`` shows a long string (IPython.core.magics.namespace)."""
    shown = str(value).replace("\n", "\\n")
    return shown[:25] + "<...>" + shown[-25:] if len(shown) > 50 else shown


def _base64_inside(value: str, shift: int) -> str:
    return base64.b64encode(b"user:"[:shift] + value.encode() + b":tail").decode()


DISPLAYS: dict[str, Callable[[str], str]] = {
    "str": str,
    "repr": repr,
    "repr in a list": lambda value: repr([value]),
    "repr of bytes": lambda value: repr(value.encode()),
    "ascii": ascii,
    "DataFrame text": lambda value: str(pd.DataFrame({"c": [value]})),
    "DataFrame html": lambda value: pd.DataFrame({"c": [value]}).to_html(),
    "Series repr": lambda value: repr(pd.Series([value])),
    "json": json.dumps,
    "json of a list": lambda value: json.dumps([value], ensure_ascii=False),
    "html.escape": html.escape,
    "html.escape without quotes": lambda value: html.escape(value, quote=False),
    "quote": lambda value: quote(value, safe=""),
    "quote keeping /": quote,
    "quote_plus": quote_plus,
    "base64": lambda value: base64.b64encode(value.encode()).decode(),
    "base64 after 1 byte": lambda value: _base64_inside(value, 1),
    "base64 after 2 bytes": lambda value: _base64_inside(value, 2),
    "base64 after 3 bytes": lambda value: _base64_inside(value, 3),
    "urlsafe base64": lambda value: base64.urlsafe_b64encode(value.encode()).decode(),
    "%whos": _whos,
}


@pytest.fixture
def redactor() -> Redactor:
    watching = Redactor()
    watching.add("source", [TRICKY, ACCOUNT_KEY])
    return watching


@pytest.mark.parametrize("display", DISPLAYS, ids=list(DISPLAYS))
@pytest.mark.parametrize("value", [TRICKY, ACCOUNT_KEY], ids=["tricky", "account key"])
def test_every_display_of_a_secret_is_masked(redactor: Redactor, display: str, value: str) -> None:
    shown = DISPLAYS[display](value)
    masked = redactor.redact(shown)
    assert MASK in masked
    for start in range(0, max(1, len(value) - FRAGMENT_LENGTH + 1)):
        assert value[start : start + FRAGMENT_LENGTH] not in masked


def test_a_cut_long_secret_is_masked_where_a_display_keeps_24_characters(redactor: Redactor) -> None:
    with pd.option_context("display.max_colwidth", 50):
        shown = str(pd.DataFrame({"key": [ACCOUNT_KEY]}))
    assert ACCOUNT_KEY[:46] + "..." in shown
    assert ACCOUNT_KEY[:24] not in redactor.redact(shown)
    middle = "x " + ACCOUNT_KEY[30 : 30 + FRAGMENT_LENGTH] + " y"
    assert redactor.redact(middle) == f"x {MASK} y"
    shorter = "x " + ACCOUNT_KEY[30 : 30 + FRAGMENT_LENGTH - 1] + " y"
    assert redactor.redact(shorter) == shorter  # the documented limit


@pytest.mark.parametrize(
    ("made", "value"),
    [
        (lambda value: repr(value)[1:-1], TRICKY),
        (lambda value: json.dumps(value)[1:-1], TRICKY),
        (html.escape, TRICKY),
        (lambda value: quote(value, safe=""), TRICKY),
        (quote_plus, TRICKY),
        (lambda value: value.replace("\n", "\\n"), TRICKY),
    ],
)
def test_secret_forms_holds_what_the_libraries_make(made: Callable[[str], str], value: str) -> None:
    assert made(value) in secret_forms(value)


def test_the_redactor_keeps_no_secret_and_no_form_of_one() -> None:
    secret = f"Kept-{secrets.token_hex(16)}"
    redactor = Redactor()
    redactor.add("source", [secret, f"host=db password={secret}x dbname=d"])
    found = [text for text in _reachable_texts(redactor) if secret[:12] in text]
    assert found == []
    assert redactor.redact(f"<{secret}>") == f"<{MASK}>"


def _reachable_texts(root: object) -> Iterator[str]:
    """Every str, and the bytes of every buffer, reachable from ``root`` (decoded loosely)."""
    seen: set[int] = set()
    pending: list[Any] = [root]
    while pending:
        item = pending.pop()
        if id(item) in seen or isinstance(item, type):
            continue
        seen.add(id(item))
        if isinstance(item, str):
            yield item
        elif isinstance(item, (bytes, bytearray)):
            yield bytes(item).decode("latin-1")
        elif isinstance(item, np.ndarray):
            yield item.tobytes().decode("latin-1")
        else:
            pending.extend(gc.get_referents(item))
            if hasattr(item, "__dict__"):
                pending.extend(vars(item).values())


class TestUnmaskable:
    def test_a_secret_equal_to_another_option_is_not_masked_and_is_reported(self) -> None:
        redactor = Redactor()
        unmasked = redactor.watch(
            {"password": "analyst-7", "sas_token": "sv=1&sig=unique-signature-1"},
            ordinary=["analyst-7", "db"],
        )
        assert unmasked == ["password"]
        assert redactor.redact("connected as 'analyst-7'") == "connected as 'analyst-7'"
        assert redactor.redact("sig=unique-signature-1") == f"sig={MASK}"

    @pytest.mark.parametrize("word", ["public", "postgres", "select", "PUBLIC", "abc12"])
    def test_a_common_word_or_a_short_secret_is_not_masked(self, word: str) -> None:
        redactor = Redactor()
        assert redactor.watch({"password": word}) == ["password"]
        assert redactor.redact(f"schema {word}.orders") == f"schema {word}.orders"

    def test_an_embedded_common_word_is_reported_but_the_whole_value_is_masked(self) -> None:
        redactor = Redactor()
        dsn = "host=db.example user=me password=public dbname=shop"
        assert redactor.watch({"dsn": dsn}) == ["dsn"]
        assert redactor.redact(f"[{dsn}] public") == f"[{MASK}] public"

    @pytest.mark.parametrize(
        ("secret", "ordinary", "shown"),
        [
            ("data_engineer_team!", ["data_engineer_team"], "connected as 'data_engineer_team'"),
            ("information_schema1", [], "select * from information_schema.tables"),
            (
                "Zq8-db.example.com:5432/prod-7",
                ["db.example.com:5432/prod"],
                "server db.example.com:5432/prod",
            ),
        ],
    )
    def test_a_fragment_that_is_ordinary_text_is_not_masked(
        self, secret: str, ordinary: list[str], shown: str
    ) -> None:
        """Masking the user name because the password starts with it would tell the password."""
        redactor = Redactor()
        assert redactor.watch({"password": secret}, ordinary=ordinary) == []
        assert redactor.redact(shown) == shown
        assert redactor.redact(f"[{secret}]") == f"[{MASK}]"

    def test_the_source_id_counts_as_ordinary_text(self) -> None:
        assert is_unmaskable("warehouse-eu", ["warehouse-eu"])
        assert not is_unmaskable("warehouse-eu", ["shop"])
        assert masked_texts("public") == frozenset()


def _plain_spans(text: str, known: set[str]) -> list[tuple[int, int]]:
    """The reference: every occurrence of every known text, overlapping ones merged."""
    found = sorted(
        (start, start + len(item))
        for item in known
        for start in range(len(text))
        if text.startswith(item, start)
    )
    spans: list[tuple[int, int]] = []
    for start, end in found:
        if spans and start < spans[-1][1]:
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
        else:
            spans.append((start, end))
    return spans


@settings(max_examples=200, deadline=None, database=None)
@given(
    secret=st.text(alphabet="ab'\\\n<é\U0001f600", min_size=6, max_size=40),
    filler=st.lists(st.text(alphabet="ab'\\\n<é\U0001f600", max_size=30), max_size=6),
    block=st.sampled_from([7, 16, 50, 1 << 20]),
)
def test_the_rolling_hash_finds_what_a_plain_search_finds(secret: str, filler: list[str], block: int) -> None:
    """Across block boundaries too (blocks as short as 7 characters)."""
    known = set(masked_texts(secret))
    hashes = KeyedTextHashes()
    hashes.add(known)
    text = secret.join(filler) + secret[: len(secret) // 2] + secret
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(secret_hashes, "_BLOCK", block)
        found = hashes.spans(text)
    assert found == _plain_spans(text, {item for item in known if len(item) >= 6})


def test_registering_a_secret_equal_to_an_option_warns_without_telling_it(
    registry: DataSourceRegistry, service: FakeService
) -> None:
    service.accepted_password = "db.example"
    config = fake_config("shop", password="db.example")  # the password is the host name
    with pytest.warns(SecretNotMaskedWarning) as warned:
        asyncio.run(registry.register_data_source(config))
    message = str(warned[0].message)
    assert message.startswith("shop: password cannot be masked in outputs")
    assert "db.example" not in message
    assert registry.redactor.redact("host db.example") == "host db.example"
