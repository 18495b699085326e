"""What masking registered secrets costs an output, against a plain regex over the same secrets.

The redactor keeps keyed hashes only and finds every form and long fragment of each
secret with a rolling hash; the baseline is what a redactor holding the secrets in plain
text would do: one compiled alternation of the secrets as they are (no other form). Both
mask the same outputs (a 10 MB ``print`` and the ``text/html`` of a 100,000-row
DataFrame, each holding a few secrets), interleaved; it prints medians of ``--runs`` and
the redactor's time as a multiple of the regex's.

    python bench/bench_redaction.py [--runs 7]
"""

from __future__ import annotations

import argparse
import base64
import re
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deepanalyze_jupyter.redaction import Redactor  # noqa: E402


def _secrets() -> list[str]:
    """A password, an account key and a SAS connection string, like a session holds."""
    key = base64.b64encode(secrets.token_bytes(64)).decode()
    return [
        f"pw-{secrets.token_urlsafe(12)}",
        key,
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={key};EndpointSuffix=core.windows.net",
        f"BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=sv=2022&sig={secrets.token_urlsafe(32)}",
    ]


def _outputs(values: list[str]) -> dict[str, str]:
    line = "2024-01-03 18:06:00  EU  order 123456  quantity 2  discount 0.15  status shipped\n"
    printed = line * (10_000_000 // len(line))
    cut = len(printed) // 2
    printed = printed[:cut] + values[0] + printed[cut:]
    rows = 100_000
    frame = pd.DataFrame(
        {
            "id": range(rows),
            "region": ["EU", "US", "APAC", "LATAM"] * (rows // 4),
            "amount": [n * 0.37 for n in range(rows)],
            "note": [f"order note {n}" for n in range(rows)],
        }
    )
    frame.loc[rows // 2, "note"] = values[1]
    return {"10 MB print": printed, "100k-row DataFrame text/html": frame.to_html()}


def _time(function: Callable[[str], str], text: str) -> float:
    started = time.perf_counter()
    function(text)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    values = _secrets()
    redactor = Redactor()
    redactor.add("bench", values)
    plain = re.compile("|".join(re.escape(value) for value in sorted(values, key=len, reverse=True)))
    methods: dict[str, Callable[[str], str]] = {
        "regex over plain secrets": lambda text: plain.sub("********", text),
        "keyed hashes, every form": redactor.redact,
    }
    for name, text in _outputs(values).items():
        masked = redactor.redact(text)
        assert values[0] not in masked
        assert values[1] not in masked
        times: dict[str, list[float]] = {method: [] for method in methods}
        for _ in range(runs):
            for method, function in methods.items():
                times[method].append(_time(function, text))
        baseline = statistics.median(times["regex over plain secrets"])
        print(f"{name} ({len(text) / 1e6:.1f} M characters), median of {runs}:")
        for method, measured in times.items():
            median = statistics.median(measured)
            print(
                f"  {method:26} {median * 1000:8.1f} ms (min {min(measured) * 1000:.1f})"
                f"  {median / baseline:5.2f}x"
            )


if __name__ == "__main__":
    main()
