"""Every secret-masking scan is linear: 1 MB of adversarial text is masked in well under 2 s.

Each input repeats what makes a backtracking pattern or a rolling hash work hardest:
prefixes of the patterns (``password='``, ``AccountKey=``, ``sig=``, ``://``), runs of
the characters they stop at (``=``, ``;``, ``@``, quotes, backslashes), long runs of
letters, and prefixes of the registered secrets themselves. Each scan runs in a child
process, so a quadratic one fails at the bound instead of hanging the run; the bound is
on the child's CPU time, which other work on a busy machine does not inflate.
"""

from __future__ import annotations

import base64
import multiprocessing
import time
from collections.abc import Callable

import pytest

from deepanalyze_jupyter.redaction import Redactor, is_secret_key, mask_text, sanitize

SIZE = 1_000_000
#: Far above what a linear scan of 1 MB takes here (tens of milliseconds), far below a quadratic one.
BOUND = 2.0

KEY = base64.b64encode(bytes(range(64))).decode()
SECRETS = [
    "Pw-7f3c9a1e-long-enough-to-cut-3b8d",
    KEY,
    f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};EndpointSuffix=core.windows.net",
    "host=db user=me password='it\\'s-a-p@ss' dbname=shop",
    "https://acct.blob.core.windows.net/c?sv=2024-01-01&sig=Zm9vYmFyYmF6cXV4cXV1eA%3D%3D",
    "a" * 41,
]

PIECES = [
    "a",
    "Ab",
    "://",
    "a://b:",
    "a:",
    "x://u:p",
    "password=",
    "password='",
    "password=\\",
    "password= ",
    "sslpassword='\\'",
    "AccountKey=",
    "SharedAccessSignature=",
    "sig=",
    "?sig=",
    "&password=",
    "=",
    ";",
    "@",
    "'",
    "\\",
    " ",
    "%2",
    "&amp;",
    "Pw-7f3c9a1e-long-enough",
    KEY[:23],
    KEY[:5],
    "https://acct.blob.core.windows.net/c?sv=2024-01-01&sig=",
]


def _line(piece: str) -> str:
    return (piece * (SIZE // len(piece) + 1))[:SIZE]


def _mixed() -> str:
    return _line("".join(PIECES))


def _watching() -> Redactor:
    redactor = Redactor()
    redactor.add("fuzz", SECRETS)
    return redactor


def _scan_redactor(text: str) -> object:
    return _watching().redact(text)


def _scan_sanitize(text: str) -> object:
    return sanitize({"password": text, "dsn": text, "nested": [{"token": 1, "value": text}]})


SCANS: dict[str, Callable[[str], object]] = {
    "mask_text": mask_text,
    "sanitize": _scan_sanitize,
    "is_secret_key": is_secret_key,
    "Redactor.redact": _scan_redactor,
}


def _timed(scan: Callable[[str], object], text: str, results: multiprocessing.Queue[float]) -> None:
    started = time.process_time()
    scan(text)
    results.put(time.process_time() - started)


def _elapsed(scan: Callable[[str], object], text: str) -> float:
    """CPU seconds ``scan(text)`` took in a child process; the bound plus one if it did not end."""
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue[float] = context.Queue()
    child = context.Process(target=_timed, args=(scan, text, results), daemon=True)
    child.start()
    child.join(BOUND * 10)
    if child.is_alive():
        child.kill()
        child.join()
        return BOUND + 1
    return results.get(timeout=5)


@pytest.mark.parametrize("scan", SCANS, ids=list(SCANS))
@pytest.mark.parametrize("piece", [*PIECES, "mixed"], ids=[*(repr(piece) for piece in PIECES), "mixed"])
def test_one_megabyte_of_adversarial_text_is_masked_in_linear_time(scan: str, piece: str) -> None:
    text = _mixed() if piece == "mixed" else _line(piece)
    elapsed = _elapsed(SCANS[scan], text)
    assert elapsed < BOUND, f"{scan} took {elapsed:.2f} s over 1 MB of {piece!r}"


def test_a_megabyte_of_secrets_is_masked_whole() -> None:
    text = _line(SECRETS[0] + " ")
    masked = _watching().redact(text)
    assert SECRETS[0][:16] not in masked
    assert masked.startswith("******** ********")
