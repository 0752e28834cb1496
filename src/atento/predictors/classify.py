"""Predictors of text-encoder runs: a sentence classifier (labels with probabilities) and a
masked language model; both draw the self-attention over a sentence as the model reads it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from atento.data.batching import _pad
from atento.data.lines import LinePolicy, fit_lengths
from atento.options import require
from atento.predictors.base import Predictor
from atento.predictors.decoding import self_attention
from atento.runtime import Placement


@dataclass
class Label:
    """A sentence's class: the most probable `label`, its `probability`, and all of them."""

    label: str
    probability: float
    probabilities: dict[str, float]


def predict(
    model: nn.Module, seqs: list[list[int]], placement: Placement, *, batch_size: int = 64
) -> Tensor:
    """Class probabilities (N, C) fp32 on the CPU for sequences that already carry their special
    tokens; batched by length, returned in the input order (no_grad; model in eval mode)."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    probs: list[Tensor] = [torch.empty(0)] * len(seqs)
    with torch.no_grad():
        for k in range(0, len(order), batch_size):
            rows = order[k : k + batch_size]
            ids, pad_mask = _pad([seqs[i] for i in rows])
            with placement.autocast():
                logits = model(ids.to(placement.device), pad_mask.to(placement.device)).logits
            p = logits.float().softmax(-1).cpu()
            for j, i in enumerate(rows):
                probs[i] = p[j]
    return torch.stack(probs) if probs else torch.empty(0, 0)


class SelfAttentionPredictor(Predictor):
    """A run without a decoder to follow: its self-attention over a text."""

    operations = frozenset({"self_attention"})

    def self_attention(self, text: str, *, layer: int | None, head: int | None):
        return self_attention(self.run, text, layer=layer, head=head)


class MaskedLMPredictor(SelfAttentionPredictor):
    reads = frozenset({"text"})


class ClassifierPredictor(SelfAttentionPredictor):
    operations = frozenset({"classify", "self_attention"})
    reads = frozenset({"data", "data_format"})

    def classify(
        self, lines: list[str], policy: LinePolicy | None = None, *, name: str = "input",
        batch_size: int = 64, precision: str | None = None,
    ) -> list[Label | None]:  # fmt: skip
        """A `Label` per line, in order (None for an empty line)."""
        require(batch_size >= 1, "batch_size", "at least 1", batch_size)
        task, run = self.run.task, self.run
        keep = [i for i, line in enumerate(lines) if line]
        ids = fit_lengths(task.tokenizers["text"].encode_batch([lines[i] for i in keep]),
                          task.piece_limit(), policy or LinePolicy(on_too_long="error"),
                          name=name, numbers=[i + 1 for i in keep])  # fmt: skip
        placement = run.placement
        if precision is not None:
            placement = placement.with_precision(precision, key="precision")
        probs = predict(run.model, [task.sequence(x) for x in ids], placement,
                        batch_size=batch_size)  # fmt: skip
        names = task.tokenizers["labels"].labels
        out: list[Label | None] = [None] * len(lines)
        for i, row in zip(keep, probs, strict=True):
            p, c = row.max(-1)
            out[i] = Label(names[int(c)], float(p), dict(zip(names, row.tolist(), strict=True)))
        return out
