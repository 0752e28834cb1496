"""Teacher-forced sequence scoring: log P(y | x) of given outputs, per token and per sentence.

The score of a target y = (y_1 .. y_n) is the chain rule under teacher forcing,

    log P(y | x) = sum_{t=1}^{Ty} log P(y_t | x, y_<t),   Ty = n + 1 (EOS included),

computed in one decoder pass per batch (OpenNMT-py's "gold score"). The length-normalised score
is `LengthPenalty(alpha)(log P(y | x), Ty)`, the very objective beam search ranks by, so a
reference and a search output can be compared under one rule (the beam-search error analysis).

The model only needs the teacher-forcing forward shared by every encoder-decoder:
`model(src_ids (B, S), src_mask (B, S), tgt_in (B, T)) -> (logits (B, T, V), weights | None)`.
Log-probs are the full-vocabulary log_softmax; the searchers ban PAD and BOS by setting them
to -inf without renormalising, so the two agree on every token they can output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from atento.data.batching import collate_sources
from atento.data.vocab import BOS_ID, EOS_ID
from atento.search import LengthPenalty


@dataclass
class SequenceScore:
    """How a model scores one given output.

    token_log_probs: Ty values log P(y_t | x, y_<t), the EOS step last when `finished`.
    log_prob: their sum, log P(y | x).
    score: `length_penalty(log_prob, Ty)`, comparable with `Hypothesis.score`.
    """

    token_log_probs: list[float]
    log_prob: float
    score: float
    finished: bool = True

    @property
    def length(self) -> int:
        """Ty: scored steps, the EOS included when finished."""
        return len(self.token_log_probs)

    @classmethod
    def from_token_log_probs(
        cls, token_log_probs: Sequence[float], penalty: LengthPenalty, *, finished: bool = True
    ) -> SequenceScore:
        """Sum and normalise per-token log-probs (Ty,) exactly as the searchers do."""
        lps = [float(x) for x in token_log_probs]
        total = float(torch.tensor(lps, dtype=torch.float32).sum()) if lps else 0.0
        return cls(lps, total, float(penalty(total, len(lps))), finished)


def target_ids(ids: dict[str, int]) -> dict[str, int]:
    """What teacher forcing feeds first and scores last, from a target side's `search_ids`:
    the `bos_id` and `eos_id` keyword arguments of `score_sequences`."""
    return {"bos_id": ids["bos_id"], "eos_id": ids["eos_id"]}


def _pad_right(seqs: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
    """Right-pad id lists with PAD (0) -> ids (N, L) long and mask (N, L) bool, True = real."""
    width = max((len(s) for s in seqs), default=0)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    lengths = torch.as_tensor([len(s) for s in seqs], dtype=torch.long)
    return ids, torch.arange(width)[None, :] < lengths[:, None]


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@torch.no_grad()
def score_batch(
    model: nn.Module,
    src: Sequence[Sequence[int]],
    tgt: Sequence[Sequence[int]],
    *,
    length_penalty: LengthPenalty,
    finished: Sequence[bool] | None = None,
    collate: Callable[[Sequence], tuple[Tensor, Tensor]] = collate_sources,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
) -> list[SequenceScore]:
    """Teacher-forced scores of B (source ids, target ids) pairs, ids without BOS / EOS
    (`collate` batches the sources: token ids by default, image features for captioning).

    The decoder reads `[bos_id] + y` and is scored on `y + [eos_id]` (on `y` alone where
    `finished[b]` is False: an output cut at the maximum length has no EOS step).
    logits (B, T, V) -> log_softmax -> gather the targets (B, T) -> mask padding -> sum.
    """
    finished = [True] * len(src) if finished is None else list(finished)
    device = _model_device(model)
    src_ids, src_mask = collate(src)
    targets = [[*y, eos_id] if fin else list(y) for y, fin in zip(tgt, finished, strict=True)]
    tgt_in, _ = _pad_right([[bos_id, *y][: len(t)] for y, t in zip(tgt, targets, strict=True)])
    tgt_out, tgt_mask = _pad_right(targets)  # (B, T)
    if tgt_out.size(1) == 0:  # only empty unfinished outputs: nothing to score
        return [SequenceScore([], 0.0, float(length_penalty(0.0, 0)), False) for _ in src]
    logits, _ = model(src_ids.to(device), src_mask.to(device), tgt_in.to(device))
    log_probs = F.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    picked = log_probs.gather(-1, tgt_out.to(device).unsqueeze(-1)).squeeze(-1)  # (B, T)
    picked = picked.masked_fill(~tgt_mask.to(device), 0.0).cpu()
    return [
        SequenceScore.from_token_log_probs(
            picked[b, : len(targets[b])].tolist(), length_penalty, finished=finished[b]
        )
        for b in range(len(src))
    ]


def score_sequences(
    model: nn.Module,
    src: Sequence[Sequence[int]],
    tgt: Sequence[Sequence[int]],
    *,
    length_penalty: LengthPenalty,
    finished: Sequence[bool] | None = None,
    batch_size: int = 64,
    progress: bool = False,
    collate: Callable[[Sequence], tuple[Tensor, Tensor]] = collate_sources,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
) -> list[SequenceScore]:
    """`score_batch` over any number of pairs, batched by target length; input order kept."""
    if len(src) != len(tgt):
        raise ValueError(f"{len(src)} sources but {len(tgt)} targets")
    finished = [True] * len(src) if finished is None else list(finished)
    was_training = model.training
    model.eval()
    order = sorted(range(len(src)), key=lambda i: (len(tgt[i]), len(src[i])))
    results: list[SequenceScore | None] = [None] * len(src)
    bar = tqdm(total=len(src), desc="scoring", unit="sent", disable=not progress, leave=False)
    try:
        for start in range(0, len(order), max(batch_size, 1)):
            idx = order[start : start + batch_size]
            scores = score_batch(
                model, [src[i] for i in idx], [tgt[i] for i in idx],
                length_penalty=length_penalty, finished=[finished[i] for i in idx],
                collate=collate, bos_id=bos_id, eos_id=eos_id,
            )  # fmt: skip
            for i, s in zip(idx, scores, strict=True):
                results[i] = s
            bar.update(len(idx))
    finally:
        bar.close()
        model.train(was_training)
    return [s for s in results if s is not None]
