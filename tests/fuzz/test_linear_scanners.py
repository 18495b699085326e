"""Every text scanner of the magics is linear: 1 MB of adversarial text is read in well under 2 s.

The scanners are the line splitter, the argument parsers, the literal-secret check, the
SQL parameter scanner and the history scrubber; each is fed 1 MB lines built from the
pieces that make naive scanners back off (quotes, colons, ``::``, open comments and
dollar quotes, ``$$``, backslashes, ``=`` and ``&``), whole and with an open quote in
front. The bound is on the CPU time of the call, so that a loaded machine does not make
it flaky; a quadratic scanner takes minutes on these lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

from deepanalyze_jupyter.models import OptionSpec
from deepanalyze_jupyter.notebook.history import scrub_text
from deepanalyze_jupyter.notebook.magic_args import query_parser, split_line
from deepanalyze_jupyter.notebook.secret_input import find_literal_secrets
from deepanalyze_jupyter.sqlparams import find_parameters, strip_terminator, to_numbered, to_pyformat

MEGABYTE = 1_000_000
#: CPU seconds one scanner may take over 1 MB.
BOUND = 2.0
#: Pieces that make scanners back off, repeated to fill a line.
UNITS = (
    "'",
    '"',
    ":",
    "::",
    ":a ",
    "\\:",
    "/*",
    "*/",
    "--",
    "$$",
    "$a$",
    "\\",
    "\\'",
    '"a\\"',
    "E'\\",
    "=",
    "&sig=",
    "a ",
    "a",
    "--password=",
    "postgresql://u:",
    "@",
)
#: Put in front of the repeated piece: nothing, or something left open.
OPENERS = ("", "'", '"', "/*", "$$", "E'")
#: The openers every piece is tried after (mixtures try the others).
MAIN_OPENERS = ("", "'")
SPECS = (
    OptionSpec("host", str, "server name"),
    OptionSpec("dsn", str, "connection string"),
    OptionSpec("password", str, "login password", secret=True),
)


def line_of(unit: str, opener: str = "", size: int = MEGABYTE) -> str:
    """``opener`` then ``unit`` repeated, ``size`` characters in all."""
    return (opener + unit * (size // len(unit) + 1))[:size]


def scan_words(line: str) -> list[str]:
    return split_line(line, strict=False)


def literal_secrets(line: str) -> Any:
    return find_literal_secrets(["add", "x", "--dsn", line, line[: MEGABYTE // 2]], SPECS)


def scrub(line: str) -> str:
    return scrub_text(line + "\n" + line, [("hunter2-secret", "********"), ("'", "********")], line=line)


def query_header(line: str) -> Any:
    try:
        return query_parser().parse_words(["src", "-o", "x", "--format", line, "--source-column", line])
    except UsageError:  # a value that looks like an option is refused: as fast
        return None


SCANNERS: dict[str, Callable[[str], Any]] = {
    "split_line": scan_words,
    "find_literal_secrets": literal_secrets,
    "scrub_text": scrub,
    "query_parser": query_header,
    "find_parameters": find_parameters,
    "to_pyformat": to_pyformat,
    "to_numbered": to_numbered,
    "strip_terminator": strip_terminator,
}


def cpu_seconds(scanner: Callable[[str], Any], text: str) -> float:
    start = time.process_time()
    scanner(text)
    return time.process_time() - start


@pytest.mark.parametrize("name", sorted(SCANNERS))
def test_each_scanner_reads_a_megabyte_of_adversarial_text_in_bounded_time(name: str) -> None:
    scanner = SCANNERS[name]
    slowest = max(
        (cpu_seconds(scanner, line_of(unit, opener)), unit, opener)
        for unit in UNITS
        for opener in MAIN_OPENERS
    )
    print(f"{name}: slowest 1 MB line {slowest[0]:.2f} s CPU ({slowest[1]!r} after {slowest[2]!r})")
    assert slowest[0] < BOUND, slowest


@pytest.mark.parametrize("name", sorted(SCANNERS))
def test_each_scanner_grows_linearly(name: str) -> None:
    """Ten times the text takes about ten times as long (a quadratic scanner: a hundred)."""
    scanner = SCANNERS[name]
    worst = 0.0
    for unit in ("'", ":a ", "\\"):
        small = min(cpu_seconds(scanner, line_of(unit, "'", MEGABYTE // 10)) for _ in range(2))
        large = min(cpu_seconds(scanner, line_of(unit, "'", MEGABYTE)) for _ in range(2))
        worst = max(worst, large / max(small, 0.005))
    print(f"{name}: 1 MB takes {worst:.1f}x the time of 100 KB")
    assert worst < 30


@settings(max_examples=12, deadline=None, derandomize=True, database=None)
@given(
    st.lists(st.sampled_from(UNITS + OPENERS[1:]), min_size=1, max_size=6),
    st.sampled_from(sorted(SCANNERS)),
)
def test_mixtures_of_adversarial_pieces_stay_bounded(pieces: list[str], name: str) -> None:
    text = line_of("".join(pieces))
    assert cpu_seconds(SCANNERS[name], text) < BOUND
