"""Batched beam search with length normalisation and n-best output.

All B sentences are decoded together as B*K rows of one decoder state. Each step:

1. every live beam proposes all V next tokens, scored by its accumulated log-prob;
2. the top 2K of the K*V candidates are kept, so that up to K candidates ending in EOS cannot
   crowd out the live ones (each beam has one EOS candidate, so at least K are not EOS);
3. EOS candidates ranked within the top K are finished: moved to the sentence's finished list
   with the score `length_penalty(log_prob, Ty)`;
4. the K best non-EOS candidates continue, and the state is reordered with
   `state.reorder(flat_beam_indices)` (each sentence's K new rows come from its own K beams),
   together with each beam's token ids, per-token log-probs and attention rows.

Stopping rule (fairseq's): a sentence is done once it has K finished hypotheses; live beams are
then dropped, even if a longer one could still win under a length penalty. A sentence that
reaches its maximum length (tokens generated, EOS included) first also finishes its live beams,
with `finished=False`. Done sentences are dropped from the batch. With K=1 this is exactly greedy
search: an EOS argmax finishes the sentence, otherwise the argmax continues (an EOS ranked second
is outside the top K and ignored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from atento.options import check_beam
from atento.search.hypothesis import Hypothesis, make_hypothesis
from atento.search.length_penalty import LengthPenalty
from atento.search.step import (
    SearchState,
    SearchStats,
    StepFn,
    banned_ids,
    first_ids,
    max_lengths,
    search_device,
    top_k,
)
from atento.search.trace import BeamTrace


class _Candidates(NamedTuple):
    """The top 2K of K*V extensions per sentence, best first; all (A, 2K)."""

    log_prob: Tensor  # accumulated log-prob
    beam: Tensor  # parent beam in 0..K-1
    token: Tensor  # next token id
    step_log_prob: Tensor  # log P(token | parent)


@dataclass
class _Beams:
    """The live beams of the A sentences still being decoded; t tokens generated so far."""

    active: Tensor  # (A,) batch index of each sentence
    log_prob: Tensor  # (A, K) accumulated; -inf marks a dead beam
    token_ids: Tensor  # (A, K, t)
    token_log_probs: Tensor  # (A, K, t)
    attention: Tensor | None  # (A, K, t, S)

    @classmethod
    def start(cls, B: int, K: int, device: torch.device) -> _Beams:
        # only beam 0 is live at first, so the K copies of BOS do not yield K duplicates
        log_prob = torch.full((B, K), float("-inf"), device=device)
        log_prob[:, 0] = 0.0
        empty = torch.zeros(B, K, 0, device=device)
        return cls(torch.arange(B, device=device), log_prob, empty.long(), empty, None)

    def extended(
        self, a: int, k: int, token: Tensor, step_lp: Tensor, step_attention: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Beam (a, k) plus one token: ids (t+1,), log-probs (t+1,), attention (t+1, S)."""
        ids = torch.cat([self.token_ids[a, k], token.view(1)])
        lps = torch.cat([self.token_log_probs[a, k], step_lp.view(1)])
        if step_attention is None:
            return ids, lps, None
        rows = step_attention[None]  # (1, S)
        if self.attention is not None:
            rows = torch.cat([self.attention[a, k], rows])
        return ids, lps, rows

    def advance(self, cand: _Candidates, chosen: Tensor, attention: Tensor | None) -> _Beams:
        """Keep candidates `chosen` (A, K) (positions in 0..2K-1); reorder the histories."""

        def pick(x: Tensor) -> Tensor:
            return x.gather(1, chosen)

        parent = pick(cand.beam)  # (A, K)

        def reorder(history: Tensor) -> Tensor:  # (A, K, t, ...) by parent beam
            index = parent.view(*parent.shape, *[1] * (history.dim() - 2)).expand_as(history)
            return history.gather(1, index)

        token_ids = torch.cat([reorder(self.token_ids), pick(cand.token)[..., None]], dim=2)
        lps = torch.cat([reorder(self.token_log_probs), pick(cand.step_log_prob)[..., None]], 2)
        new_attention = None
        if attention is not None:  # (A, K, S)
            step_rows = reorder(attention[:, :, None])
            past = reorder(self.attention) if self.attention is not None else step_rows[:, :, :0]
            new_attention = torch.cat([past, step_rows], dim=2)
        return _Beams(self.active, pick(cand.log_prob), token_ids, lps, new_attention)

    def select(self, keep: Tensor) -> _Beams:
        """Only the sentences at positions `keep` (A',)."""
        attention = None if self.attention is None else self.attention[keep]
        return _Beams(
            self.active[keep],
            self.log_prob[keep],
            self.token_ids[keep],
            self.token_log_probs[keep],
            attention,
        )


def _top_candidates(
    beam_log_prob: Tensor, log_probs: Tensor, banned: Tensor,
    unk_id: int | None = None, stats: SearchStats | None = None,
) -> _Candidates:  # fmt: skip
    """beam_log_prob (A, K) + log_probs (A*K, V) -> the best 2K of the K*V extensions; the
    token ids `banned` are never proposed, nor `unk_id` (`stats` counts the sentences whose
    best extension it would have been).

    In two stages, without a new (A*K, V) tensor: each beam's best m tokens by their own
    log-prob (m = 2K plus the banned ids, which are then dropped: at least 2K are left), then
    the best 2K of a sentence's K*m survivors by accumulated log-prob. Exact: adding the
    beam's score keeps the order within a row, so a token outside its row's best 2K has 2K
    better candidates in its own row and cannot be in the sentence's best 2K. The scores
    are the same sums `beam_log_prob + log_probs`, only fewer of them.
    """
    A, K = beam_log_prob.shape
    V = log_probs.size(-1)
    m = min(V, 2 * K + banned.numel() + (unk_id is not None))
    row_lp, row_token = top_k(log_probs.reshape(A * K, V).float(), m)  # (A*K, m), best first
    total = beam_log_prob.reshape(A * K, 1) + row_lp  # (A*K, m)
    total.masked_fill_(torch.isin(row_token, banned), float("-inf"))
    if unk_id is not None:
        is_unk = row_token == unk_id
        if stats is not None:  # the sentence's best extension, UNK still allowed
            best = total.view(A, K * m).argmax(dim=1, keepdim=True)
            stats.add_unk(int(is_unk.view(A, K * m).gather(1, best).sum()))
        total.masked_fill_(is_unk, float("-inf"))
    top_lp, flat = top_k(total.view(A, K * m), min(2 * K, K * m))  # (A, 2K), best first
    token = row_token.view(A, K * m).gather(1, flat)
    return _Candidates(top_lp, flat // m, token, row_lp.view(A, K * m).gather(1, flat))


def _continuing(cand: _Candidates, K: int, eos_id: int) -> Tensor:
    """Positions (A, K) of the K best candidates that do not end in EOS, best first."""
    rank = torch.arange(cand.token.size(1), device=cand.token.device)
    key = rank + (cand.token == eos_id).long() * cand.token.size(1)  # EOS ranks after the rest
    return key.argsort(dim=1)[:, :K]


def _finish_eos(
    beams: _Beams,
    cand: _Candidates,
    attention: Tensor | None,
    finished: list[list[Hypothesis]],
    *,
    K: int,
    eos_id: int,
    penalty: LengthPenalty,
) -> list[tuple[int, int]]:
    """Move the EOS candidates ranked in the top K to their sentence's finished list (<= K).

    attention: (A, K, S) this step's rows, or None. Returns the (a, position) pairs moved.
    """
    moved = []
    is_eos = (cand.token[:, :K] == eos_id) & cand.log_prob[:, :K].isfinite()  # (A, K)
    active = beams.active.tolist()
    for a, i in is_eos.nonzero().tolist():
        hyps = finished[active[a]]
        if len(hyps) >= K:
            continue
        moved.append((a, i))
        k = int(cand.beam[a, i])
        step_attention = None if attention is None else attention[a, k]
        ids, lps, rows = beams.extended(
            a, k, cand.token[a, i], cand.step_log_prob[a, i], step_attention
        )
        hyps.append(
            make_hypothesis(
                ids, lps, cand.log_prob[a, i], rows, finished=True, length_penalty=penalty
            )
        )
    return moved


def _finish_live(
    beams: _Beams,
    at_max: Tensor,
    finished: list[list[Hypothesis]],
    *,
    K: int,
    penalty: LengthPenalty,
) -> None:
    """Sentences at their maximum length (at_max (A,)) keep their live beams, unfinished."""
    active = beams.active.tolist()
    for a in at_max.nonzero().squeeze(1).tolist():
        hyps = finished[active[a]]
        if len(hyps) >= K:
            continue
        for k in range(K):
            if not bool(beams.log_prob[a, k].isfinite()):
                continue  # a dead beam: fewer than K sequences were possible
            rows = None if beams.attention is None else beams.attention[a, k]
            hyps.append(
                make_hypothesis(
                    beams.token_ids[a, k],
                    beams.token_log_probs[a, k],
                    beams.log_prob[a, k],
                    rows,
                    finished=False,
                    length_penalty=penalty,
                )
            )


def _banned(V: int, pad_id: int, bos_id: int, eos_id: int, device: torch.device) -> Tensor:
    """The ids a beam never proposes (`banned_ids`) as a LongTensor on `device`."""
    ids = banned_ids(V, pad_id=pad_id, bos_id=bos_id, eos_id=eos_id)
    return torch.tensor(ids, dtype=torch.long, device=device)


def _choose(
    t: int, beams: _Beams, cand: _Candidates, attention: Tensor | None,
    finished: list[list[Hypothesis]], eos_id: int, penalty: LengthPenalty,
    trace: BeamTrace | None,
) -> Tensor:  # fmt: skip
    """Step t: finish the EOS candidates in the top K (`_finish_eos`), record the step in
    `trace`; the positions (A, K) of the candidates that continue (`_continuing`)."""
    K = beams.log_prob.size(1)
    moved = _finish_eos(beams, cand, attention, finished, K=K, eos_id=eos_id, penalty=penalty)
    chosen = _continuing(cand, K, eos_id)  # (A, K)
    if trace is not None:
        trace.record(t, beams.active, cand.log_prob, cand.beam, cand.token, chosen, moved, penalty)
    return chosen


def _unfinished(
    t: int, beams: _Beams, lens: Tensor, finished: list[list[Hypothesis]], penalty: LengthPenalty
) -> Tensor:
    """After step t: the sentences at their maximum length `lens` (B,) finish their live
    beams (`_finish_live`); the positions (A',) of those that have neither reached it nor K
    finished hypotheses."""
    K = beams.log_prob.size(1)
    at_max = lens[beams.active] <= t + 1  # (A,)
    _finish_live(beams, at_max, finished, K=K, penalty=penalty)
    full = [len(finished[b]) >= K for b in beams.active.tolist()]
    done = at_max | torch.tensor(full, dtype=torch.bool, device=at_max.device)
    return (~done).nonzero().squeeze(1)


def _state_rows(cand: _Candidates, chosen: Tensor, keep: Tensor) -> Tensor:
    """The decoder-state rows (A'*K,) that the K continuing beams of the sentences `keep` (A',)
    come from: beam k of sentence a is row a*K + k, and the chosen candidates (A, K) name
    their parent beams."""
    parent = cand.beam.gather(1, chosen)  # (A, K)
    A, K = parent.shape
    rows = torch.arange(A, device=parent.device)[:, None] * K + parent  # (A, K)
    return rows[keep].reshape(-1)


def beam_search(
    step_fn: StepFn,
    state: SearchState,
    *,
    batch_size: int,
    beam_size: int,
    max_len: int | Tensor,
    length_penalty: LengthPenalty,
    nbest: int = 1,
    bos_id: int = 2,
    eos_id: int = 3,
    pad_id: int = 0,
    device: torch.device | str | None = None,
    trace: BeamTrace | None = None,
    start_ids: Tensor | None = None,
    unk_id: int | None = None,
    stats: SearchStats | None = None,
    min_len: int = 0,
) -> list[list[Hypothesis]]:
    """Beam search of width K over a batch of B sentences (see the module docstring).

    state: B rows; `state.expand(K)` here makes B*K rows (beam k of sentence b is row b*K + k),
    `state.reorder(rows)` follows the beams (rows keep each sentence's K beams together).
    max_len: int or LongTensor (B,), the most tokens a hypothesis may generate, EOS included.
    length_penalty: ranks finished hypotheses by log_prob / Ty^alpha.
    nbest: the most hypotheses returned per sentence, best first (1 <= nbest <= K).
    PAD and BOS are never generated, nor UNK when `unk_id` names it (`stats` then counts the
    steps at which it was a sentence's best extension). `device` is where ids and indices are
    made (default `state.device`, else CPU).
    trace: a `BeamTrace` to fill with every step's kept, finished and pruned candidates
    (`atento.search.trace`); None (the default) records nothing and costs nothing.
    start_ids (B,): the first tokens fed (default BOS; a language model: each prompt's last).
    min_len: EOS is not proposed before `min_len` tokens are generated (transformers'
    `min_new_tokens`; a benchmark's equal output lengths).
    """
    B, K = batch_size, beam_size
    check_beam(K, nbest)
    device = search_device(state, device)
    lens = max_lengths(max_len, B, device)  # (B,)
    state = state.expand(K)  # B*K rows
    beams = _Beams.start(B, K, device)
    if trace is not None:
        trace.start(B, K)
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    last_ids = first_ids(start_ids, bos_id, B, device, repeat=K)  # (B*K,)
    banned: Tensor | None = None
    for t in range(int(lens.max()) if B else 0):
        log_probs, state, attention = step_fn(last_ids, state)  # (A*K, V), (A*K, S)
        if banned is None:  # PAD and BOS, once the vocabulary size is known
            banned = _banned(log_probs.size(-1), pad_id, bos_id, eos_id, device)
            no_eos = torch.cat([banned, banned.new_tensor([eos_id])])
        A = beams.active.numel()
        attention = None if attention is None else attention.float().view(A, K, -1)
        ban = banned if t >= min_len else no_eos
        cand = _top_candidates(beams.log_prob, log_probs, ban, unk_id, stats)  # (A, 2K)
        chosen = _choose(t, beams, cand, attention, finished, eos_id, length_penalty, trace)
        beams = beams.advance(cand, chosen, attention)
        keep = _unfinished(t, beams, lens, finished, length_penalty)  # (A',)
        if keep.numel() == 0:
            break
        state = state.reorder(_state_rows(cand, chosen, keep))  # (A'*K) rows, K per sentence
        beams = beams.select(keep)
        last_ids = beams.token_ids[:, :, -1].reshape(-1)  # (A'*K,)
    return [sorted(hyps, key=lambda h: h.score, reverse=True)[:nbest] for hyps in finished]
