"""Language modelling on plain text (`task: lm`): a decoder-only Transformer predicts each next
token of windows of `data.block_size` tokens.

    data:
      train: ../shared/data/tinyshakespeare/input.txt
      valid: ""                 # a file, or empty: the last `valid_fraction` of train
      valid_fraction: 0.1       # nanoGPT's split: first 90 % train, last 10 % validation
      tokenizer: char           # char | sentencepiece
      block_size: 64
      format: text              # text | sst2 | trec: the sentences of a labelled file, a line
      exclude: ""               # (labelled formats) a file whose sentences are left out
      drop_contained: false     # (labelled formats) only the sentences inside no other, once

Characters: one id per character of the whole file (validation characters included, so that
validation has no unknown ids, as nanoGPT builds its vocabulary). SentencePiece: each line is
encoded and followed by `</s>`, which stands for the line break.

Batches are `train.batch_tokens // block_size` windows at random offsets drawn from
(seed, epoch); an epoch is `len(train) // block_size` windows, so a resumed run continues at
its position in the same plan. Validation reads the whole validation split in consecutive
windows: loss (nats per token), perplexity and bits per character.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from atento.config import check
from atento.data.batching import BatchPlan, Movable
from atento.data.labelled import FORMATS, drop_contained, read_labelled
from atento.data.lines import text_file_bytes
from atento.data.store import (
    StreamData,
    default_workers,
    file_text,
    memory_text,
    prepare_stream,
    record_store,
    recorded_key,
)
from atento.data.text import encode_text, prompt_ids, visible
from atento.data.tokenizers import Tokenizer
from atento.errors import AtentoError
from atento.models.pretrained import text_tokenizer
from atento.predictors.decoding import LanguageModelPredictor
from atento.runtime import Placement
from atento.tasks.base import LossOutput, Selection, Task, loss_metrics
from atento.training.loss import sequence_loss


@dataclass
class LMDataConfig:
    """The data section of `task: lm` (module doc)."""

    train: str = ""
    valid: str = ""
    valid_fraction: float = 0.1
    tokenizer: str = "char"  # char | sentencepiece
    vocab_size: int = 4000  # sentencepiece only
    block_size: int = 64  # tokens per training window (at most model.context)
    format: str = "text"  # text | sst2 | trec (atento.data.labelled): one sentence a line
    exclude: str = ""  # sst2 | trec: a file whose sentences are removed from the text
    drop_contained: bool = False  # sst2 | trec: only the sentences inside no other, once
    tokenizer_sample: int = 1_000_000  # lines SentencePiece trains on (a seeded sample)
    seed: int = 1234  # the tokenizer sample's seed
    workers: int = 0  # processes encoding the corpus store; 0 = the CPU cores

    def validate(self, cfg: Any) -> None:
        check(self.format in FORMATS, cfg, "data.format", ", ".join(FORMATS))
        if self.exclude and self.format == "text":
            raise AtentoError("config: data.exclude needs data.format sst2 or trec")
        if self.drop_contained and self.format == "text":
            raise AtentoError("config: data.drop_contained needs data.format sst2 or trec")
        check(self.tokenizer in ("char", "sentencepiece"), cfg, "data.tokenizer",
              "char, sentencepiece")  # fmt: skip
        check(0.0 < self.valid_fraction < 1.0, cfg, "data.valid_fraction", "a value in (0, 1)")
        check(self.block_size >= 1, cfg, "data.block_size", "at least 1")
        check(self.tokenizer_sample >= 1, cfg, "data.tokenizer_sample", "at least 1")
        check(self.workers >= 0, cfg, "data.workers", "0 (the CPU cores) or more")
        if not self.train:
            raise AtentoError("config: task=lm needs data.train (a plain-text file)")
        context = getattr(cfg.model, "context", None)
        if context is not None and self.block_size > context:
            raise AtentoError(
                f"config: data.block_size={self.block_size} is longer than model.context={context}"
            )


def read_text(path: str | Path) -> str:
    """A whole UTF-8 text file; one-line errors for a missing, empty, binary or badly encoded
    file (naming the line and byte)."""
    data = text_file_bytes(path, empty="empty text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise AtentoError(f"{path}:{line}: invalid UTF-8 at byte offset {exc.start}") from None


@dataclass
class Windows(Movable):
    """A batch: inputs x (B, T) and next tokens y (B, T)."""

    x: Tensor
    y: Tensor


def _rows(ids, starts: list[int], length: int) -> Tensor:
    """(len(starts), length) long: `ids[s : s + length]` for each start (ids: a tensor or a
    numpy array, memory-mapped ones included)."""
    return torch.from_numpy(np.stack([np.asarray(ids[s : s + length], dtype=np.int64)
                                      for s in starts]))  # fmt: skip


def window_loss(model: nn.Module, ids, block: int, device: Any, batch: int = 64):
    """Summed next-token loss and count over `ids` (a 1-D tensor or numpy array, e.g. a
    store's memory-mapped validation stream) read in consecutive windows of `block`."""
    total, count = 0.0, 0
    starts = list(range(0, max(len(ids) - 1, 0), block))
    for k in range(0, len(starts), batch):
        group = starts[k : k + batch]
        n = min(block, len(ids) - 1 - group[-1])  # the last window may be shorter
        full = [s for s in group if s + block + 1 <= len(ids)]
        for chunk, T in ((full, block), ([s for s in group if s not in full], n)):
            if not chunk or T <= 0:
                continue
            x = _rows(ids, chunk, T).to(device)
            y = _rows(ids, [s + 1 for s in chunk], T).to(device)
            total += float(sequence_loss(model(x), y))
            count += y.numel()
    return total, count


class LanguageModelTask(Task):
    name = "lm"
    predictor = LanguageModelPredictor
    architectures = ("gpt",)
    data_config = LMDataConfig
    selection = Selection("loss", higher_is_better=False)
    prepares_on_every_rank = True  # the corpus store: local rank 0 builds, the others wait

    def prepare(self, run_dir: Path | None, tokenizers: dict[str, Tokenizer] | None) -> None:
        self.pretrained = None
        built = tokenizers is None and not self.cfg.model.init_from
        if tokenizers is None and self.cfg.model.init_from:  # model.init_from's (saved as text)
            text, self.pretrained = text_tokenizer(self.cfg, run_dir, lambda: None)
            tokenizers = {"text": text}
        self._load(run_dir, tokenizers)
        record_store(run_dir, self.store.store)
        if built and run_dir is not None:  # the store's own: the run keeps a copy
            self.tokenizers["text"].save(run_dir, "text")

    def prepare_store(
        self, run_dir: Path | None, tokenizers: dict[str, Tokenizer] | None, *,
        workers: int | None = None, verify: bool = False,
    ) -> StreamData:  # fmt: skip
        """The text's corpus store: training and validation token streams (`atento prepare`)."""
        data = self.cfg.data
        if data.format == "text":
            source = file_text(data.train, valid=data.valid, valid_fraction=data.valid_fraction)
        else:
            source = memory_text(self._read(data.train),
                                 self._read(data.valid) if data.valid else None,
                                 valid_fraction=data.valid_fraction, name=data.train)  # fmt: skip
        settings = {"tokenizer": data.tokenizer, "vocab_size": data.vocab_size,
                    "tokenizer_sample": data.tokenizer_sample, "seed": data.seed}  # fmt: skip
        if tokenizers is None and self.cfg.model.init_from:  # `atento prepare`: init_from's
            tokenizers = {"text": text_tokenizer(self.cfg, None, lambda: None)[0]}
        reuse = recorded_key(run_dir or self.run_dir)
        return prepare_stream(source, settings, tokenizers=tokenizers,
                              workers=workers or data.workers or default_workers(),
                              log=self.log, reuse=reuse, verify=verify)  # fmt: skip

    def _load(self, run_dir: Path | None, tokenizers: dict[str, Tokenizer] | None) -> None:
        """Map the store (found by the key `run_dir` recorded, when it still fits)."""
        data = self.cfg.data
        self.store = self.prepare_store(run_dir, tokenizers)
        self.tokenizers = tokenizers or self.store.tokenizers
        self.train_ids, self.valid_ids = self.store.train, self.store.valid
        self.valid_chars = self.store.valid_chars
        if len(self.train_ids) <= data.block_size + 1:
            raise AtentoError(
                f"{data.train}: {len(self.train_ids)} training tokens, fewer than one window "
                f"of data.block_size={data.block_size} + 1"
            )
        if len(self.valid_ids) < 2:
            raise AtentoError(f"{data.valid or data.train}: the validation text is too short")

    def _read(self, path: str) -> str:
        """A plain-text file, or the sentences of a labelled file one a line (less those of
        data.exclude)."""
        data = self.cfg.data
        if data.format == "text":
            return read_text(path)
        excluded = set(read_labelled(data.exclude, data.format).sentences) if data.exclude else ()
        sentences = [s for s in read_labelled(path, data.format).sentences if s not in excluded]
        if data.drop_contained:
            sentences = drop_contained(sentences)
        return "".join(s + "\n" for s in sentences)

    def model_sizes(self) -> dict[str, Any]:
        sizes: dict[str, Any] = {"vocab_size": self.tokenizers["text"].vocab_size}
        if getattr(self, "pretrained", None) is not None:
            sizes["pretrained"] = self.pretrained
        return sizes

    def describe(self) -> str:
        return (
            f"{len(self.train_ids):,} training tokens, {len(self.valid_ids):,} validation, "
            f"vocabulary {self.tokenizers['text'].vocab_size}"
        )

    def batch_plan(self, epoch: int) -> list[list[int]]:
        block = self.cfg.data.block_size
        per_batch = max(1, self.cfg.train.batch_tokens // block)
        n = max(per_batch, len(self.train_ids) // block)
        g = torch.Generator().manual_seed(self.cfg.train.seed * 100_003 + epoch)
        starts = torch.randint(0, len(self.train_ids) - block, (n,), generator=g).numpy()
        return BatchPlan.fixed(starts, per_batch)

    def collate(self, indices: list[int]) -> Windows:
        """Windows of block + 1 tokens read from the memory-mapped stream at `indices`."""
        block = self.cfg.data.block_size
        at = np.asarray(indices, dtype=np.int64)[:, None] + np.arange(block + 1)  # (B, T + 1)
        window = torch.from_numpy(self.train_ids[at].astype(np.int64))
        return Windows(window[:, :-1], window[:, 1:])

    def count(self, batch: Windows) -> int:
        return batch.y.numel()

    def forward(self, model: nn.Module, batch: Windows) -> Tensor:
        return model(batch.x)

    def loss(self, outputs: Tensor, batch: Windows) -> LossOutput:
        loss = sequence_loss(outputs, batch.y, label_smoothing=self.cfg.train.label_smoothing)
        return LossOutput(loss)

    def validate(self, model: nn.Module, placement: Placement) -> dict[str, float]:
        """Loss over the whole validation split, perplexity and bits per character."""
        total, count = window_loss(model, self.valid_ids, self.cfg.data.block_size,
                                   placement.device)  # fmt: skip
        return self._metrics(total, count, self.valid_chars)

    @staticmethod
    def _metrics(total: float, count: int, chars: int) -> dict[str, float]:
        return {**loss_metrics(total, count), "bpc": round(total / max(chars, 1) / math.log(2), 4)}

    def format_metrics(self, metrics: dict[str, float]) -> str:
        return (
            f"valid loss {metrics['loss']:.4f} ppl {metrics['ppl']:.2f} "
            f"bits/char {metrics['bpc']:.3f}"
        )

    @classmethod
    def add_evaluate_arguments(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("language-model runs")
        group.add_argument("--text", help="plain-text file to score (default: the run's "
                           "validation split)")  # fmt: skip

    def evaluate(self, run: Any, args: argparse.Namespace) -> dict[str, Any]:
        """Loss, perplexity and bits per character over --text or the validation split."""
        tok = run.tokenizers["text"]
        if getattr(args, "text", None):
            text = read_text(args.text)
        else:  # the validation split, from the run's store (built again if it is gone)
            self._load(getattr(run, "path", None), run.tokenizers)
            text = None
        ids = (torch.tensor(encode_text(tok, text), dtype=torch.long) if text is not None
               else self.valid_ids)  # fmt: skip
        chars = len(text) if text is not None else self.valid_chars
        block = min(self.cfg.data.block_size, run.model.length_limit() or 1 << 30)
        with torch.no_grad(), run.placement.autocast():
            total, count = window_loss(run.model, ids, block, run.placement.device)
        report: dict[str, Any] = self._metrics(total, count, chars)
        name = str(args.text) if getattr(args, "text", None) else "validation"
        report.update(tokens=count, characters=chars, block_size=block, text=name)
        return report

    def print_report(self, report: dict[str, Any]) -> None:
        print(f"{report['text']}: {self.format_metrics(report)} ({report['tokens']:,} tokens)")

    def attention_map(
        self, run: Any, text: str, *, layer: int, head: int | None
    ) -> tuple[Tensor, list[str], list[str]]:
        """Causal self-attention (H, T, T) over the prompt: each position over itself and the
        ones before it (the upper triangle is exactly 0)."""
        tok = run.tokenizers["text"]
        ids = prompt_ids(tok, text, run.model.length_limit())
        heads = run.model.self_attention(ids, layer=layer, head=head)  # ValueError: the caller
        labels = [visible(tok.id_to_piece(i)) for i in ids]
        return heads, labels, labels
