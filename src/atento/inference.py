"""Decoding sentences with a trained model, and loading run directories.

`Translator` sorts sentences by length, decodes them in batches with greedy search (beam 1) or
beam search, and returns hypotheses in the input order. It only needs a model with
`encode(src_ids, src_mask)`, `init_state(enc)` and `step(last_ids, state)`: the searchers see
the step function and nothing else.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from atento.config import Config, SearchConfig, config_from_dict
from atento.data.batching import collate_sources
from atento.data.tokenizers import Tokenizer, tokenizer_from_state
from atento.errors import AtentoError
from atento.models.factory import build_model
from atento.search import Hypothesis, LengthPenalty, beam_search, greedy_search
from atento.training.checkpoint import BEST, LAST, load_checkpoint


@dataclass
class Translator:
    model: nn.Module
    src_tok: Tokenizer
    tgt_tok: Tokenizer
    search: SearchConfig
    attention: bool = False  # keep every hypothesis's attention rows (heatmaps); off is faster

    def with_attention(self, keep: bool = True) -> Translator:
        """A translator whose hypotheses carry their attention rows (or not)."""
        return replace(self, attention=keep)

    def with_search(self, **changes) -> Translator:
        """A translator with some search settings changed (None values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, search=replace(self.search, **changes))

    def translate(self, sentences: list[str], *, progress: bool = False) -> list[list[Hypothesis]]:
        """n-best hypotheses for every sentence, in input order."""
        src = self.src_tok.encode_batch(sentences)
        return self.translate_ids(src, progress=progress)

    def translate_ids(
        self, src: list[list[int]], *, progress: bool = False
    ) -> list[list[Hypothesis]]:
        """Like `translate` but for already-encoded sources (ids without EOS)."""
        self.model.eval()
        self.model.need_attention = self.attention
        cfg = self.search
        order = sorted(range(len(src)), key=lambda i: len(src[i]))
        batches = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
        results: list[list[Hypothesis]] = [[] for _ in src]
        bar = tqdm(total=len(src), desc="decoding", unit="sent", disable=not progress, leave=False)

        def decode(batch: list[int]) -> None:
            for i, hyps in zip(batch, self._decode_batch([src[i] for i in batch]), strict=True):
                results[i] = hyps
            bar.update(len(batch))

        workers = min(cfg.workers, len(batches))
        if workers <= 1:
            for batch in batches:
                decode(batch)
        else:  # whole batches on `workers` threads, torch's threads shared out among them
            threads = torch.get_num_threads()
            torch.set_num_threads(max(1, threads // workers))
            try:
                with ThreadPoolExecutor(workers) as pool:
                    list(pool.map(decode, batches))
            finally:
                torch.set_num_threads(threads)
        bar.close()
        return results

    def _decode_batch(self, sources: list[list[int]]) -> list[list[Hypothesis]]:
        """n-best lists for one batch (autocast and no_grad are per thread, so set here)."""
        cfg = self.search
        device = next(self.model.parameters()).device.type
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=cfg.bf16):
            return self._search(sources)

    def _search(self, sources: list[list[int]]) -> list[list[Hypothesis]]:
        cfg = self.search
        penalty = LengthPenalty(cfg.alpha)
        src_ids, src_mask = collate_sources(sources)
        max_len = torch.tensor(
            [math.ceil(cfg.max_len_a * len(s) + cfg.max_len_b) for s in sources]
        ).clamp(min=1)
        state = self.model.init_state(self.model.encode(src_ids, src_mask))
        if cfg.beam == 1:
            hyps = greedy_search(
                self.model.step, state, batch_size=len(sources), max_len=max_len,
                length_penalty=penalty,
            )  # fmt: skip
            return [[h] for h in hyps]
        return beam_search(
            self.model.step, state, batch_size=len(sources), beam_size=cfg.beam,
            max_len=max_len, length_penalty=penalty, nbest=cfg.nbest,
        )  # fmt: skip

    def best_strings(self, sentences: list[str], *, progress: bool = False) -> list[str]:
        """The detokenised best hypothesis of each sentence."""
        return [
            self.tgt_tok.decode(h[0].tokens) for h in self.translate(sentences, progress=progress)
        ]


@dataclass
class LoadedRun:
    cfg: Config
    model: nn.Module
    src_tok: Tokenizer
    tgt_tok: Tokenizer
    step: int
    path: Path

    def translator(self) -> Translator:
        return Translator(self.model, self.src_tok, self.tgt_tok, self.cfg.search)


def load_run(run_dir: str | Path, which: str = "best") -> LoadedRun:
    """Load a run directory's best (or last) checkpoint: config, tokenizers and weights."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AtentoError(f"run directory not found: {run_dir}")
    names = [BEST, LAST] if which == "best" else [LAST, BEST]
    path = next((run_dir / n for n in names if (run_dir / n).is_file()), None)
    if path is None:
        raise AtentoError(f"{run_dir} is not an atento run directory (no {BEST} or {LAST})")
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise AtentoError(f"{path} is not an atento checkpoint")
    cfg = config_from_dict(ckpt["config"])
    src_tok = tokenizer_from_state(ckpt["tokenizers"]["src"])
    tgt_tok = tokenizer_from_state(ckpt["tokenizers"]["tgt"])
    model = build_model(cfg, src_vocab=src_tok.vocab_size, tgt_vocab=tgt_tok.vocab_size)
    model.load_state_dict(ckpt["model"])
    model.eval()
    return LoadedRun(cfg, model, src_tok, tgt_tok, int(ckpt.get("step", 0)), run_dir)
