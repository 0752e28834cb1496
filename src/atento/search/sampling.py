"""Sampling text from a decoder-only language model, with or without the KV cache.

    rows = sample(model, [prompt_ids, ...], max_new=256, temperature=0.8, top_k=40,
                  generator=torch.Generator().manual_seed(1))

Prompts of different lengths share one batch: they are left-padded, each row gets its own
positions (0 at its first real token) and a padding mask, so every row's tokens equal sampling
it alone. With the cache, the prompt is read in one pass (prefill) and then one token per step;
without it, every step re-reads the whole visible text (the slow reference).

Randomness: each step draws one uniform number per row from `generator` and picks the token
where the cumulative probability (tokens in descending order) first exceeds it, so the same
seed gives the same text, cached or not. Temperature 0 is greedy.

Context: a model with learned positions reads at most `C = model.length_limit()` tokens.
When a row would go beyond, the visible text is cut to its last C // 2 tokens (re-read once:
a sliding window that moves by C / 2), for every row at the same step, in both modes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from atento.data.vocab import PAD_ID
from atento.errors import AtentoError
from atento.models.base import length_limit, require_eval


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


def check_settings(*, max_new: int, temperature: float, top_k: int, top_p: float,
                   name=lambda key: key) -> None:  # fmt: skip
    """A one-line AtentoError for a setting out of range; `name(key)` spells the key the way
    the caller's user wrote it (`--max-new` on the command line)."""
    values = {"max_new": max_new, "temperature": temperature, "top_k": top_k, "top_p": top_p}
    rules = {"max_new": (max_new >= 1, "at least 1"), "temperature": (temperature >= 0, ">= 0"),
             "top_k": (top_k >= 0, ">= 0"), "top_p": (0 < top_p <= 1, "in (0, 1]")}  # fmt: skip
    for key, (ok, want) in rules.items():
        if not ok:
            raise AtentoError(f"{name(key)} must be {want}, got {values[key]}")


def _left_pad(rows: Sequence[Sequence[int]], device: torch.device):
    """ids (B, P), pad_mask (B, P), positions (B, P): left-padded rows, positions from 0.
    Rows of one length need neither: (ids, None, None)."""
    if len({len(r) for r in rows}) == 1:
        return torch.tensor([list(r) for r in rows], dtype=torch.long, device=device), None, None
    P = max(len(r) for r in rows)
    ids = torch.full((len(rows), P), PAD_ID, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, P - len(r) :] = torch.tensor(list(r), dtype=torch.long)
    lengths = torch.tensor([len(r) for r in rows])
    pad_mask = torch.arange(P)[None, :] >= (P - lengths)[:, None]
    positions = (torch.arange(P)[None, :] - (P - lengths)[:, None]).clamp(min=0)
    return ids.to(device), pad_mask.to(device), positions.to(device)


@torch.inference_mode()  # no autograd bookkeeping at all: ~20 % off a cached step
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
    """`max_new` new tokens for every prompt (each a non-empty list of ids); returns them
    (prompts not included). `on_step(tokens)` gets each step's tokens, one per row."""
    require_eval(model, "sampling")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    generator = generator or torch.Generator()
    device = torch.device(device)
    limit = length_limit(model)
    texts = [list(p) for p in prompts]
    visible = [len(p) for p in prompts]  # how many of each row's last tokens the model sees
    if limit is not None and max(visible) > limit:
        raise ValueError(f"a prompt of {max(visible)} tokens is longer than the context {limit}")
    out: list[list[int]] = [[] for _ in prompts]
    cache = pad_mask = positions = None

    def read_all():  # the visible text of every row in one pass -> last logits, cache
        # rows of one length (batch 1 included) need no padding mask and no per-row
        # positions; they stay of one length (each grows by a token a step, windows slide alike)
        rows = [t[len(t) - v :] for t, v in zip(texts, visible, strict=True)]
        ids, mask, pos = _left_pad(rows, device)
        h, _, new_cache = model.hidden(ids, pad_mask=mask, positions=pos)
        return model.logits(h[:, -1]), new_cache, mask, None if pos is None else pos[:, -1]

    for step in range(max_new):
        if not use_cache or cache is None:
            logits, cache, pad_mask, positions = read_all()
        tokens = pick(logits, temperature=temperature, top_k=top_k, top_p=top_p,
                      generator=generator)  # fmt: skip
        new = tokens.tolist()
        for i, t in enumerate(new):
            texts[i].append(t)
            out[i].append(t)
            visible[i] += 1
        if on_step is not None:
            on_step(new)
        if step == max_new - 1:
            break
        if limit is not None and max(visible) > limit:  # slide the window (module doc)
            visible = [min(v, limit // 2) for v in visible]
            cache = None
            continue
        if use_cache:
            if pad_mask is not None:  # left-padded rows: each its own next position
                positions = positions + 1
                pad_mask = torch.cat([pad_mask, pad_mask.new_ones(len(new), 1)], dim=1)
            h, cache = model.step(tokens.to(device), cache, pad_mask=pad_mask,
                                  positions=positions)  # fmt: skip
            logits = model.logits(h)
    return out
