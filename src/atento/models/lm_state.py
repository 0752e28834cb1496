"""The decoding state of a decoder-only language model: the searchers' protocol over KV caches.

A GPT is searched exactly like an encoder-decoder (`atento.search.step`): `init_state(prompts)`
holds each prompt but its last token, the search starts from those last tokens (`start_ids`),
and `step(last_ids, state)` returns the log-probs of the token after them. The first step
reads each whole prompt in one pass (the prefill, which fills the cache); later steps feed one
token a row through the cache. Greedy, beam search and sampling all drive this one contract,
so a language model can be beam-searched and a translation model sampled.

Rows are left-padded: `ids` (N, L) holds the visible tokens of every row, the last
`lengths[n]` of row n real (None: every row has L). A model with learned positions reads at
most C tokens: when a row would go beyond, every row's visible text is cut to its last C // 2
tokens and re-read once (a sliding window that moves by C / 2). `use_cache=False` re-reads the
visible text at every step (the slow reference).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from atento.attention.multihead import KVCache


@dataclass(frozen=True)
class LMState:
    """`DecoderState` of a decoder-only model over N rows (module doc); immutable."""

    ids: Tensor  # (N, L) visible tokens, left-padded
    lengths: Tensor | None  # (N,) real tokens per row; None = all L
    cache: list[KVCache] | None  # one per layer, covering ids; None = re-read next step
    pad_mask: Tensor | None  # (N, L) True = real token, for the cached positions
    longest: int  # the most real tokens in a row (max of lengths)

    @property
    def device(self) -> torch.device:
        return self.ids.device

    @classmethod
    def start(cls, prompts: list[list[int]], *, pad_id: int, device: torch.device) -> LMState:
        """Each prompt but its last token (the search starts from it), left-padded."""
        rows = [list(p[:-1]) for p in prompts]
        L = max(len(r) for r in rows)
        ids = torch.full((len(rows), L), pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            if r:
                ids[i, L - len(r) :] = torch.tensor(r, dtype=torch.long)
        lengths = None
        if len({len(r) for r in rows}) > 1:
            lengths = torch.tensor([len(r) for r in rows], device=device)
        return cls(ids.to(device), lengths, None, None, L)

    def _rows(self, index: Tensor) -> LMState:
        def pick(x: Tensor | None) -> Tensor | None:
            return None if x is None else x.index_select(0, index)

        cache = None if self.cache is None else [kv.index_select(index) for kv in self.cache]
        lengths = pick(self.lengths)
        longest = self.ids.size(1) if lengths is None or not len(lengths) else int(lengths.max())
        return LMState(pick(self.ids), lengths, cache, pick(self.pad_mask), longest)

    def expand(self, k: int) -> LMState:
        index = torch.arange(self.ids.size(0), device=self.device).repeat_interleave(k)
        return self._rows(index)

    def reorder(self, rows: Tensor) -> LMState:
        return self._rows(rows)  # nothing is shared between rows

    def select(self, rows: Tensor) -> LMState:
        return self._rows(rows)

    def mask_and_positions(self) -> tuple[Tensor | None, Tensor | None]:
        """pad_mask (N, L) True = real and positions (N, L) from 0 at each row's first real
        token, for re-reading the visible text; (None, None) when no row is padded."""
        if self.lengths is None:
            return None, None
        L = self.ids.size(1)
        first = (L - self.lengths)[:, None]  # (N, 1)
        columns = torch.arange(L, device=self.device)[None, :]
        return columns >= first, (columns - first).clamp(min=0)

    def appended(self, last_ids: Tensor) -> LMState:
        """The state with `last_ids` (N,) added to every row's visible text (cache kept)."""
        ids = torch.cat([self.ids, last_ids[:, None]], dim=1)
        lengths = None if self.lengths is None else self.lengths + 1
        return replace(self, ids=ids, lengths=lengths, longest=self.longest + 1)

    def window(self, keep: int) -> LMState:
        """Every row's last `keep` tokens at most, to be re-read (the cache dropped)."""
        if self.longest <= keep:
            return replace(self, cache=None, pad_mask=None)
        lengths = None if self.lengths is None else self.lengths.clamp(max=keep)
        if lengths is not None and bool((lengths == keep).all()):
            lengths = None
        return LMState(self.ids[:, -keep:], lengths, None, None, keep)
