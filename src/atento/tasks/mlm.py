"""Masked-language-model pretraining of an encoder (`task: mlm`, Devlin et al. 2019, 3.1).

    task: mlm
    data:
      train: ../shared/data/sst2/sentence_split/train.tsv
      format: sst2              # sst2 | trec | text: the sentences of a labelled file, or lines
      exclude: ../shared/data/sst2/sentence_split/valid.tsv  # never pretrained on (same format)
      valid_fraction: 0.05      # the last 5 % of the sentences: validation (or data.valid)
      drop_contained: false     # true: only the rows that occur inside no other row, once
      tokenizer: sentencepiece  # trained on a seeded sample of data.tokenizer_sample sentences
    model:
      arch: bert

The sentences are read once, streaming, into the corpus store (`atento.data.store.sentences`,
prepared on first use or by `atento prepare`): each sentence's ids as a memory-mapped row,
the validation ones too; `[CLS]`/`[SEP]` and the cut to `model.context` are added per batch.

Each sentence is `[CLS] x [SEP]` (BOS ... EOS). Of its tokens (never [CLS], [SEP] or padding)
each is chosen with probability `data.mask_prob` (15 %), and a sentence where none was chosen
gets one chosen at random; a chosen token becomes [MASK] with probability 0.8, a random token
(uniform over the tokenizer's non-special ids) with 0.1, and stays itself with 0.1. The loss
is the cross-entropy at the chosen positions only, summed over them (count()), and
the output layer is applied at those positions alone. Training masks are drawn from torch's
global generator (saved in checkpoints, so a resumed run draws the same masks); validation
uses one fixed generator, so its loss compares across validations. Validation reports the
loss per chosen token (the selection metric, lower is better), its perplexity and the accuracy
of the predictions at the chosen positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from atento.config import check
from atento.data.batching import Movable, TokenBatchSampler, _pad, pad_rows
from atento.data.labelled import FORMATS, read_labelled
from atento.data.store import SentenceData, SentenceSource, labelled_source
from atento.data.text import piece_labels
from atento.data.tokenizers import Tokenizer
from atento.data.vocab import N_SPECIAL
from atento.errors import AtentoError
from atento.predictors.classify import MaskedLMPredictor
from atento.runtime import Placement
from atento.tasks.base import LossOutput, Selection, Task, loss_metrics
from atento.tasks.sentence_data import load_sentences, open_sentences, row_lengths
from atento.training.loss import sequence_loss

MASK_KEEP = (0.8, 0.1, 0.1)  # [MASK], random token, unchanged


@dataclass
class MLMDataConfig:
    """The data section of `task: mlm` (module doc)."""

    train: str = ""
    valid: str = ""  # a file in data.format; empty: the last valid_fraction of train
    format: str = "text"  # text | sst2 | trec
    exclude: str = ""  # a file (data.format) whose sentences are removed from the text
    valid_fraction: float = 0.05
    tokenizer: str = "sentencepiece"  # sentencepiece | char
    vocab_size: int = 8000
    mask_prob: float = 0.15
    drop_contained: bool = False  # keep only the rows inside no other row (SST-2's phrases)
    tokenizer_sample: int = 1_000_000  # sentences SentencePiece trains on (a seeded sample)
    seed: int = 1234  # the tokenizer sample's seed
    workers: int = 0  # processes encoding the corpus store; 0 = the CPU cores

    def validate(self, cfg: Any) -> None:
        check(self.format in FORMATS, cfg, "data.format", ", ".join(FORMATS))
        check(self.tokenizer in ("char", "sentencepiece"), cfg, "data.tokenizer",
              "char, sentencepiece")  # fmt: skip
        check(0.0 < self.valid_fraction < 1.0, cfg, "data.valid_fraction", "a value in (0, 1)")
        check(0.0 < self.mask_prob < 1.0, cfg, "data.mask_prob", "a value in (0, 1)")
        check(self.tokenizer_sample >= 1, cfg, "data.tokenizer_sample", "at least 1")
        check(self.workers >= 0, cfg, "data.workers", "0 (the CPU cores) or more")
        if not self.train:
            raise AtentoError("config: task=mlm needs data.train (a text or labelled file)")


def mask_tokens(
    ids: Tensor, candidates: Tensor, *, vocab_size: int, mask_id: int, mask_prob: float = 0.15,
    generator: torch.Generator | None = None, low: int = N_SPECIAL,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """BERT's masking (module doc). ids (B, T), candidates (B, T) bool True = may be chosen ->
    (inputs (B, T) with the chosen tokens replaced, chosen (B, T) bool). Random replacements
    are drawn from ids low .. vocab_size - 1 (the tokenizer's `regular_ids`)."""
    g = {"generator": generator}
    chosen = (torch.rand(ids.shape, **g) < mask_prob) & candidates
    empty = ~chosen.any(1) & candidates.any(1)  # rows with nothing chosen: choose one
    if bool(empty.any()):
        noise = torch.rand(ids.shape, **g).masked_fill(~candidates, -1.0)
        pick = noise.argmax(1)  # a uniform candidate of each row
        rows = empty.nonzero().squeeze(1)
        chosen[rows, pick[rows]] = True
    r = torch.rand(ids.shape, **g)
    to_mask = chosen & (r < MASK_KEEP[0])
    to_random = chosen & (r >= MASK_KEEP[0]) & (r < MASK_KEEP[0] + MASK_KEEP[1])
    random_ids = torch.randint(low, vocab_size, ids.shape, **g)
    inputs = ids.masked_fill(to_mask, mask_id)
    inputs = torch.where(to_random, random_ids, inputs)
    return inputs, chosen


@dataclass
class MaskedBatch(Movable):
    """inputs (B, T) after masking, pad_mask (B, T) True = real token, targets (N,) the
    original ids at the N chosen positions, chosen (B, T) bool."""

    inputs: Tensor
    pad_mask: Tensor
    chosen: Tensor
    targets: Tensor


def sentence_ids(tok: Tokenizer, sentences: list[str], context: int) -> tuple[list, int]:
    """`[CLS] x [SEP]` ids of each sentence, cut to `context`; and how many were cut."""
    out, cut = [], 0
    for ids in tok.encode_batch(sentences):
        if len(ids) + 2 > context:
            ids, cut = ids[: context - 2], cut + 1
        out.append([tok.bos_id, *ids, tok.eos_id])
    return out, cut


class MaskedLMTask(Task):
    name = "mlm"
    predictor = MaskedLMPredictor
    architectures = ("bert", "birnn")
    data_config = MLMDataConfig
    selection = Selection("loss", higher_is_better=False)
    unit = "masked"
    prepares_on_every_rank = True  # the corpus store: local rank 0 builds, the others wait

    def source(self) -> SentenceSource:
        """The pretraining sentences (less data.exclude's, maximal ones only with
        data.drop_contained) and the validation ones (data.valid, or the last fraction)."""
        data = self.cfg.data
        return labelled_source(data.train, data.format, exclude=data.exclude,
                               drop_nested=data.drop_contained, valid=data.valid,
                               valid_fraction=data.valid_fraction)  # fmt: skip

    def prepare_store(
        self, run_dir: Path | None, tokenizers: dict[str, Tokenizer] | None, *,
        workers: int | None = None, verify: bool = False,
    ) -> SentenceData:  # fmt: skip
        """The sentences' corpus store (found, waited for or built; `atento prepare`)."""
        return open_sentences(self, self.source(), run_dir, tokenizers, workers=workers,
                              verify=verify)  # fmt: skip

    def prepare(self, run_dir: Path | None, tokenizers: dict[str, Tokenizer] | None) -> None:
        self.store, self.tokenizers, self.pretrained = load_sentences(
            self, self.source(), run_dir, tokenizers
        )
        self.valid_ids = self._valid_seqs()
        context = self.cfg.model.context
        cut = int((np.asarray(self.store.train.lengths) + 2 > context).sum())
        if cut:
            self.log(f"{cut} training sentence(s) cut to model.context={context} tokens")
        lengths = row_lengths(self.store.train.lengths, context - 2, 2)
        self.sampler = TokenBatchSampler(lengths, batch_tokens=self.cfg.train.batch_tokens,
                                         shuffle=True, seed=self.cfg.train.seed)  # fmt: skip

    def _valid_seqs(self) -> list[list[int]]:
        """The store's validation sentences as `[CLS] x [SEP]` id lists (cut to the context)."""
        tok, valid = self.tokenizers["text"], self.store.valid
        assert valid is not None
        keep = self.cfg.model.context - 2
        return [[tok.bos_id, *valid.row(i)[:keep].tolist(), tok.eos_id]
                for i in range(len(valid))]  # fmt: skip

    @property
    def text_vocab(self) -> int:
        return self.tokenizers["text"].vocab_size

    def model_sizes(self) -> dict[str, Any]:
        sizes: dict[str, Any] = {"vocab_size": self.tokenizers["text"].embedding_rows}
        if getattr(self, "pretrained", None) is not None:
            sizes["pretrained"] = self.pretrained
        return sizes

    def describe(self) -> str:
        return (
            f"{len(self.store):,} pretraining sentences ({self.store.left_out['train']:,} "
            f"excluded), "
            f"{len(self.valid_ids):,} validation, vocabulary {self.text_vocab} + [MASK]"
        )

    def _masked(self, ids: Tensor, pad_mask: Tensor, generator=None) -> MaskedBatch:
        """Mask padded `[CLS] x [SEP]` ids (B, T) with pad_mask (B, T) True = real token."""
        tok = self.tokenizers["text"]
        candidates = pad_mask & (ids != tok.bos_id) & (ids != tok.eos_id)
        replace = tok.regular_ids
        inputs, chosen = mask_tokens(
            ids, candidates, vocab_size=replace.stop, low=replace.start, mask_id=tok.mask_id,
            mask_prob=self.cfg.data.mask_prob, generator=generator,
        )  # fmt: skip
        return MaskedBatch(inputs, pad_mask, chosen, ids[chosen])

    def collate(self, indices: list[int]) -> MaskedBatch:
        """`[CLS] x [SEP]` of the store's rows (cut to model.context), masked with torch's
        global generator."""
        tok, rows, keep = self.tokenizers["text"], self.store.train, self.cfg.model.context - 2
        ids, pad_mask = pad_rows([rows.row(i)[:keep] for i in indices], first=tok.bos_id,
                                 last=tok.eos_id)  # fmt: skip
        return self._masked(ids, pad_mask)

    def count(self, batch: MaskedBatch) -> int:
        return int(batch.targets.numel())

    def forward(self, model: nn.Module, batch: MaskedBatch) -> Tensor:
        return model(batch.inputs, pad_mask=batch.pad_mask, select=batch.chosen)  # (N, V)

    def loss(self, outputs: Tensor, batch: MaskedBatch) -> LossOutput:
        loss = sequence_loss(outputs, batch.targets, label_smoothing=self.cfg.train.label_smoothing)
        return LossOutput(loss)

    def validate(self, model: nn.Module, placement: Placement) -> dict[str, float]:
        """Loss, perplexity and accuracy at the chosen positions of the validation sentences,
        masked by a fixed generator (the same masks at every validation)."""
        return self._score(model, placement, self.valid_ids)

    def _score(self, model: nn.Module, placement: Placement, seqs: list) -> dict[str, float]:
        g = torch.Generator().manual_seed(1234)
        total, correct, count = 0.0, 0, 0
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        for k in range(0, len(order), 128):
            batch = self._masked(*_pad([seqs[i] for i in order[k : k + 128]]), g)
            batch = batch.to(placement.device)
            with placement.autocast():
                logits = self.forward(model, batch)
            total += float(sequence_loss(logits.float(), batch.targets))
            correct += int((logits.argmax(-1) == batch.targets).sum())
            count += int(batch.targets.numel())
        return {**loss_metrics(total, count), "accuracy": round(correct / max(count, 1), 4)}

    def format_metrics(self, metrics: dict[str, float]) -> str:
        return (f"valid MLM loss {metrics['loss']:.4f} ppl {metrics['ppl']:.2f} "
                f"accuracy {metrics['accuracy']:.3f}")  # fmt: skip

    def attention_map(self, run: Any, text: str, *, layer: int, head: int | None):
        """Self-attention (H, T, T) over `[CLS] x [SEP]` as the encoder reads it (every
        position sees every other)."""
        tok = self.tokenizers["text"]
        context = self.cfg.model.context
        (ids,), cut = sentence_ids(tok, [text], context)
        if cut:
            raise AtentoError(f"the sentence is longer than the model takes ({context - 2} "
                              "pieces)")  # fmt: skip
        heads = run.model.self_attention(ids, layer=layer, head=head)  # ValueError: the caller
        return heads, *[piece_labels(tok, ids, {tok.bos_id: "[CLS]", tok.eos_id: "[SEP]"})] * 2

    def evaluate(self, run: Any, args: Any) -> dict[str, Any]:
        """MLM loss, perplexity and accuracy over `--text` (plain lines, the option of the lm
        task) or the run's validation sentences, with the fixed validation masks."""
        self.tokenizers = run.tokenizers
        text = getattr(args, "text", None)
        if text:
            sentences = read_labelled(text, "text").sentences
            seqs, _ = sentence_ids(self.tokenizers["text"], sentences, self.cfg.model.context)
        else:  # the validation sentences, from the run's store (built again if it is gone)
            self.store = open_sentences(self, self.source(), getattr(run, "path", None),
                                        run.tokenizers)  # fmt: skip
            seqs = self._valid_seqs()
        with torch.no_grad():
            report: dict[str, Any] = self._score(run.model, run.placement, seqs)
        report.update(sentences=len(seqs), text=text or "validation")
        return report
