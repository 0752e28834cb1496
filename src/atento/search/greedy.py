"""Batched greedy decoding: at each step take the most probable next token (beam width 1)."""

from __future__ import annotations

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
    max_lengths,
    search_device,
)


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
    Returns one `Hypothesis` per sentence, in batch order.
    """
    penalty = length_penalty if length_penalty is not None else LengthPenalty(0.0)
    device = search_device(state, device)
    B = batch_size
    lens = max_lengths(max_len, B, device)  # (B,)
    T = int(lens.max()) if B else 0
    active = torch.arange(B, device=device)  # (A,) batch index of each live row
    last_ids = torch.full((B,), bos_id, dtype=torch.long, device=device)
    if start_ids is not None:
        last_ids = start_ids.to(device)
    token_ids = torch.full((B, T), pad_id, dtype=torch.long, device=device)
    token_log_probs = torch.zeros(B, T, device=device)
    total = torch.zeros(B, device=device)
    steps = torch.zeros(B, dtype=torch.long, device=device)  # Ty per sentence
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    attention_rows: Tensor | None = None  # (B, T, S)
    for t in range(T):
        log_probs, state, attention = step_fn(last_ids, state)
        log_probs = ban_specials(log_probs, pad_id=pad_id, bos_id=bos_id, eos_id=eos_id)
        if unk_id is not None:
            log_probs = ban_unk(log_probs, unk_id, stats)
        step_lp, ids = log_probs.max(dim=-1)  # (A,), first maximum on ties
        token_ids[active, t] = ids
        token_log_probs[active, t] = step_lp
        total[active] += step_lp
        steps[active] = t + 1
        if attention is not None:
            if attention_rows is None:
                attention_rows = attention.new_zeros(B, T, attention.size(-1), dtype=torch.float)
            attention_rows[active, t] = attention.float()
        is_eos = ids == eos_id
        finished[active] = is_eos
        keep = (~is_eos & (lens[active] > t + 1)).nonzero().squeeze(1)  # (A',)
        if keep.numel() == 0:
            break
        if keep.numel() < active.numel():
            state, active, ids = state.select(keep), active[keep], ids[keep]
        last_ids = ids
    return [
        make_hypothesis(
            token_ids[b, : steps[b]],
            token_log_probs[b, : steps[b]],
            total[b],
            None if attention_rows is None else attention_rows[b, : steps[b]],
            finished=bool(finished[b]),
            length_penalty=penalty,
        )
        for b in range(B)
    ]
