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

import torch
from torch import Tensor, nn

from atento.config import check
from atento.data.batching import Movable
from atento.data.labelled import FORMATS, drop_contained, read_labelled
from atento.data.lines import text_file_bytes
from atento.data.text import encode_text, prompt_ids, visible
from atento.data.tokenizers import Tokenizer, build_tokenizer
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


def window_loss(model: nn.Module, ids: Tensor, block: int, device: Any, batch: int = 64):
    """Summed next-token loss and count over `ids` read in consecutive windows of `block`."""
    total, count = 0.0, 0
    starts = list(range(0, max(len(ids) - 1, 0), block))
    for k in range(0, len(starts), batch):
        group = starts[k : k + batch]
        n = min(block, len(ids) - 1 - group[-1])  # the last window may be shorter
        full = [s for s in group if s + block + 1 <= len(ids)]
        for chunk, T in ((full, block), ([s for s in group if s not in full], n)):
            if not chunk or T <= 0:
                continue
            x = torch.stack([ids[s : s + T] for s in chunk]).to(device)
            y = torch.stack([ids[s + 1 : s + T + 1] for s in chunk]).to(device)
            total += float(sequence_loss(model(x), y))
            count += y.numel()
    return total, count


class LanguageModelTask(Task):
    name = "lm"
    predictor = LanguageModelPredictor
    architectures = ("gpt",)
    data_config = LMDataConfig
    selection = Selection("loss", higher_is_better=False)

    def prepare(self, run_dir: Path | None, tokenizers: dict[str, Tokenizer] | None) -> None:
        data = self.cfg.data
        text = self._read(data.train)
        if data.valid:
            train_text, valid_text = text, self._read(data.valid)
        else:
            cut = int(len(text) * (1 - data.valid_fraction))
            train_text, valid_text = text[:cut], text[cut:]
        self.pretrained = None
        if tokenizers is None:  # a new run: its own tokenizer, or model.init_from's
            text, self.pretrained = text_tokenizer(
                self.cfg, run_dir, lambda: self._build_tokenizer(train_text, valid_text, run_dir)
            )
            tokenizers = {"text": text}
        self.tokenizers = tokenizers
        tok = tokenizers["text"]
        self.train_ids = torch.tensor(encode_text(tok, train_text), dtype=torch.long)
        self.valid_ids = torch.tensor(encode_text(tok, valid_text), dtype=torch.long)
        self.valid_chars = len(valid_text)
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

    def _build_tokenizer(self, train: str, valid: str, run_dir: Path | None) -> Tokenizer:
        data = self.cfg.data
        # characters: those of both texts; SentencePiece: trained on the training lines
        texts = [train, valid] if data.tokenizer == "char" else train.split("\n")
        return build_tokenizer(data.tokenizer, texts, vocab_size=data.vocab_size,
                               run_dir=run_dir, name="text")  # fmt: skip

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
        starts = torch.randint(0, len(self.train_ids) - block, (n,), generator=g).tolist()
        return [starts[i : i + per_batch] for i in range(0, n - per_batch + 1, per_batch)]

    def collate(self, indices: list[int]) -> Windows:
        block = self.cfg.data.block_size
        x = torch.stack([self.train_ids[s : s + block] for s in indices])
        y = torch.stack([self.train_ids[s + 1 : s + block + 1] for s in indices])
        return Windows(x, y)

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
        else:
            self.prepare(None, run.tokenizers)
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
