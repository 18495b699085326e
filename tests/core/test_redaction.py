"""Masking of secrets in structures (sanitize) and in free text (mask_text, Redactor)."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepanalyze_jupyter.redaction import (
    MASK,
    MIN_REDACTED_LENGTH,
    Redactor,
    is_secret_key,
    mask_text,
    sanitize,
)

examples = settings(max_examples=150, deadline=None, database=None)

#: Characters allowed raw in the password part of a URI's userinfo (RFC 3986).
USERINFO_CHARS = "abcXYZ019-._~!$&'()*+,;=:"


def libpq_quoted(password: str) -> str:
    """``password`` as a quoted libpq key=value value."""
    return "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"


def libpq_unquoted(password: str) -> str:
    """``password`` as an unquoted libpq value: a backslash escapes spaces, quotes, backslashes."""
    return "".join("\\" + char if char in " \t\\'" else char for char in password)


class TestSecretKeys:
    @pytest.mark.parametrize(
        "key",
        [
            "password",
            "Password",
            "PASSWORD",
            "db_password",
            "sas_Token",
            "SAS_TOKEN",
            "AccountKey",
            "account_key",
            "client_secret",
            "connection_string",
            "ConnectionString",
            "api_key",
            "sslpassword",
            "pwd",
            "credential",
        ],
    )
    def test_secret_sounding_keys(self, key: str) -> None:
        assert is_secret_key(key)

    @pytest.mark.parametrize(
        "key", ["host", "port", "user", "database", "container", "account_name", 5, None]
    )
    def test_ordinary_keys(self, key: object) -> None:
        assert not is_secret_key(key)


class TestSanitize:
    def test_masks_any_case_at_any_depth(self) -> None:
        value = {
            "Password": "top-level-a",
            "PASSWORD": "top-level-b",
            "host": "db.example",
            "port": 5432,
            "nested": {
                "sas_Token": "nested-c",
                "deeper": {
                    "Client_Secret": "deep-d",
                    "items": [{"pwd": "in-list-e"}, ("t", {"Token": "tup-f"})],
                },
            },
            "list": [{"AccountKey": "listed-g"}, "plain text"],
        }
        result = sanitize(value)
        text = repr(result)
        for secret in ["top-level-a", "top-level-b", "nested-c", "deep-d", "in-list-e", "tup-f", "listed-g"]:
            assert secret not in text
        assert result["host"] == "db.example"
        assert result["port"] == 5432
        assert result["nested"]["deeper"]["items"][0] == {"pwd": MASK}
        assert result["nested"]["deeper"]["items"][1] == ("t", {"Token": MASK})
        assert result["list"][1] == "plain text"

    def test_leaves_the_input_untouched(self) -> None:
        value = {"password": "p", "nested": {"token": "t"}}
        sanitize(value)
        assert value == {"password": "p", "nested": {"token": "t"}}

    def test_empty_and_missing_secrets_stay_visible_as_empty(self) -> None:
        assert sanitize({"password": None, "token": ""}) == {"password": None, "token": ""}

    def test_a_secret_key_holding_a_structure_is_masked_whole(self) -> None:
        assert sanitize({"credentials": {"user": "ana", "other": "x"}}) == {"credentials": MASK}

    def test_extra_secret_keys(self) -> None:
        result = sanitize({"Pin": "1234", "Host": "h"}, extra_secret_keys=["pin"])
        assert result == {"Pin": MASK, "Host": "h"}

    def test_masks_secrets_embedded_in_values(self) -> None:
        value = {
            "dsn": "host=db user=ana password='with spaces' dbname=shop",
            "uri": ["postgresql://ana:p%40ss%3Aw0rd@db:5432/shop"],
            "conn": "AccountName=dev;AccountKey=Eby8vdM02xNOcqF==;BlobEndpoint=http://127.0.0.1:10000/dev",
        }
        result = sanitize(value)
        assert result == {
            "dsn": f"host=db user=ana password={MASK} dbname=shop",
            "uri": [f"postgresql://ana:{MASK}@db:5432/shop"],
            "conn": f"AccountName=dev;AccountKey={MASK};BlobEndpoint=http://127.0.0.1:10000/dev",
        }

    def test_other_values_pass_through(self) -> None:
        marker = object()
        assert sanitize(marker) is marker
        assert sanitize(3.5) == 3.5
        assert sanitize("plain") == "plain"


class TestMaskText:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("postgresql://ana:s3cret-pw@db:5432/shop", f"postgresql://ana:{MASK}@db:5432/shop"),
            ("postgres://ana:p%40ss%3Aw0rd%2F@db/shop", f"postgres://ana:{MASK}@db/shop"),
            ("postgresql://ana:p!$&'()*+,;=:x@db/shop", f"postgresql://ana:{MASK}@db/shop"),
            ("postgresql://ana:p@ssw0rd@db/shop", f"postgresql://ana:{MASK}@db/shop"),
            ("postgresql://:only-a-password@db", f"postgresql://:{MASK}@db"),
            (
                "postgresql://db/shop?user=ana&password=in-query",
                f"postgresql://db/shop?user=ana&password={MASK}",
            ),
            (
                "failed: 'postgresql://u:secretpw@h/db' refused",
                f"failed: 'postgresql://u:{MASK}@h/db' refused",
            ),
            ("host=db password=plain user=ana", f"host=db password={MASK} user=ana"),
            ("host=db password='with spaces' user=ana", f"host=db password={MASK} user=ana"),
            (r"host=db password='it\'s a \\ test' user=ana", f"host=db password={MASK} user=ana"),
            (r"host=db password=escaped\ space user=ana", f"host=db password={MASK} user=ana"),
            ("host=db PASSWORD = 'x y' user=ana", f"host=db PASSWORD = {MASK} user=ana"),
            ("sslpassword=keypass host=db", f"sslpassword={MASK} host=db"),
            (
                "DefaultEndpointsProtocol=https;AccountName=dev;AccountKey=Eby8vdM02x+OcqF/KBHI==;EndpointSuffix=x",
                f"DefaultEndpointsProtocol=https;AccountName=dev;AccountKey={MASK};EndpointSuffix=x",
            ),
            (
                "BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature=sv=2020-08-04&ss=b&sig=ab%2B",
                f"BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature={MASK}",
            ),
            (
                "https://a.blob.core.windows.net/c/b.csv?sv=2021-06-08&se=2030&sig=AbC%2Bd%3D&sp=r",
                f"https://a.blob.core.windows.net/c/b.csv?sv=2021-06-08&se=2030&sig={MASK}&sp=r",
            ),
            ("sig=bare-signature&sv=1", f"sig={MASK}&sv=1"),
        ],
    )
    def test_masks_embedded_secrets(self, text: str, expected: str) -> None:
        assert mask_text(text) == expected

    @pytest.mark.parametrize(
        "text",
        [
            "SELECT * FROM orders WHERE region = 'EU'",
            "postgresql://ana@db:5432/shop",
            "host=db user=ana dbname=shop",
            "see https://example.org/design?page=2",
            "mail ana@example.org",
        ],
    )
    def test_leaves_ordinary_text_alone(self, text: str) -> None:
        assert mask_text(text) == text

    @examples
    @given(st.text(min_size=1, max_size=40))
    def test_any_percent_encoded_uri_password(self, password: str) -> None:
        text = f"postgresql://ana:{quote(password, safe='')}@db.example:5432/shop?sslmode=require"
        assert mask_text(text) == f"postgresql://ana:{MASK}@db.example:5432/shop?sslmode=require"

    @examples
    @given(st.text(alphabet=USERINFO_CHARS, min_size=1, max_size=40))
    def test_any_raw_userinfo_password(self, password: str) -> None:
        text = f"postgresql://ana:{password}@db.example/shop"
        assert mask_text(text) == f"postgresql://ana:{MASK}@db.example/shop"

    @examples
    @given(st.text(alphabet=st.characters(codec="ascii", categories=("L", "N", "P", "S", "Zs")), max_size=40))
    def test_any_quoted_dsn_password(self, password: str) -> None:
        text = f"host=db.example password={libpq_quoted(password)} dbname=shop"
        assert mask_text(text) == f"host=db.example password={MASK} dbname=shop"

    @examples
    @given(
        st.text(
            alphabet=st.characters(codec="ascii", categories=("L", "N", "P", "S", "Zs")),
            min_size=1,
            max_size=40,
        )
    )
    def test_any_unquoted_dsn_password(self, password: str) -> None:
        text = f"host=db.example password={libpq_unquoted(password)} dbname=shop"
        assert mask_text(text) == f"host=db.example password={MASK} dbname=shop"


class TestRedactor:
    def test_masks_registered_values_anywhere(self) -> None:
        redactor = Redactor()
        redactor.add("shop", ["hunter2-long", "second-secret"])
        text = "error: hunter2-long refused; xxsecond-secretxx"
        assert redactor.redact(text) == f"error: {MASK} refused; xx{MASK}xx"
        assert redactor.contains_secret(text)
        assert not redactor.contains_secret("nothing here")

    def test_short_values_are_not_watched(self) -> None:
        redactor = Redactor()
        redactor.add("shop", ["a" * (MIN_REDACTED_LENGTH - 1)])
        assert redactor.redact("aaaaa") == "aaaaa"

    def test_the_secrets_inside_a_connection_string_are_watched_too(self) -> None:
        redactor = Redactor()
        redactor.add("blob", ["AccountName=dev;AccountKey=Eby8vdM02xNOcqF==;BlobEndpoint=x"])
        assert redactor.redact("key Eby8vdM02xNOcqF== leaked") == f"key {MASK} leaked"

    def test_longest_value_wins(self) -> None:
        redactor = Redactor()
        redactor.add("a", ["secret", "secret-and-more"])
        assert redactor.redact("secret-and-more") == MASK

    def test_removed_and_replaced_secrets_stay_masked(self) -> None:
        redactor = Redactor()
        redactor.add("a", ["shared-secret"])
        redactor.add("b", ["shared-secret", "only-b-secret"])
        redactor.discard("b")
        assert redactor.redact("shared-secret only-b-secret") == f"{MASK} {MASK}"
        redactor.replace("a", ["new-a-secret"])
        assert redactor.redact("shared-secret new-a-secret") == f"{MASK} {MASK}"

    def test_repr_shows_counts_only(self) -> None:
        redactor = Redactor()
        redactor.add("a", ["first-secret", "second-secret"])
        assert repr(redactor) == "<Redactor watching 2 value(s)>"

    def test_is_thread_safe(self) -> None:
        redactor = Redactor()
        failures: list[Any] = []

        def worker(number: int) -> None:
            for round_ in range(25):
                value = f"secret-{number}-{round_}"
                redactor.add(f"owner{number}", [value])
                if redactor.redact(f"<{value}>") != f"<{MASK}>":
                    failures.append(value)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
