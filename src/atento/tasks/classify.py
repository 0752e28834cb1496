"""Sentence classification (`task: classify`) with a BERT-style encoder, a GPT or a
bidirectional RNN (`birnn`).

    task: classify
    data:
      train: ../shared/data/sst2/sentence_split/train.tsv
      valid: ../shared/data/sst2/sentence_split/valid.tsv
      format: sst2              # sst2 (TSV with a header) | trec (Li and Roth, Latin-1)
      tokenizer: sentencepiece  # a new tokenizer, or the pretrained run's with init_from
      lm_weight: 0.0            # gpt: weight of the auxiliary language-model loss
    model:
      arch: bert                # bert: pooled encoder states; gpt: the last token's state;
                                # birnn: pooled bidirectional RNN annotations
      init_from: runs/sst2_mlm  # optional: start from a pretrained run's weights

Inputs: `[CLS] x [SEP]` for `bert` and `birnn`; `x` + an end token for `gpt` (`</s>`, or a line
break for a character LM: what the LM saw at the end of a line), whose state is the one
classified.
The training sentences are read once, streaming, into the corpus store
(`atento.data.store.sentences`: memory-mapped rows of ids and an int32 class column, prepared
on first use or by `atento prepare`); the validation file is read into memory.
The classes are the sorted distinct labels of the training file, stored with the tokenizers
(`LabelSet`, role `labels`); a validation or evaluation label outside them is an error
naming its file and line. The loss is the cross-entropy summed over the batch's sentences
(count() = sentences); for a GPT with `lm_weight` > 0 it adds lm_weight x the
batch's mean next-token loss per token for each sentence (Radford et al. 2018, eq. 5:
L3 = L2 + lambda L1), reported in `extras`. Validation: accuracy (the selection metric,
higher is better), macro-F1 and the mean loss.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from atento.analysis.classification import classification_report
from atento.config import check
from atento.data.batching import Movable, TokenBatchSampler, pad_rows
from atento.data.labelled import LABELLED_FORMATS, Labelled, read_labelled
from atento.data.lines import LinePolicy, fit_lengths
from atento.data.store import SentenceData, SentenceSource, labelled_source
from atento.data.text import piece_labels
from atento.data.tokenizers import CharTokenizer, LabelSet, Tokenizer
from atento.errors import AtentoError
from atento.predictors.classify import ClassifierPredictor, predict
from atento.runtime import Placement
from atento.tasks.base import LossOutput, Selection, Task
from atento.tasks.sentence_data import load_sentences, open_sentences, row_lengths
from atento.training.loss import sequence_loss


@dataclass
class ClassifyDataConfig:
    """The data section of `task: classify` (module doc)."""

    train: str = ""
    valid: str = ""
    format: str = "sst2"  # sst2 | trec
    tokenizer: str = "sentencepiece"  # sentencepiece | char (with init_from: the pretrained run's)
    vocab_size: int = 8000  # sentencepiece, new tokenizer only
    lm_weight: float = 0.0  # gpt only: auxiliary language-model loss weight (Radford: 0.5)
    tokenizer_sample: int = 1_000_000  # sentences SentencePiece trains on (a seeded sample)
    seed: int = 1234  # the tokenizer sample's seed
    workers: int = 0  # processes encoding the corpus store; 0 = the CPU cores

    def validate(self, cfg: Any) -> None:
        check(self.format in LABELLED_FORMATS, cfg, "data.format", ", ".join(LABELLED_FORMATS))
        check(self.tokenizer in ("char", "sentencepiece"), cfg, "data.tokenizer",
              "char, sentencepiece")  # fmt: skip
        check(self.lm_weight >= 0, cfg, "data.lm_weight", "a value >= 0")
        check(self.tokenizer_sample >= 1, cfg, "data.tokenizer_sample", "at least 1")
        check(self.workers >= 0, cfg, "data.workers", "0 (the CPU cores) or more")
        if not (self.train and self.valid):
            raise AtentoError("config: task=classify needs data.train and data.valid")
        if self.lm_weight > 0 and cfg.model.arch != "gpt":
            raise AtentoError("config: data.lm_weight (the auxiliary LM loss) needs model.arch=gpt")


@dataclass
class ClassBatch(Movable):
    """ids (B, T) right-padded, pad_mask (B, T) True = real token, labels (B,) class indices."""

    ids: Tensor
    pad_mask: Tensor
    labels: Tensor


class ClassifyTask(Task):
    name = "classify"
    predictor = ClassifierPredictor
    architectures = ("bert", "gpt", "birnn")
    data_config = ClassifyDataConfig
    selection = Selection("accuracy", higher_is_better=True)
    unit = "sent"
    units = "sentences"
    prepares_on_every_rank = True  # the corpus store: local rank 0 builds, the others wait

    # ---------------------------------------------------------------- sequences
    @property
    def causal(self) -> bool:
        return self.cfg.model.arch == "gpt"

    def overhead(self) -> int:
        """Special tokens added to a sentence's pieces: [CLS] + [SEP], or the end token."""
        return 1 if self.causal else 2

    def piece_limit(self) -> int | None:
        """The most pieces of a sentence the model takes (learned positions); None = any."""
        m = self.cfg.model
        if getattr(m, "positions", None) != "learned":  # sinusoids, or an RNN: any length
            return None
        return m.context - self.overhead()

    def _end_id(self) -> int:
        tok = self.tokenizers["text"]
        if isinstance(tok, CharTokenizer) and "\n" in tok.chars:
            return tok.encode("\n")[0]
        return tok.eos_id

    def sequence(self, pieces: list[int]) -> list[int]:
        """A sentence's piece ids -> the model's input (module doc)."""
        if self.causal:
            return [*pieces, self._end_id()]
        tok = self.tokenizers["text"]
        return [tok.bos_id, *pieces, tok.eos_id]

    def encode(
        self, data: Labelled, policy: LinePolicy | None = None
    ) -> tuple[list[list[int]], int]:
        """Model inputs of a file's sentences under `policy` (default: cut to the model's
        length, counting the cuts) and the number cut."""
        limit = self.piece_limit()
        ids = self.tokenizers["text"].encode_batch(data.sentences)
        cut = sum(limit is not None and len(s) > limit for s in ids)
        policy = policy or LinePolicy(on_too_long="truncate")
        if policy.on_too_long == "truncate" and limit is not None:
            ids = [s[:limit] for s in ids]
        else:
            ids = fit_lengths(ids, limit, policy, name=data.name, numbers=data.lines)
        return [self.sequence(s) for s in ids], cut

    def label_ids(self, data: Labelled) -> list[int]:
        """Class indices of a file's labels; an unknown label is an error naming its line."""
        lines = zip(data.labels or [], data.lines, strict=True)
        return [self._class_index(label, f"{data.name}:{line}") for label, line in lines]

    def _class_index(self, label: str, where: str) -> int:
        """The run's class index of `label`; an unknown label is an error naming `where`."""
        labels: LabelSet = self.tokenizers["labels"]
        i = labels.index(label)
        if i is None:
            raise AtentoError(
                f"{where}: label {label!r} is not one the model knows ({', '.join(labels.labels)})"
            )
        return i

    # ---------------------------------------------------------------- training
    def prepare_store(
        self, run_dir: Path | None, tokenizers: dict[str, Tokenizer] | None, *,
        workers: int | None = None, verify: bool = False,
    ) -> SentenceData:  # fmt: skip
        """The training sentences' corpus store, with their classes (found, waited for or
        built; `atento prepare`)."""
        return open_sentences(self, self.source(), run_dir, tokenizers, workers=workers,
                              verify=verify)  # fmt: skip

    def source(self) -> SentenceSource:
        """The training file's sentences and labels, streamed."""
        return labelled_source(self.cfg.data.train, self.cfg.data.format, labelled=True)

    def prepare(self, run_dir: Path | None, tokenizers: dict[str, Tokenizer] | None) -> None:
        data = self.cfg.data
        self.store, text, self.pretrained = load_sentences(self, self.source(), run_dir,
                                                           tokenizers)  # fmt: skip
        if tokenizers is None:  # the sorted distinct labels of the training file
            labels = LabelSet(self.store.classes or [])
            if run_dir is not None:
                labels.save(run_dir, "labels")
            tokenizers = {**text, "labels": labels}
        self.tokenizers = tokenizers
        self.class_of = self._class_map()
        self.end_id = self._end_id() if self.causal else None
        valid = read_labelled(data.valid, data.format)
        self.valid_ids, _ = self.encode(valid)
        self.valid_labels = self.label_ids(valid)
        limit = self.piece_limit()
        if limit is not None and (cut := int((np.asarray(self.store.train.lengths) > limit).sum())):
            self.log(f"{cut} training sentence(s) cut to model.context={self.cfg.model.context}")
        lengths = row_lengths(self.store.train.lengths, limit, self.overhead())
        self.sampler = TokenBatchSampler(lengths, batch_tokens=self.cfg.train.batch_tokens,
                                         shuffle=True, seed=self.cfg.train.seed)  # fmt: skip

    def _class_map(self) -> np.ndarray:
        """The run's class index of each of the store's classes (the same order, unless a
        resumed run's training file gained a label: an error)."""
        where = str(self.cfg.data.train)
        out = [self._class_index(label, where) for label in self.store.classes or []]
        return np.asarray(out, dtype=np.int64)

    def model_sizes(self) -> dict[str, Any]:
        text = self.tokenizers["text"].vocab_size
        sizes: dict[str, Any] = {
            "vocab_size": text if self.causal else self.tokenizers["text"].embedding_rows,
            "num_classes": self.tokenizers["labels"].vocab_size,
        }
        if getattr(self, "pretrained", None) is not None:
            sizes["pretrained"] = self.pretrained
        return sizes

    def describe(self) -> str:
        start = "from scratch"
        if self.cfg.model.init_from:
            start = f"initialised from {self.cfg.model.init_from}"
        if getattr(self, "pretrained", None) is not None:
            p = self.pretrained
            start = f"from {p.run} ({p.task} run, step {p.step})"
        labels = self.tokenizers["labels"].labels
        return (
            f"{len(self.store):,} training sentences, {len(self.valid_ids):,} validation, "
            f"{len(labels)} classes ({', '.join(labels)}), vocabulary "
            f"{self.tokenizers['text'].vocab_size}; {start}"
        )

    def collate(self, indices: list[int]) -> ClassBatch:
        """The model inputs (`sequence`) of the store's rows, cut to the model's length, and
        their class indices."""
        rows, limit = self.store.train, self.piece_limit()
        cut = [rows.row(i)[:limit] for i in indices]
        if self.causal:
            ids, pad_mask = pad_rows(cut, first=None, last=self.end_id)
        else:
            tok = self.tokenizers["text"]
            ids, pad_mask = pad_rows(cut, first=tok.bos_id, last=tok.eos_id)
        assert self.store.labels is not None
        labels = torch.from_numpy(self.class_of[self.store.labels[np.asarray(indices)]])
        return ClassBatch(ids, pad_mask, labels)

    def count(self, batch: ClassBatch) -> int:
        return int(batch.labels.numel())

    def forward(self, model: nn.Module, batch: ClassBatch) -> Any:
        return model(batch.ids, batch.pad_mask, lm=self.cfg.data.lm_weight > 0)

    def loss(self, outputs: Any, batch: ClassBatch) -> LossOutput:
        B = int(batch.labels.numel())
        loss = F.cross_entropy(outputs.logits.float(), batch.labels, reduction="sum")
        extras = {"classification": loss.detach() / max(B, 1)}
        if outputs.lm_logits is not None:
            targets = batch.ids[:, 1:][batch.pad_mask[:, 1:]]  # (N,) the next tokens
            lm = sequence_loss(outputs.lm_logits, targets) / max(int(targets.numel()), 1)
            loss = loss + self.cfg.data.lm_weight * B * lm
            extras["lm"] = lm.detach()
        return LossOutput(loss, extras)

    def validate(self, model: nn.Module, placement: Placement) -> dict[str, float]:
        probs = predict(model, self.valid_ids, placement)
        gold = torch.tensor(self.valid_labels)
        report = classification_report(gold.tolist(), probs.argmax(-1).tolist(),
                                       self.tokenizers["labels"].labels)  # fmt: skip
        nll = float(F.nll_loss(probs.clamp_min(1e-12).log(), gold))
        return {"accuracy": round(report["accuracy"], 4), "macro_f1": round(report["macro_f1"], 4),
                "loss": round(nll, 4)}  # fmt: skip

    def format_metrics(self, metrics: dict[str, float]) -> str:
        return (f"valid accuracy {metrics['accuracy']:.4f} macro-F1 {metrics['macro_f1']:.4f} "
                f"loss {metrics['loss']:.4f}")  # fmt: skip

    # ---------------------------------------------------------------- evaluate
    @classmethod
    def add_evaluate_arguments(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("classification runs")
        group.add_argument("--data", help="labelled file to score (default: the run's "
                           "validation file)")  # fmt: skip
        group.add_argument("--data-format", choices=LABELLED_FORMATS,
                           help="format of --data (default: the run's data.format)")  # fmt: skip

    def evaluate(self, run: Any, args: argparse.Namespace) -> dict[str, Any]:
        """Accuracy, macro-F1 and the confusion matrix over --data (or the validation file)."""
        path = getattr(args, "data", None) or self.cfg.data.valid
        fmt = getattr(args, "data_format", None) or self.cfg.data.format
        data = read_labelled(path, fmt)
        if data.labels is None:
            raise AtentoError(f"{path}: format {fmt} has no labels")
        gold = self.label_ids(data)
        seqs, _ = self.encode(data, LinePolicy.of(args))
        start = time.perf_counter()
        probs = predict(run.model, seqs, run.placement)
        seconds = time.perf_counter() - start
        report = classification_report(gold, probs.argmax(-1).tolist(),
                                       self.tokenizers["labels"].labels)  # fmt: skip
        report.update(sentences=len(gold), data=str(path), seconds=round(seconds, 3),
                      sentences_per_second=round(len(gold) / max(seconds, 1e-9), 1))  # fmt: skip
        return report

    def attention_map(
        self, run: Any, text: str, *, layer: int, head: int | None
    ) -> tuple[Tensor, list[str], list[str]]:
        """Self-attention (H, T, T) over the sentence as the classifier reads it: `[CLS] x
        [SEP]` for an encoder (every position sees every other), `x` + end for a GPT (causal)."""
        tok = self.tokenizers["text"]
        pieces = tok.encode(text)
        limit = self.piece_limit()
        if limit is not None and len(pieces) > limit:
            raise AtentoError(f"the sentence is {len(pieces)} pieces, longer than the model "
                              f"takes ({limit})")  # fmt: skip
        ids = self.sequence(pieces)
        pooling = getattr(run.model, "pooling_attention", None)
        if pooling is not None:  # an RNN classifier: its one attention row, over the pieces
            if layer not in (-1, 0):
                raise ValueError(f"layer {layer} out of range (an RNN classifier has one: 0)")
            if head not in (None, 0):
                raise ValueError(f"head {head} out of range (0..0)")
            labels = piece_labels(tok, ids, {tok.bos_id: "[CLS]", tok.eos_id: "[SEP]"})
            return pooling(ids), ["[pool]"], labels
        heads = run.model.self_attention(ids, layer=layer, head=head)  # ValueError: the caller
        names = {tok.bos_id: "[CLS]", tok.eos_id: "[SEP]"}
        if self.causal:
            names = {tok.eos_id: "</s>"}
        return heads, *[piece_labels(tok, ids, names)] * 2

    def print_report(self, report: dict[str, Any]) -> None:
        labels = report["labels"]
        print(f"{report['data']}: accuracy {report['accuracy']:.4f} macro-F1 "
              f"{report['macro_f1']:.4f} ({report['sentences']} sentences)")  # fmt: skip
        matrix, corner = report["confusion_matrix"], "gold \\ predicted"
        first = max(len(x) for x in [corner, *labels]) + 2  # the gold labels' column
        width = max(len(x) for x in [*labels, *(str(n) for row in matrix for n in row)]) + 2
        print(corner.ljust(first) + "".join(x.rjust(width) for x in labels))
        for label, row in zip(labels, matrix, strict=True):
            print(label.ljust(first) + "".join(str(n).rjust(width) for n in row))
