"""Batched greedy decoding: at each step take the most probable next token (beam width 1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from atento.search.hypothesis import Hypothesis, make_hypothesis
from atento.search.length_penalty import LengthPenalty
from atento.search.step import (
    SearchState,
    SearchStats,
    StepFn,
    ban_specials,
    ban_unk,
    first_ids,
    max_lengths,
    search_device,
)


@dataclass
class _Outputs:
    """What greedy decoding generated for each of B sentences, T tokens at most."""

    token_ids: Tensor  # (B, T), PAD after each sentence's end
    token_log_probs: Tensor  # (B, T)
    total: Tensor  # (B,) accumulated log-prob
    steps: Tensor  # (B,) tokens generated (Ty)
    finished: Tensor  # (B,) bool: ended with EOS
    attention: Tensor | None = None  # (B, T, S), made at the first step with attention

    @classmethod
    def empty(cls, B: int, T: int, pad_id: int, device: torch.device) -> _Outputs:
        return cls(
            torch.full((B, T), pad_id, dtype=torch.long, device=device),
            torch.zeros(B, T, device=device),
            torch.zeros(B, device=device),
            torch.zeros(B, dtype=torch.long, device=device),
            torch.zeros(B, dtype=torch.bool, device=device),
        )

    def record(
        self, t: int, active: Tensor, ids: Tensor, step_lp: Tensor, is_eos: Tensor,
        attention: Tensor | None,
    ) -> None:  # fmt: skip
        """Step t of the sentences `active` (A,): tokens, their log-probs, EOS, attention."""
        self.token_ids[active, t] = ids
        self.token_log_probs[active, t] = step_lp
        self.total[active] += step_lp
        self.steps[active] = t + 1
        if attention is not None:
            if self.attention is None:
                B, T = self.token_ids.shape
                self.attention = attention.new_zeros(B, T, attention.size(-1), dtype=torch.float)
            self.attention[active, t] = attention.float()
        self.finished[active] = is_eos

    def hypotheses(self, penalty: LengthPenalty) -> list[Hypothesis]:
        """One `Hypothesis` per sentence, in batch order."""
        return [
            make_hypothesis(
                self.token_ids[b, : self.steps[b]],
                self.token_log_probs[b, : self.steps[b]],
                self.total[b],
                None if self.attention is None else self.attention[b, : self.steps[b]],
                finished=bool(self.finished[b]),
                length_penalty=penalty,
            )
            for b in range(self.token_ids.size(0))
        ]


def greedy_search(
    step_fn: StepFn,
    state: SearchState,
    *,
    batch_size: int,
    max_len: int | Tensor,
    bos_id: int = 2,
    eos_id: int = 3,
    pad_id: int = 0,
    length_penalty: LengthPenalty | None = None,
    device: torch.device | str | None = None,
    start_ids: Tensor | None = None,
    unk_id: int | None = None,
    stats: SearchStats | None = None,
    min_len: int = 0,
) -> list[Hypothesis]:
    """Decode B sentences together, y_t = argmax_y log P(y | x, y_<t).

    state: B rows. max_len: int or LongTensor (B,), the most tokens a sentence may generate,
    EOS included; a sentence that reaches it unfinished is returned with `finished=False`.
    Finished sentences are dropped from the batch (`state.select`), and decoding stops
    when none is left. PAD and BOS are never generated, nor UNK when `unk_id` names it
    (`stats` then counts the steps at which it was the argmax). Greedy does not rank, but each score
    is `length_penalty(log_prob, Ty)` (default alpha 0: the raw log-prob) so it compares with
    beam search. `device` is where ids are made (default `state.device`, else CPU).
    `start_ids` (B,): the first tokens fed (default BOS; a language model: each prompt's last).
    EOS is not generated before `min_len` tokens.
    Returns one `Hypothesis` per sentence, in batch order.
    """
    penalty = length_penalty if length_penalty is not None else LengthPenalty(0.0)
    device = search_device(state, device)
    B = batch_size
    lens = max_lengths(max_len, B, device)  # (B,)
    out = _Outputs.empty(B, int(lens.max()) if B else 0, pad_id, device)
    active = torch.arange(B, device=device)  # (A,) batch index of each live row
    last_ids = first_ids(start_ids, bos_id, B, device)
    for t in range(out.token_ids.size(1)):
        log_probs, state, attention = step_fn(last_ids, state)
        log_probs = ban_specials(log_probs, pad_id=pad_id, bos_id=bos_id, eos_id=eos_id)
        if unk_id is not None:
            log_probs = ban_unk(log_probs, unk_id, stats)
        if t < min_len:
            log_probs[:, eos_id] = float("-inf")
        step_lp, ids = log_probs.max(dim=-1)  # (A,), first maximum on ties
        is_eos = ids == eos_id
        out.record(t, active, ids, step_lp, is_eos, attention)
        keep = (~is_eos & (lens[active] > t + 1)).nonzero().squeeze(1)  # (A',)
        if keep.numel() == 0:
            break
        if keep.numel() < active.numel():
            state, active, ids = state.select(keep), active[keep], ids[keep]
        last_ids = ids
    return out.hypotheses(penalty)
