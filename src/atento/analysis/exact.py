"""Exact search: the model's best output, found by depth-first search with pruning.

Stahlberg & Byrne (2019), "On NMT Search Errors and Model Errors: Cat Got Your Tongue?",
Alg. 1: a depth-first search that visits the children of a prefix best first and prunes every
prefix that cannot beat the best complete hypothesis found so far. Started with the beam's
output as that lower bound, it either proves the beam optimal or finds a better output: a true
search error, whether or not the reference happens to reveal it.

The objective is the searchers' one: score(y) = log P(y | x) / Ty^alpha (Ty counts EOS), over
finished outputs of at most `max_len` tokens (EOS included).

The pruning bound (why it is valid for every alpha >= 0): take a prefix with accumulated
log-prob lp <= 0 and t tokens, and any finished completion y of length Ty (t < Ty <= L). Each
further token adds a log-prob <= 0, so log P(y | x) <= lp, and since lp <= 0,

    score(y) = log P(y|x) / Ty^alpha  <=  lp / Ty^alpha  <=  lp / L^alpha =: bound(lp).

The prefix is pruned when bound(lp) <= best (it cannot beat best strictly). With alpha = 0 the
bound is lp itself, tight and the search fast; with alpha > 0 a long output may still win, the
bound divides by L^alpha and the search may visit far more prefixes, which is what the time
limit is for. Children are sorted by log-prob, so the first child that fails the bound ends
the loop. Children are expanded `chunk` at a time in one batched decoder step: the prefix's
one-row state is `expand`ed to one row per child, and each child is then `select`ed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from atento.search.length_penalty import LengthPenalty
from atento.search.step import SearchState, StepFn, ban_specials, ban_unk, search_device


@dataclass
class ExactResult:
    """The best finished output scoring strictly above the lower bound.

    tokens: output ids without EOS, or None when nothing beats the lower bound (then the
        hypothesis that set the bound, e.g. the beam's output, is the model's best).
    complete: True when the whole space was searched before the time limit; False means
        `tokens` is only the best found so far (a lower bound on the true best score).
    expansions: decoder rows evaluated (one per prefix expanded).
    """

    tokens: list[int] | None
    log_prob: float
    score: float
    complete: bool
    expansions: int
    seconds: float


class _OutOfTime(Exception):
    pass


class _DepthFirst:
    """State of one exact search: the incumbent best output and the budget."""

    def __init__(
        self, step_fn: StepFn, *, max_len: int, penalty: LengthPenalty, lower_bound: float,
        deadline: float, chunk: int, ids: tuple[int, int, int], device: torch.device,
        unk_id: int | None = None,
    ) -> None:  # fmt: skip
        self.step_fn, self.max_len, self.penalty = step_fn, max_len, penalty
        self.best_score, self.best_lp, self.best_tokens = lower_bound, -math.inf, None
        self.deadline, self.chunk, self.device = deadline, max(1, chunk), device
        self.bos_id, self.eos_id, self.pad_id = ids
        self.unk_id = unk_id
        self.expansions = 0
        self.denominator = float(max_len) ** penalty.alpha  # L^alpha of the bound

    def bound(self, log_prob: float) -> float:
        """Upper bound on the score of any finished completion of a prefix (module doc)."""
        return log_prob / self.denominator

    def step(self, last_ids: list[int], state: SearchState) -> tuple[Tensor, SearchState]:
        """One batched decoder step for sibling prefixes: log-probs (n, V) on the CPU."""
        if time.perf_counter() > self.deadline:
            raise _OutOfTime
        ids = torch.tensor(last_ids, dtype=torch.long, device=self.device)
        log_probs, state, _ = self.step_fn(ids, state)
        self.expansions += len(last_ids)
        log_probs = ban_specials(
            log_probs, pad_id=self.pad_id, bos_id=self.bos_id, eos_id=self.eos_id
        )
        if self.unk_id is not None:
            log_probs = ban_unk(log_probs, self.unk_id)
        return log_probs.double().cpu(), state

    def visit(self, prefix: list[int], log_prob: float, row: Tensor, state: SearchState) -> None:
        """Expand a prefix whose next-token log-probs are row (V,); state has consumed it."""
        t = len(prefix)
        lp_eos = float(row[self.eos_id])
        if lp_eos > -math.inf:
            score = float(self.penalty(log_prob + lp_eos, t + 1))
            if score > self.best_score:
                self.best_score, self.best_lp, self.best_tokens = score, log_prob + lp_eos, prefix
        if t + 2 > self.max_len:  # a further token would leave no room for the EOS
            return
        row = row.clone()
        row[self.eos_id] = -math.inf
        values, tokens = row.sort(descending=True)  # best child first
        values, tokens = values.tolist(), tokens.tolist()
        start = 0
        while start < len(values):
            n = 0  # children in this chunk that pass the bound (sorted: stop at the first fail)
            while n < self.chunk and start + n < len(values):
                lp = log_prob + values[start + n]
                if lp == -math.inf or self.bound(lp) <= self.best_score:
                    break
                n += 1
            if n == 0:
                return
            chunk_ids = tokens[start : start + n]
            rows, child_state = self.step(chunk_ids, state.expand(n))  # (n, V), n children
            for i, token in enumerate(chunk_ids):
                lp = log_prob + values[start + i]
                if self.bound(lp) <= self.best_score:  # the incumbent improved meanwhile
                    return
                index = torch.tensor([i], device=self.device)
                self.visit([*prefix, token], lp, rows[i], child_state.select(index))
            start += n


def exact_search(
    step_fn: StepFn,
    state: SearchState,
    *,
    max_len: int,
    length_penalty: LengthPenalty,
    lower_bound: float = -math.inf,
    time_limit: float | None = None,
    chunk: int = 16,
    bos_id: int = 2,
    eos_id: int = 3,
    pad_id: int = 0,
    device: torch.device | str | None = None,
    unk_id: int | None = None,
) -> ExactResult:
    """The highest-scoring finished output of ONE sentence (state has 1 row), if it beats
    `lower_bound` strictly; see the module docstring for the algorithm and the bound.

    step_fn, state: the searchers' contract (`atento.search.step`), so any model works.
    max_len: the most tokens an output may have, EOS included (as in beam search).
    lower_bound: a score to beat, typically the beam's best finished hypothesis.
    time_limit: seconds; on expiry the best found so far is returned with complete=False.
    PAD and BOS are never output, as in the other searchers, nor UNK when `unk_id` names it.
    """
    start = time.perf_counter()
    deadline = start + time_limit if time_limit is not None else math.inf
    search = _DepthFirst(
        step_fn, max_len=max(1, int(max_len)), penalty=length_penalty, lower_bound=lower_bound,
        deadline=deadline, chunk=chunk, ids=(bos_id, eos_id, pad_id),
        device=search_device(state, device), unk_id=unk_id,
    )  # fmt: skip
    complete = True
    try:
        rows, state = search.step([bos_id], state)
        search.visit([], 0.0, rows[0], state)
    except _OutOfTime:
        complete = False
    return ExactResult(
        tokens=search.best_tokens,
        log_prob=search.best_lp,
        score=search.best_score if search.best_tokens is not None else -math.inf,
        complete=complete,
        expansions=search.expansions,
        seconds=time.perf_counter() - start,
    )
