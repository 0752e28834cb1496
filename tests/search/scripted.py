"""A scripted "model" for search tests: hand-written or seeded-random probability tables.

The next-token distribution is a function of (source, prefix), where the prefix of generated
ids lives in the decoder `State`, row by row. A search that forgets to reorder the state after
choosing beams therefore scores the wrong prefixes, and the teacher-forced `score` below (the
oracle) disagrees with what the search reports. Analysis tests can reuse this model.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

PAD, UNK, BOS, EOS = 0, 1, 2, 3

# (source, prefix of generated ids, BOS excluded) -> log-probs (V,)
Table = Callable[[int, tuple[int, ...]], Tensor]


@dataclass
class State:
    """One row per hypothesis: which source sentence it belongs to and its prefix so far.

    Implements `atento.models.base.DecoderState` and checks its contract: `reorder` must keep
    every block of `group` rows (made by `expand`) within one source row.
    """

    sources: list[int]
    prefixes: list[tuple[int, ...]]
    group: int = 1

    def _pick(self, rows: list[int], group: int) -> State:
        picked = [self.sources[i] for i in rows], [self.prefixes[i] for i in rows]
        return type(self)(*picked, group=group)

    def expand(self, k: int) -> State:
        return self._pick([i for i in range(len(self.sources)) for _ in range(k)], self.group * k)

    def reorder(self, index: Tensor) -> State:
        rows, g = index.tolist(), self.group
        assert len(rows) % g == 0, "reorder: rows must come in whole groups"
        for start in range(0, len(rows), g):
            assert len({r // g for r in rows[start : start + g]}) == 1, "a group was split"
        return self._pick(rows, g)

    def select(self, index: Tensor) -> State:
        return self._pick(index.tolist(), 1)


def _seed(*parts: object) -> int:
    return zlib.crc32(repr(parts).encode())


def table_from_probs(
    probs: dict[tuple[int, ...], dict[int, float]],
    vocab_size: int,
    default: dict[int, float] | None = None,
) -> Table:
    """A table from {prefix: {token: probability}}; unlisted tokens have probability 0.

    Unlisted prefixes use `default` (EOS with probability 1). The source is ignored.
    """
    default = default if default is not None else {EOS: 1.0}

    def table(source: int, prefix: tuple[int, ...]) -> Tensor:
        row = torch.full((vocab_size,), float("-inf"))
        for token, p in probs.get(prefix, default).items():
            row[token] = math.log(p)
        return row

    return table


def random_table(
    vocab_size: int,
    *,
    seed: int = 0,
    eos_bias: float = 0.0,
    banned: Sequence[int] = (PAD, UNK, BOS),
    scale: float = 2.0,
) -> Table:
    """Seeded random log-softmax rows that depend on (source, prefix) through a hash.

    `banned` ids get probability 0; `eos_bias` is added to the EOS logit.
    """

    def table(source: int, prefix: tuple[int, ...]) -> Tensor:
        gen = torch.Generator().manual_seed(_seed(seed, source, prefix))
        logits = torch.randn(vocab_size, generator=gen) * scale
        logits[EOS] += eos_bias
        logits[list(banned)] = float("-inf")
        return torch.log_softmax(logits, dim=-1)

    return table


class ScriptedModel:
    """`step(last_ids (N,), state) -> (log_probs (N, V), state, attention (N, S) | None)`."""

    def __init__(
        self, table: Table, *, vocab_size: int, source_len: int = 5, with_attention: bool = True
    ) -> None:
        self.table = table
        self.vocab_size = vocab_size
        self.source_len = source_len
        self.with_attention = with_attention
        self.rows_per_step: list[int] = []

    def start(self, sources: Sequence[int]) -> State:
        """The state before the first step: one row per source sentence, empty prefixes."""
        return State(list(sources), [() for _ in sources])

    def log_probs(self, source: int, prefix: tuple[int, ...]) -> Tensor:
        return self.table(source, prefix)

    def attention(self, source: int, prefix: tuple[int, ...]) -> Tensor:
        """(S,) deterministic weights for the step that follows `prefix`."""
        gen = torch.Generator().manual_seed(_seed("attention", source, prefix))
        return torch.softmax(torch.randn(self.source_len, generator=gen), dim=-1)

    def step(self, last_ids: Tensor, state: State) -> tuple[Tensor, State, Tensor | None]:
        prefixes = []
        for last, prefix in zip(last_ids.tolist(), state.prefixes, strict=True):
            # BOS starts a sentence; a dead beam may be fed anything, it is never output
            prefixes.append(prefix if last == BOS and not prefix else (*prefix, last))
        new = replace(state, sources=list(state.sources), prefixes=prefixes)
        self.rows_per_step.append(len(prefixes))
        rows = list(zip(new.sources, prefixes, strict=True))
        log_probs = torch.stack([self.log_probs(s, p) for s, p in rows])
        if not self.with_attention:
            return log_probs, new, None
        attention = torch.stack([self.attention(s, p) for s, p in rows])
        return log_probs, new, attention

    def score(
        self, source: int, tokens: Sequence[int], *, finished: bool = True
    ) -> tuple[list[float], Tensor]:
        """Teacher-forced per-token log-probs (Ty,) and attention rows (Ty, S) of an output."""
        ids = [*tokens, EOS] if finished else list(tokens)
        lps = [float(self.log_probs(source, tuple(ids[:t]))[y]) for t, y in enumerate(ids)]
        rows = [self.attention(source, tuple(ids[:t])) for t in range(len(ids))]
        return lps, torch.stack(rows) if rows else torch.zeros(0, self.source_len)


# the lecture's sentence: "Jane visite l'Afrique en septembre"
JANE, IS, VISITING, GOING, TO, AFRICA, IN, SEPTEMBER = range(4, 12)
LECTURE = {
    (): {JANE: 1.0},
    (JANE,): {IS: 1.0},
    (JANE, IS): {GOING: 0.5, VISITING: 0.4, EOS: 0.1},
    (JANE, IS, VISITING): {AFRICA: 0.9, EOS: 0.1},
    (JANE, IS, VISITING, AFRICA): {IN: 0.9, EOS: 0.1},
    (JANE, IS, VISITING, AFRICA, IN): {SEPTEMBER: 0.9, EOS: 0.1},
    (JANE, IS, GOING): {TO: 0.45, IN: 0.3, EOS: 0.25},
    (JANE, IS, GOING, TO): {AFRICA: 0.5, SEPTEMBER: 0.2, EOS: 0.3},
    (JANE, IS, GOING, TO, AFRICA): {IN: 0.6, EOS: 0.4},
    (JANE, IS, GOING, TO, AFRICA, IN): {SEPTEMBER: 0.6, EOS: 0.4},
    (JANE, IS, GOING, IN): {SEPTEMBER: 0.6, EOS: 0.4},
}  # any other prefix: EOS with probability 1
