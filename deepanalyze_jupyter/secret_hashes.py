"""Finding known texts in an output without keeping them: keyed hashes and a rolling hash.

The redactor must not hold a secret in plain text, so it keeps, for each text it masks,
two keyed hashes only: a 32-bit polynomial hash with a random base, which numpy rolls
over a whole output in a few vector passes (Rabin-Karp, after a prefix sum), and a keyed
BLAKE2b digest, which confirms a candidate span before it is masked. Both keys are made
at random per instance and live only in memory.

The scan is linear in the text: a fixed number of vector passes per block of
:data:`_BLOCK` characters find the positions where the first
:data:`WINDOW` characters may start a known text; the exact hash of each known length is
then taken at those positions only, and a span is confirmed with BLAKE2b only when it
would widen what is masked already.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["WINDOW", "KeyedTextHashes"]

#: The shortest text that can be registered, and the window of the first pass.
WINDOW = 6
_MASK32 = 0xFFFFFFFF
#: Characters scanned per block, which bounds the scan's working memory.
_BLOCK = 1 << 20
#: The first pass looks the top bits of each window's hash up in a table of this many bits.
_FILTER_BITS = 16

_U32 = npt.NDArray[np.uint32]


@dataclass(frozen=True)
class _Snapshot:
    """What a scan reads: replaced whole when texts are added, so scans need no lock."""

    filter: npt.NDArray[np.bool_]
    #: Sorted hashes of the known texts, by length.
    hashes: dict[int, _U32] = field(default_factory=dict)
    digests: frozenset[bytes] = frozenset()

    @property
    def longest(self) -> int:
        return max(self.hashes, default=0)


class KeyedTextHashes:
    """A set of texts, kept as keyed hashes only, that can be found in any string."""

    def __init__(self) -> None:
        self._base = secrets.randbits(32) | 1  # odd: invertible modulo 2**32
        self._key = secrets.token_bytes(16)
        self._lock = threading.Lock()
        self._hashes: dict[int, set[int]] = {}
        self._snapshot = _Snapshot(np.zeros(1 << _FILTER_BITS, dtype=np.bool_))
        self._powers = np.ones(1, dtype=np.uint32)
        self._inverse_powers = np.ones(1, dtype=np.uint32)

    def __repr__(self) -> str:
        return f"<KeyedTextHashes of {len(self._snapshot.digests)} text(s)>"

    def __len__(self) -> int:
        return len(self._snapshot.digests)

    def add(self, texts: set[str]) -> None:
        """Remember ``texts`` (each at least :data:`WINDOW` characters) by their hashes."""
        texts = {text for text in texts if len(text) >= WINDOW}
        if not texts:
            return
        with self._lock:
            current = self._snapshot
            table = current.filter.copy()
            digests = set(current.digests)
            for text in texts:
                self._hashes.setdefault(len(text), set()).add(self._rolling_hash(text))
                table[self._rolling_hash(text[:WINDOW]) >> (32 - _FILTER_BITS)] = True
                digests.add(self.fingerprint(text))
            self._snapshot = _Snapshot(
                table,
                {length: np.array(sorted(found), dtype=np.uint32) for length, found in self._hashes.items()},
                frozenset(digests),
            )

    def contains(self, text: str) -> bool:
        """Whether ``text`` is one of the texts remembered (compared by digest)."""
        return self.fingerprint(text) in self._snapshot.digests

    def spans(self, text: str) -> list[tuple[int, int]]:
        """The ``(start, end)`` spans of ``text`` covered by remembered texts, merged, in order.

        Overlapping occurrences are merged into one span; touching ones are not.
        """
        snapshot = self._snapshot
        if len(text) < WINDOW or not snapshot.hashes:
            return []
        found = self._candidates(text, snapshot)
        return self._confirmed(text, found, snapshot.digests)

    # -- hashing ---------------------------------------------------------------------

    def _rolling_hash(self, text: str) -> int:
        value = 0
        for char in text:
            value = (value * self._base + ord(char)) & _MASK32
        return value

    def fingerprint(self, text: str) -> bytes:
        """The keyed BLAKE2b digest of ``text``."""
        data = text.encode("utf-8", "surrogatepass")
        return hashlib.blake2b(data, key=self._key, digest_size=16).digest()

    def _power_tables(self, size: int) -> tuple[_U32, _U32]:
        """``base**k`` and ``base**-k`` modulo 2**32 for ``k < size`` (grown by doubling)."""
        with self._lock:
            powers, inverse = self._powers, self._inverse_powers
            base_inverse = pow(self._base, -1, 1 << 32)
            while len(powers) < size:
                step = len(powers)
                powers = np.concatenate((powers, powers * np.uint32(pow(self._base, step, 1 << 32))))
                inverse = np.concatenate((inverse, inverse * np.uint32(pow(base_inverse, step, 1 << 32))))
            self._powers, self._inverse_powers = powers, inverse
            return powers, inverse

    # -- scanning --------------------------------------------------------------------

    def _candidates(self, text: str, snapshot: _Snapshot) -> list[tuple[int, int]]:
        """``(start, length)`` of every window whose rolling hash is a known text's."""
        codes = _code_points(text)
        longest = snapshot.longest
        powers, inverse = self._power_tables(min(len(codes), _BLOCK) + longest + 1)
        found: list[tuple[int, int]] = []
        for block_start in range(0, len(codes), _BLOCK):
            block = codes[block_start : block_start + _BLOCK + longest - 1]
            last_block = block_start + _BLOCK >= len(codes)
            found += self._block_candidates(block, block_start, last_block, snapshot, powers, inverse)
        return found

    def _block_candidates(
        self,
        block: npt.NDArray[np.uint8] | _U32,
        offset: int,
        last_block: bool,
        snapshot: _Snapshot,
        powers: _U32,
        inverse: _U32,
    ) -> list[tuple[int, int]]:
        size = len(block)
        starts = size - WINDOW + 1 if last_block else min(_BLOCK, size - WINDOW + 1)
        if starts <= 0:
            return []
        # prefix[j] = sum of code[k] * base**-k for k < j: any window's hash is a difference
        prefix = np.zeros(size + 1, dtype=np.uint32)
        np.cumsum(np.multiply(block, inverse[:size], dtype=np.uint32), dtype=np.uint32, out=prefix[1:])
        window = prefix[WINDOW : WINDOW + starts] - prefix[:starts]
        window *= powers[WINDOW - 1 : WINDOW - 1 + starts]
        window >>= np.uint32(32 - _FILTER_BITS)
        positions = np.flatnonzero(snapshot.filter[window])
        found: list[tuple[int, int]] = []
        for length, known in snapshot.hashes.items():
            at = positions[positions + length <= size]
            if not last_block:
                at = at[at < _BLOCK]
            if not len(at):
                continue
            hashes = (prefix[at + length] - prefix[at]) * powers[at + length - 1]
            slot = np.minimum(np.searchsorted(known, hashes), len(known) - 1)
            found += [(int(start) + offset, length) for start in at[known[slot] == hashes]]
        return found

    def _confirmed(
        self, text: str, found: list[tuple[int, int]], digests: frozenset[bytes]
    ) -> list[tuple[int, int]]:
        """Merge candidate windows into spans, confirming by digest each one that widens a span."""
        windows = sorted((start, start + length) for start, length in found)
        spans: list[tuple[int, int]] = []
        index = 0
        while index < len(windows):
            start, end = windows[index]
            index += 1
            if self.fingerprint(text[start:end]) not in digests:
                continue
            # grow the span by the confirmed window reaching furthest among those overlapping it
            while index < len(windows) and windows[index][0] < end:
                group_end = index
                while group_end < len(windows) and windows[group_end][0] < end:
                    group_end += 1
                reaching = sorted(windows[index:group_end], key=lambda window: -window[1])
                index = group_end
                for candidate_start, candidate_end in reaching:
                    if candidate_end <= end:
                        break
                    if self.fingerprint(text[candidate_start:candidate_end]) in digests:
                        end = candidate_end
                        break
            spans.append((start, end))
        return spans


def _code_points(text: str) -> npt.NDArray[np.uint8] | _U32:
    """The code points of ``text`` as an array (one byte each when it is ASCII)."""
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
