"""Sampling: a search strategy beside greedy and beam search, over the same `step_fn`.

    rows = sample(model, [prompt_ids, ...], max_new=256, temperature=0.8, top_k=40,
                  generator=torch.Generator().manual_seed(1))      # a language model
    sample_search(step_fn, state, start_ids=bos, max_len=50, eos_id=3, ...)   # any decoder

Any model of the searchers' contract can be sampled: a translation model from its encoder's
state (sampled translations, e.g. for back-translation), a decoder-only language model from its
prompts (`atento.models.lm_state`: left-padded rows with their own positions, so every row's
tokens equal sampling it alone; with the cache the prompt is read in one pass and then one
token per step, without it every step re-reads the visible text: the slow reference).

Randomness: each step draws one uniform number per row from `generator` and picks the token
where the cumulative probability (tokens in descending order) first exceeds it, so the same
seed gives the same text, cached or not (in fp32: under bf16 the one-pass and the per-token
paths round differently, and a near tie can go the other way). Temperature 0 is greedy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import Tensor, nn

from atento.models.base import DecodeOptions, require_eval
from atento.runtime import grad_off
from atento.search.step import SearchState, StepFn


def filter_logits(logits: Tensor, *, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """logits (B, V) with everything outside the top k and outside the nucleus (the fewest
    most probable tokens whose probability reaches `top_p`) set to -inf."""
    if top_k and top_k < logits.size(-1):
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # probability mass ranked above each token
        drop_sorted = before >= top_p  # the first token is always kept
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def pick(
    logits: Tensor, *, temperature: float, top_k: int, top_p: float, generator: torch.Generator
) -> Tensor:
    """One token per row of logits (B, V) (module doc); one uniform draw per row."""
    u = torch.rand(logits.size(0), generator=generator)  # drawn even when greedy
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits.float() if temperature == 1 else logits.float() / temperature
    logits = filter_logits(logits, top_k=top_k, top_p=top_p)
    probs, order = logits.softmax(dim=-1).sort(dim=-1, descending=True)
    cdf = probs.cumsum(dim=-1)
    # the number of cdf values below u: the first token whose cdf reaches u
    index = torch.searchsorted(cdf, u.to(cdf.device)[:, None])
    # never a token of probability 0 (a rounding shortfall of the cdf below u), never past V
    index = torch.minimum(index, (probs > 0).sum(dim=-1, keepdim=True) - 1)
    return order.gather(-1, index).squeeze(-1)


def sample_search(
    step_fn: StepFn,
    state: SearchState,
    *,
    start_ids: Tensor,
    max_len: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    eos_id: int | None = None,
    banned: Sequence[int] = (),
    on_step: Callable[[list[int]], None] | None = None,
) -> list[list[int]]:
    """Sampling as a search strategy over `step_fn` (the contract of greedy and beam search):
    from start_ids (N,) draw up to `max_len` tokens per row (`pick`). With `eos_id`, a row that
    draws it is finished (EOS kept as its last token) and dropped from the batch
    (`state.select`); without, every row gets `max_len` tokens. `banned` ids are never drawn.
    `on_step(tokens)` gets each step's tokens, one per live row."""
    generator = generator or torch.Generator()
    out: list[list[int]] = [[] for _ in range(start_ids.numel())]
    live = list(range(start_ids.numel()))  # the output row of each state row
    last_ids = start_ids
    index = None if not banned else torch.tensor(list(banned), device=start_ids.device)
    for t in range(max_len):
        log_probs, state, _ = step_fn(last_ids, state)
        if index is not None:
            log_probs = log_probs.index_fill(-1, index, float("-inf"))
        tokens = pick(log_probs, temperature=temperature, top_k=top_k, top_p=top_p,
                      generator=generator)  # fmt: skip
        new = tokens.tolist()
        for row, token in zip(live, new, strict=True):
            out[row].append(token)
        if on_step is not None:
            on_step(new)
        if eos_id is not None and eos_id in new and t < max_len - 1:
            keep = [i for i, token in enumerate(new) if token != eos_id]
            if not keep:
                break
            rows = torch.tensor(keep, device=tokens.device)
            state, tokens, live = state.select(rows), tokens[rows], [live[i] for i in keep]
        last_ids = tokens
    return out


def sample(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    max_new: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    device: torch.device | str = "cpu",
    on_step: Callable[[list[int]], None] | None = None,
) -> list[list[int]]:
    """`max_new` new tokens for every prompt of a decoder-only model (each a non-empty list of
    ids); returns them (prompts not included): `sample_search` over the model's
    `init_state` / `step` (models/lm_state.py)."""
    require_eval(model, "sampling")
    with grad_off():  # inference mode, or no_grad under a caller's autocast (its weight cache)
        state = model.init_state([list(p) for p in prompts])
        start = torch.tensor([p[-1] for p in prompts], dtype=torch.long, device=state.device)
        step = partial(model.step, options=DecodeOptions(use_cache=use_cache))
        return sample_search(
            step, state, start_ids=start, max_len=max_new, temperature=temperature,
            top_k=top_k, top_p=top_p, generator=generator, on_step=on_step,
        )  # fmt: skip
