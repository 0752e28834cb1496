"""A bounded, seeded sample of a stream, for training tokenizers on corpora of any size.

`Reservoir(k, seed)` keeps a uniform random sample of at most k of the items offered to it
(Li's Algorithm L, 1994: after the first k it draws how many items to skip, so a long stream
costs a comparison per item and O(k log(n / k)) random draws). While the stream is no longer
than k the sample is the stream itself, in its order, so a corpus that fits trains exactly the
tokenizer it did before there was a sample.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from atento.data.tokenizers import Tokenizer, build_tokenizer


class Reservoir:
    """A uniform sample of at most `k` items of a stream of unknown length (module doc)."""

    def __init__(self, k: int, seed: int) -> None:
        self.k = max(int(k), 0)
        self.items: list[str] = []
        self.seen = 0
        self._rng = np.random.default_rng([seed % 2**63, 0x5A3])
        self._w = 1.0
        self._next = 0

    def _u(self) -> float:
        return 1.0 - float(self._rng.random())  # in (0, 1]: its log is finite

    def _advance(self) -> None:
        self._w *= math.exp(math.log(self._u()) / self.k)
        if self._w >= 1.0:  # underflow guard: take the next item
            self._next += 1
            return
        self._next += int(math.floor(math.log(self._u()) / math.log1p(-self._w))) + 1

    def offer(self, item: str) -> None:
        """Consider the next item of the stream."""
        n = self.seen
        self.seen += 1
        if n < self.k:
            self.items.append(item)
            if n + 1 == self.k:
                self._next = self.k - 1
                self._advance()
            return
        if self.k and n == self._next:
            self.items[int(self._rng.integers(self.k))] = item
            self._advance()


def train_tokenizers(
    kind: str,
    sides: dict[str, Iterable[str]],
    *,
    vocab_size: int,
    joint: bool,
    directory,
) -> dict[str, Tokenizer]:
    """Tokenizers by role from each role's sample (SentencePiece) or alphabet (`char`: the
    side's characters as one text), saved in `directory` (`joint`, or one per role)."""
    if joint:
        texts = [t for side in sides.values() for t in side]
        tok = build_tokenizer(kind, texts, vocab_size=vocab_size, run_dir=directory, name="joint")
        return dict.fromkeys(sides, tok)
    return {role: build_tokenizer(kind, texts, vocab_size=vocab_size, run_dir=directory,
                                  name=role)
            for role, texts in sides.items()}  # fmt: skip
