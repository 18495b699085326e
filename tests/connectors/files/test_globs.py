"""Shell-style globs over '/'-separated paths."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deepanalyze_jupyter.connectors.files.globs import glob_escape, glob_matcher, glob_prefix, is_glob


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sales/2024/*.csv", True),
        ("data/file?.csv", True),
        ("data/[ab].csv", True),
        ("**/*.parquet", True),
        ("sales/2024/jan.csv", False),
        ("", False),
        ("folder/", False),
    ],
)
def test_is_glob(text: str, expected: bool) -> None:
    assert is_glob(text) is expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("sales/2024/*.csv", "sales/2024/"),
        ("sales/q*/x.csv", "sales/"),
        ("sales/data_*.csv", "sales/"),
        ("**/*.parquet", ""),
        ("*.csv", ""),
        ("a/b/**", "a/b/"),
        ("a/[xy]/c", "a/"),
        ("a/b/c.csv", "a/b/"),
    ],
)
def test_glob_prefix(pattern: str, expected: str) -> None:
    assert glob_prefix(pattern) == expected


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("sales/2024/*.csv", "sales/2024/jan.csv", True),
        ("sales/2024/*.csv", "sales/2024/q1/jan.csv", False),
        ("sales/2024/*.csv", "sales/2024/jan.parquet", False),
        ("*.csv", "a.csv", True),
        ("*.csv", "dir/a.csv", False),
        ("file?.csv", "file1.csv", True),
        ("file?.csv", "file10.csv", False),
        ("a?b", "a/b", False),
        ("data/[ab].csv", "data/a.csv", True),
        ("data/[ab].csv", "data/c.csv", False),
        ("data/[!ab].csv", "data/c.csv", True),
        ("data/[!ab].csv", "data/a.csv", False),
        ("data/[!ab].csv", "data//.csv", False),
        ("x[/]y", "x/y", False),
        ("data/[0-9].csv", "data/7.csv", True),
        ("data/[0-9].csv", "data/x.csv", False),
        ("data/[].csv", "data/[].csv", True),
        ("data/[abc", "data/[abc", True),
        ("**/*.parquet", "a.parquet", True),
        ("**/*.parquet", "x/y/a.parquet", True),
        ("**/*.parquet", "x/y/a.csv", False),
        ("a/**/b.csv", "a/b.csv", True),
        ("a/**/b.csv", "a/x/y/b.csv", True),
        ("a/**/b.csv", "ab.csv", False),
        ("a/**", "a/x/y/z", True),
        ("a/**", "b/x", False),
        ("**", "anything/at/all", True),
        ("a**b", "axxb", True),
        ("a**b", "ax/xb", False),
        ("Sales/*.csv", "sales/a.csv", False),
        ("data/a+b (1).csv", "data/a+b (1).csv", True),
        ("data/a.csv", "data/abcsv", False),
    ],
)
def test_glob_matcher(pattern: str, path: str, expected: bool) -> None:
    assert glob_matcher(pattern)(path) is expected


_segment = st.text(alphabet="abc.-_0", min_size=1, max_size=6)


@given(st.lists(_segment, min_size=1, max_size=4))
def test_a_literal_pattern_matches_only_itself(segments: list[str]) -> None:
    path = "/".join(segments)
    assert glob_matcher(path)(path)
    assert not glob_matcher(path)(path + "x")


@given(st.lists(_segment, min_size=1, max_size=5))
def test_double_star_matches_every_depth(segments: list[str]) -> None:
    path = "/".join(segments)
    assert glob_matcher("**/" + segments[-1])(path)
    assert glob_matcher("**")(path)


@given(st.lists(_segment, min_size=2, max_size=5))
def test_single_star_never_crosses_a_slash(segments: list[str]) -> None:
    assert not glob_matcher("*")("/".join(segments))


@given(st.text(alphabet="ab/*?[]!", max_size=12), st.lists(_segment, min_size=1, max_size=4))
def test_every_match_starts_with_the_prefix(pattern: str, segments: list[str]) -> None:
    path = "/".join(segments)
    if glob_matcher(pattern)(path):
        assert path.startswith(glob_prefix(pattern))


@pytest.mark.parametrize(
    ("name", "other"),
    [("data[1].csv", "data1.csv"), ("what?.csv", "whatX.csv"), ("star*.csv", "starry.csv"), ("**", "a/b")],
)
def test_an_escaped_name_matches_that_name_only(name: str, other: str) -> None:
    matches = glob_matcher(glob_escape(name))
    assert matches(name)
    assert not matches(other)
    assert glob_escape("plain/name.csv") == "plain/name.csv"
