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
from itertools import pairwise

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

    #: Which window hashes (top bits) start a known text of any length.
    starts: npt.NDArray[np.bool_]
    #: The lengths of the known texts, and their sorted hashes.
    lengths: tuple[int, ...] = ()
    hashes: tuple[_U32, ...] = ()
    #: Row = window hash (top bits), bit ``i`` of column ``i // 64``: starts a text of ``lengths[i]``.
    length_bits: npt.NDArray[np.uint64] = field(default_factory=lambda: np.zeros((1, 1), dtype=np.uint64))
    digests: frozenset[bytes] = frozenset()

    @property
    def longest(self) -> int:
        return max(self.lengths, default=0)


class KeyedTextHashes:
    """A set of texts, kept as keyed hashes only, that can be found in any string."""

    def __init__(self) -> None:
        self._base = secrets.randbits(32) | 1  # odd: invertible modulo 2**32
        self._key = secrets.token_bytes(16)
        self._lock = threading.Lock()
        #: By length: the rolling hash of each known text, and that of its first WINDOW characters.
        self._texts: dict[int, dict[int, int]] = {}
        self._digests: set[bytes] = set()
        self._snapshot = _Snapshot(_empty_table())
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
            for text in texts:
                first = self._rolling_hash(text[:WINDOW]) >> (32 - _FILTER_BITS)
                self._texts.setdefault(len(text), {})[self._rolling_hash(text)] = first
                self._digests.add(self.fingerprint(text))
            self._snapshot = self._indexed()

    def _indexed(self) -> _Snapshot:
        lengths = tuple(sorted(self._texts))
        starts = _empty_table()
        length_bits = np.zeros((1 << _FILTER_BITS, -(-len(lengths) // 64)), dtype=np.uint64)
        for number, length in enumerate(lengths):
            firsts = list(self._texts[length].values())
            starts[firsts] = True
            length_bits[firsts, number // 64] |= np.uint64(1 << (number % 64))
        hashes = tuple(np.array(sorted(self._texts[length]), dtype=np.uint32) for length in lengths)
        return _Snapshot(starts, lengths, hashes, length_bits, frozenset(self._digests))

    def contains(self, text: str) -> bool:
        """Whether ``text`` is one of the texts remembered (compared by digest)."""
        return self.fingerprint(text) in self._snapshot.digests

    def spans(self, text: str) -> list[tuple[int, int]]:
        """The ``(start, end)`` spans of ``text`` covered by remembered texts, merged, in order.

        Overlapping occurrences are merged into one span; touching ones are not.
        """
        snapshot = self._snapshot
        if len(text) < WINDOW or not snapshot.lengths:
            return []
        starts, ends = self._candidates(text, snapshot)
        if not len(starts):
            return []
        return self._confirmed(text, starts, ends, snapshot.digests)

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

    def _candidates(self, text: str, snapshot: _Snapshot) -> tuple[_Positions, _Positions]:
        """Starts and ends of every window whose rolling hash is a known text's."""
        codes = _code_points(text)
        longest = snapshot.longest
        powers, inverse = self._power_tables(min(len(codes), _BLOCK) + longest + 1)
        starts: list[_Positions] = []
        ends: list[_Positions] = []
        for block_start in range(0, len(codes), _BLOCK):
            block = codes[block_start : block_start + _BLOCK + longest - 1]
            last_block = block_start + _BLOCK >= len(codes)
            for found, length in _block_candidates(block, last_block, snapshot, powers, inverse):
                starts.append(found + block_start)
                ends.append(found + (block_start + length))
        if not starts:
            return _NO_POSITIONS, _NO_POSITIONS
        return np.concatenate(starts), np.concatenate(ends)

    def _confirmed(
        self, text: str, starts: _Positions, ends: _Positions, digests: frozenset[bytes]
    ) -> list[tuple[int, int]]:
        """Merge candidate windows into spans, confirming by digest each window that widens one.

        Greedy: a span grows by the window reaching furthest among those that start
        inside it, so a long run of overlapping windows costs one digest per window
        length, not one per window. Where a candidate is refuted (a hash collision), that
        span's windows are confirmed one by one instead.
        """
        order = np.lexsort((-ends, starts))
        starts, ends = starts[order], ends[order]
        reach = np.maximum.accumulate(ends)
        # furthest[k]: the window reaching furthest among windows 0..k
        furthest = np.maximum.accumulate(np.where(ends == reach, np.arange(len(ends)), 0))
        after = furthest[np.searchsorted(starts, ends, side="left") - 1]
        heads = np.flatnonzero(np.concatenate(([True], starts[1:] >= reach[:-1])))
        bounds = [*heads.tolist(), len(starts)]

        begins, finishes, furthest_after = starts.tolist(), ends.tolist(), after.tolist()
        confirmed: dict[str, bool] = {}  # the same text repeated is confirmed once

        def genuine(index: int) -> bool:
            candidate = text[begins[index] : finishes[index]]
            if candidate not in confirmed:
                confirmed[candidate] = self.fingerprint(candidate) in digests
            return confirmed[candidate]

        spans: list[tuple[int, int]] = []
        for head, stop in pairwise(bounds):
            index = head
            chained = genuine(index)
            while chained and finishes[furthest_after[index]] > finishes[index]:
                index = furthest_after[index]
                chained = genuine(index)
            if chained:
                spans.append((begins[head], finishes[index]))
            else:
                spans += _one_by_one(
                    starts[head:stop].tolist(), ends[head:stop].tolist(), text, self, digests
                )
        return spans


def _one_by_one(
    starts: list[int], ends: list[int], text: str, hashes: KeyedTextHashes, digests: frozenset[bytes]
) -> list[tuple[int, int]]:
    """The spans of overlapping windows (sorted by start) confirmed window by window."""
    spans: list[tuple[int, int]] = []
    for start, end in zip(starts, ends, strict=True):
        if hashes.fingerprint(text[start:end]) not in digests:
            continue
        if spans and start < spans[-1][1]:
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
        else:
            spans.append((start, end))
    return spans


_Positions = npt.NDArray[np.int64]
_NO_POSITIONS: _Positions = np.zeros(0, dtype=np.int64)


def _empty_table() -> npt.NDArray[np.bool_]:
    return np.zeros(1 << _FILTER_BITS, dtype=np.bool_)


def _block_candidates(
    block: npt.NDArray[np.uint8] | _U32,
    last_block: bool,
    snapshot: _Snapshot,
    powers: _U32,
    inverse: _U32,
) -> list[tuple[_Positions, int]]:
    """Where in ``block`` a known text of each length may start (its rolling hash matches)."""
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
    positions = np.flatnonzero(snapshot.starts[window])
    if not len(positions):
        return []
    bits = snapshot.length_bits[window[positions]]
    present = np.bitwise_or.reduce(bits, axis=0)
    found: list[tuple[_Positions, int]] = []
    for number, (length, known) in enumerate(zip(snapshot.lengths, snapshot.hashes, strict=True)):
        column, bit = divmod(number, 64)
        if not int(present[column]) >> bit & 1:
            continue
        plausible = (bits[:, column] >> np.uint64(bit)) & np.uint64(1) != 0
        at = positions[plausible & (positions + length <= size)]
        if not len(at):
            continue
        hashes = (prefix[at + length] - prefix[at]) * powers[at + length - 1]
        slot = np.minimum(np.searchsorted(known, hashes), len(known) - 1)
        found.append((at[known[slot] == hashes], length))
    return found


def _code_points(text: str) -> npt.NDArray[np.uint8] | _U32:
    """The code points of ``text`` as an array (one byte each when it is ASCII)."""
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
