"""The training loop: label-smoothed cross-entropy, Adam with warm-up, validation, checkpoints.

    result = Trainer(cfg, run_dir).fit()

A run directory holds `config.yaml`, the tokenizer files, `checkpoint_last.pt` (everything
needed to resume: weights, optimiser, scheduler, RNG states, epoch and batch position, best
BLEU, elapsed time), `checkpoint_best.pt` (by validation BLEU) and `metrics.jsonl` (one line
per validation). `Trainer(cfg, run_dir, resume=True)` continues exactly where the last
checkpoint left off, also after `kill -9`; Ctrl-C saves a checkpoint before stopping.
"""

from __future__ import annotations

import json
import math
import random
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from atento.config import Config, config_to_dict, dump_config
from atento.data.batching import Batch, TokenBatchSampler, collate, pair_lengths
from atento.data.corpus import load_split
from atento.data.parallel import encode_pairs
from atento.data.tokenizers import Tokenizer, build_tokenizers, tokenizer_from_state
from atento.data.vocab import PAD_ID
from atento.errors import AtentoError
from atento.inference import Translator
from atento.models.factory import build_model, count_parameters
from atento.runtime import cap_kernel_cache, native_bf16, tune_allocator
from atento.training.checkpoint import (
    BEST,
    LAST,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from atento.training.ema import WeightAverage
from atento.training.loss import sequence_loss
from atento.training.metrics import corpus_bleu
from atento.training.schedule import warmup_inverse_sqrt


@dataclass
class Progress:
    """Where the loop stands; saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_bleu: float = -1.0
    bad_validations: int = 0
    elapsed: float = 0.0  # seconds of training so far, over all sessions of this run
    train_tokens: int = 0
    train_seconds: float = 0.0  # time inside training steps only (for tokens/s)


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    best_bleu: float
    seconds: float
    tokens_per_second: float
    parameters: int
    peak_memory_mb: float
    stopped_by: str


class Trainer:
    def __init__(
        self, cfg: Config, run_dir: str | Path, *, resume: bool = False, progress: bool = True
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.log = tqdm.write if progress else (lambda *_: None)
        ckpt = self._open_run_dir(resume)
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)
        tune_allocator()
        cap_kernel_cache()
        if cfg.train.bf16 and not native_bf16():
            self.log(
                "warning: train.bf16 is on, but this CPU has no AMX / AVX512-BF16: bf16 is emulated"
            )
        self._seed(cfg.train.seed)
        self.src_tok, self.tgt_tok = self._tokenizers(ckpt)
        self.train_pairs, self.valid_pairs, self.valid_refs = self._data()
        self.model = build_model(
            cfg, src_vocab=self.src_tok.vocab_size, tgt_vocab=self.tgt_tok.vocab_size
        )
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=cfg.train.lr, betas=(0.9, 0.98), eps=1e-9,
            weight_decay=cfg.train.weight_decay,
        )  # fmt: skip
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_inverse_sqrt(cfg.train.warmup_steps)
        )
        self.sampler = TokenBatchSampler(
            pair_lengths(self.train_pairs), batch_tokens=cfg.train.batch_tokens, shuffle=True,
            seed=cfg.train.seed,
        )  # fmt: skip
        decay = cfg.train.ema_decay
        self.ema = WeightAverage(self.model, decay) if decay > 0 else None
        self.state = Progress()
        if ckpt is not None:
            self._restore(ckpt)

    # ---------------------------------------------------------------- set-up
    def _open_run_dir(self, resume: bool) -> dict[str, Any] | None:
        last = self.run_dir / LAST
        if resume:
            if not last.is_file():
                raise AtentoError(f"cannot resume: no {LAST} in {self.run_dir}")
            for stale in self.run_dir.glob("checkpoint_*.pt.*.tmp"):  # a save cut short by a kill
                stale.unlink()
            dump_config(self.cfg, self.run_dir / "config.yaml")
            return load_checkpoint(last)
        if last.is_file() or (self.run_dir / BEST).is_file():
            raise AtentoError(
                f"{self.run_dir} already holds a run; pass --resume or choose another --out"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        dump_config(self.cfg, self.run_dir / "config.yaml")
        return None

    @staticmethod
    def _seed(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def _tokenizers(self, ckpt: dict[str, Any] | None) -> tuple[Tokenizer, Tokenizer]:
        if ckpt is not None:
            toks = ckpt["tokenizers"]
            return tokenizer_from_state(toks["src"]), tokenizer_from_state(toks["tgt"])
        train = load_split(self.cfg.data, "train")
        return build_tokenizers(
            self.cfg.data, [s for s, _ in train], [t for _, t in train], self.run_dir
        )

    def _data(self):
        data = self.cfg.data
        train, dropped = encode_pairs(
            load_split(data, "train"), self.src_tok, self.tgt_tok, max_len=data.max_len
        )
        if not train:
            raise AtentoError(
                f"no training pairs left after dropping {dropped} empty or over-long ones"
            )
        if dropped:
            self.log(
                f"dropped {dropped} empty or over-long training pairs (data.max_len={data.max_len})"
            )
        valid_raw = load_split(data, "valid")
        if self.cfg.train.valid_sentences > 0:
            valid_raw = valid_raw[: self.cfg.train.valid_sentences]
        valid, _ = encode_pairs(valid_raw, self.src_tok, self.tgt_tok, max_len=0)
        refs = [t for s, t in valid_raw if self.src_tok.encode(s) and self.tgt_tok.encode(t)]
        return train, valid, refs

    def _restore(self, ckpt: dict[str, Any]) -> None:
        # with an average, "model" holds the averaged weights and "train_model" the raw ones
        self.model.load_state_dict(ckpt.get("train_model", ckpt["model"]))
        if self.ema is not None and "train_model" in ckpt:
            self.ema.load(ckpt["model"], ckpt["ema_updates"])
        elif self.ema is not None:  # averaging switched on at resume: start from these weights
            self.ema = WeightAverage(self.model, self.ema.decay)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.state = Progress(**ckpt["progress"])
        restore_rng(ckpt["rng"])
        self.log(f"resumed {self.run_dir} at step {self.state.step}")

    def _payload(self, *, full: bool) -> dict[str, Any]:
        payload = {
            "config": config_to_dict(self.cfg),
            "tokenizers": {"src": self.src_tok.state(), "tgt": self.tgt_tok.state()},
            "model": self.model.state_dict(),
            "step": self.state.step,
            "progress": dict(vars(self.state)),
        }
        if self.ema is not None:  # translation loads "model": the averaged weights
            payload["model"] = self.ema.averaged_state_dict()
            if full:
                payload["train_model"] = self.model.state_dict()
                payload["ema_updates"] = self.ema.updates
        if full:
            payload["optimizer"] = self.optimizer.state_dict()
            payload["scheduler"] = self.scheduler.state_dict()
            payload["rng"] = capture_rng()
        return payload

    def save_last(self) -> None:
        save_checkpoint(self._payload(full=True), self.run_dir / LAST)

    # ---------------------------------------------------------------- steps
    def train_step(self, batch: Batch) -> float:
        """One update on `batch`; returns the mean (smoothed) loss per target token."""
        self.model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cfg.train.bf16):
            real = batch.tgt_out != PAD_ID  # the output layer and loss skip padding
            logits, _ = self.model(batch.src_ids, batch.src_mask, batch.tgt_in, select=real)
        loss = sequence_loss(
            logits, batch.tgt_out[real], label_smoothing=self.cfg.train.label_smoothing
        )
        loss = loss / batch.n_tgt_tokens
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.train.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.clip_norm)
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update()
        return float(loss.detach())

    def validate(self) -> dict[str, float]:
        """Teacher-forced loss / perplexity and greedy BLEU on the validation set (of the
        averaged weights when train.ema_decay > 0)."""
        if self.ema is None:
            return self._validate()
        with self.ema.applied():
            return self._validate()

    @torch.no_grad()
    def _validate(self) -> dict[str, float]:
        self.model.eval()
        total, tokens = 0.0, 0
        sampler = TokenBatchSampler(
            pair_lengths(self.valid_pairs), batch_tokens=self.cfg.train.batch_tokens,
            shuffle=False, seed=0,
        )  # fmt: skip
        for idx in sampler:
            batch = collate([self.valid_pairs[i] for i in idx])
            logits, _ = self.model(batch.src_ids, batch.src_mask, batch.tgt_in)
            total += float(sequence_loss(logits, batch.tgt_out))
            tokens += batch.n_tgt_tokens
        loss = total / max(tokens, 1)
        translator = Translator(self.model, self.src_tok, self.tgt_tok, self.cfg.search)
        hyps = translator.with_search(beam=1, nbest=1).translate_ids(
            [s for s, _ in self.valid_pairs]
        )
        outputs = [self.tgt_tok.decode(h[0].tokens) for h in hyps]
        bleu = corpus_bleu(outputs, self.valid_refs)
        return {"loss": round(loss, 4), "ppl": round(math.exp(min(loss, 50)), 3), "bleu": bleu}

    # ---------------------------------------------------------------- loop
    def _budget_left(self) -> str | None:
        t, s = self.cfg.train, self.state
        if t.max_steps and s.step >= t.max_steps:
            return "max_steps"
        if t.max_epochs and s.epoch >= t.max_epochs:
            return "max_epochs"
        if t.max_minutes and s.elapsed >= t.max_minutes * 60:
            return "max_minutes"
        if t.patience and s.bad_validations >= t.patience:
            return "early_stopping"
        return None

    def _validate_and_save(self) -> dict[str, float]:
        metrics = self.validate()
        s = self.state
        improved = metrics["bleu"] > s.best_bleu
        if improved:
            s.best_bleu, s.bad_validations = metrics["bleu"], 0
        else:
            s.bad_validations += 1
        row = {
            "step": s.step,
            "epoch": s.epoch,
            **metrics,
            "seconds": round(s.elapsed, 1),
            "lr": self.scheduler.get_last_lr()[0],
            "train_tokens_per_second": round(s.train_tokens / max(s.train_seconds, 1e-9), 1),
        }
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        if improved:
            save_checkpoint(self._payload(full=False), self.run_dir / BEST)
        self.save_last()
        self.log(
            f"step {s.step} epoch {s.epoch}: valid loss {metrics['loss']:.3f} "
            f"ppl {metrics['ppl']:.2f} BLEU {metrics['bleu']:.2f}" + (" (best)" if improved else "")
        )
        return metrics

    def fit(self) -> TrainResult:
        t, s = self.cfg.train, self.state
        self.log(
            f"{count_parameters(self.model):,} parameters; {len(self.train_pairs):,} training pairs"
        )
        bar = tqdm(total=t.max_steps or None, initial=s.step, desc="training", unit="step",
                   disable=not self.progress, dynamic_ncols=True,
                   mininterval=0.5 if sys.stderr.isatty() else 30.0)  # fmt: skip
        validated_at = s.step if s.step else -1
        start, elapsed0 = time.perf_counter(), s.elapsed
        stopped_by = self._budget_left()
        try:
            while stopped_by is None:
                batches = self.sampler.batches(s.epoch)
                while s.batch_in_epoch < len(batches) and stopped_by is None:
                    batch = collate([self.train_pairs[i] for i in batches[s.batch_in_epoch]])
                    tick = time.perf_counter()
                    loss = self.train_step(batch)
                    s.train_seconds += time.perf_counter() - tick
                    s.train_tokens += batch.n_tgt_tokens
                    s.step += 1
                    s.batch_in_epoch += 1
                    s.elapsed = elapsed0 + time.perf_counter() - start
                    bar.update(1)
                    bar.set_postfix(
                        loss=f"{loss:.3f}",
                        tok_s=f"{s.train_tokens / s.train_seconds:.0f}",
                        refresh=False,
                    )
                    if t.valid_every and s.step % t.valid_every == 0:
                        self._validate_and_save()
                        validated_at = s.step
                    elif t.checkpoint_every and s.step % t.checkpoint_every == 0:
                        self.save_last()
                    stopped_by = self._budget_left()
                if s.batch_in_epoch >= len(batches):
                    s.epoch, s.batch_in_epoch = s.epoch + 1, 0
                    stopped_by = stopped_by or self._budget_left()
        except KeyboardInterrupt:
            bar.close()
            self.save_last()
            self.log(
                f"interrupted: saved {self.run_dir / LAST} at step {s.step}; --resume continues"
            )
            raise
        bar.close()
        if validated_at != s.step:
            self._validate_and_save()
        else:
            self.save_last()
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return TrainResult(
            run_dir=self.run_dir, steps=s.step, best_bleu=s.best_bleu, seconds=round(s.elapsed, 1),
            tokens_per_second=round(s.train_tokens / max(s.train_seconds, 1e-9), 1),
            parameters=count_parameters(self.model), peak_memory_mb=round(peak_mb, 1),
            stopped_by=stopped_by or "done",
        )  # fmt: skip
