"""Finding and rewriting ``:name`` placeholders without touching SQL that only looks like one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deepanalyze_jupyter.sqlparams import (
    bind_literals,
    find_parameters,
    missing_parameters,
    strip_terminator,
    to_numbered,
    to_pyformat,
)

NOT_PLACEHOLDERS = [
    "SELECT a::int FROM t",
    "SELECT 'x'::text",
    "SELECT arr[lo:hi] FROM t",
    "SELECT f(a := 1)",
    "SELECT ':name'",
    "SELECT E'it\\'s :name'",
    'SELECT ":name" FROM t',
    "SELECT $$ :name $$",
    "SELECT $tag$ :name $tag$",
    "SELECT 1 -- :name",
    "SELECT /* :name /* nested :inner */ :still */ 1",
    "SELECT \\:name",
    "SELECT a$b:c FROM t",
    "SELECT 12:30",
]


@pytest.mark.parametrize("sql", NOT_PLACEHOLDERS)
def test_sql_that_only_looks_like_a_placeholder_is_left_alone(sql: str) -> None:
    assert find_parameters(sql) == []


def test_placeholders_are_found_once_each_in_order() -> None:
    sql = "SELECT * FROM t WHERE a = :a AND b = :b::int AND (c = :a OR d IN (:c))"
    assert find_parameters(sql) == ["a", "b", "c"]


def test_a_placeholder_right_after_an_operator_or_a_parenthesis_counts() -> None:
    assert find_parameters("SELECT x=:v, (:w), [:z], :_u1") == ["v", "w", "z", "_u1"]


def test_to_pyformat_rewrites_placeholders_and_escapes_percent_signs() -> None:
    sql = "SELECT a % 2, '100%' FROM t WHERE b LIKE :pattern AND c::text = :c -- 5%"
    assert to_pyformat(sql) == (
        "SELECT a %% 2, '100%%' FROM t WHERE b LIKE %(pattern)s AND c::text = %(c)s -- 5%%"
    )


def test_to_pyformat_drops_the_backslash_of_an_escaped_colon() -> None:
    assert to_pyformat("SELECT \\:literal, :value") == "SELECT :literal, %(value)s"


def test_to_numbered_gives_one_number_per_name() -> None:
    bound, names = to_numbered("SELECT :b, :a, :b")
    assert bound.text == "SELECT $1, $2, $1"
    assert names == ["b", "a"]


def test_missing_parameters_names_every_placeholder_without_a_value() -> None:
    assert missing_parameters("SELECT :a, :b, :c", {"b": 1}) == ["a", "c"]
    assert missing_parameters("SELECT :a", None) == ["a"]
    assert missing_parameters("SELECT 1", None) == []


def test_bind_literals_uses_the_given_quoting_once_per_name() -> None:
    calls: list[object] = []

    def literal(value: object) -> str:
        calls.append(value)
        return f"<{value}>"

    bound = bind_literals("SELECT :x, :y, :x", {"x": 1, "y": "two", "unused": 3}, literal)
    assert bound.text == "SELECT <1>, <two>, <1>"
    assert calls == [1, "two"]


def test_bind_literals_refuses_a_missing_value() -> None:
    with pytest.raises(KeyError, match="absent"):
        bind_literals("SELECT :absent", {}, repr)


def test_positions_in_the_rewritten_text_map_back_to_the_original() -> None:
    original = "SELECT :long_name + 1 FROM nope WHERE x = \\:y AND z = :v"
    bound = bind_literals(original, {"long_name": 7, "v": "abc"}, lambda value: repr(value))
    for word in ("FROM", "nope", "WHERE", "AND", "z ="):
        assert bound.original_position(bound.text.index(word) + 1) == original.index(word) + 1
    # a position inside a literal points at its placeholder
    assert bound.original_position(bound.text.index("'abc'") + 2) == original.index(":v") + 1
    assert bound.original_position(1) == 1


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1;", "SELECT 1"),
        ("SELECT 1 ;  \n", "SELECT 1   \n"),
        ("SELECT 1; -- done", "SELECT 1 -- done"),
        ("SELECT ';'", "SELECT ';'"),
        ("SELECT 1 -- ;", "SELECT 1 -- ;"),
        ("SELECT 1; SELECT 2", "SELECT 1; SELECT 2"),
        ("", ""),
    ],
)
def test_strip_terminator_removes_only_a_final_semicolon(sql: str, expected: str) -> None:
    assert strip_terminator(sql) == expected


identifiers = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)


@given(st.lists(identifiers, min_size=1, max_size=5))
def test_every_written_placeholder_is_found(names: list[str]) -> None:
    sql = "SELECT " + ", ".join(f":{name}" for name in names) + " FROM t WHERE x::text = 'a:b'"
    assert find_parameters(sql) == list(dict.fromkeys(names))


@given(st.text(alphabet=st.characters(blacklist_characters=":\\"), max_size=60))
def test_text_without_colons_is_only_escaped_for_percent_signs(sql: str) -> None:
    assert find_parameters(sql) == []
    assert to_pyformat(sql) == sql.replace("%", "%%")
