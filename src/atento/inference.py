"""Decoding sentences with a trained model (`atento.rundir.load_run` loads one).

`Translator` sorts sentences by length, decodes them in batches with greedy search (beam 1) or
beam search, and returns hypotheses in the input order. It only needs a model with the
`atento.models.base.EncoderDecoder` protocol (`encode`, `init_state`, `step`); the searchers
see the step function, with the translator's `DecodeOptions` bound to it, and nothing else.

A translator is immutable and never changes its model (no options set on it, no train/eval
switch, no process-wide thread settings), so one model can serve concurrent callers, each with
its own settings.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from atento.config import SearchConfig
from atento.data.batching import collate_sources
from atento.data.lines import fit_lengths
from atento.data.tokenizers import Tokenizer
from atento.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from atento.models.base import DecodeOptions, length_limit, require_eval
from atento.runtime import Placement, grad_off
from atento.search import Hypothesis, LengthPenalty, beam_search, greedy_search
from atento.search.sampling import sample_search
from atento.search.step import SearchStats
from atento.search.trace import BeamTrace


def _set_worker_threads(threads: int) -> None:
    """Thread-pool initializer: this worker thread's torch (OpenMP) thread count, set once.

    OpenMP thread counts are per thread in PyTorch's CPU build, so the calling thread's own
    count is left alone (it is read, and so fixed, before the pool starts)."""
    torch.set_num_threads(threads)


@dataclass(frozen=True)
class Translator:
    """Decodes with `model` (in eval mode) under `search` settings and decoding `options`.

    Immutable: `with_search`, `with_attention` and `with_options` return changed copies that
    share the model. `options.attention` keeps every hypothesis's attention rows (heatmaps; off
    is faster); `options.layer` / `options.head` pick a Transformer's cross-attention;
    `options.use_cache` switches its KV cache.

    `collate` batches sources for `model.encode`: token ids by default ((B, S) ids with EOS
    and their mask); a captioning run's sources are image region features (P, C), stacked
    with an all-true mask. Nothing else in decoding depends on what a source is.
    """

    model: nn.Module
    src_tok: Tokenizer
    tgt_tok: Tokenizer
    search: SearchConfig
    placement: Placement = field(default_factory=Placement.cpu_fp32)  # device + precision
    options: DecodeOptions = DecodeOptions()
    # None: token ids through `collate_sources`, ending with the source tokenizer's EOS
    collate: Callable[[Sequence], tuple[Tensor, Tensor]] | None = None
    # a decoder-only model: (model, sources, options) -> (state, start_ids (B,)); None = encode
    start: Callable[[nn.Module, Sequence, DecodeOptions], tuple[Any, Tensor]] | None = None

    def __post_init__(self) -> None:
        if self.collate is None:
            eos = EOS_ID if self.src_tok is None else self.src_tok.eos_id
            object.__setattr__(self, "collate", partial(collate_sources, eos_id=eos))

    @property
    def search_ids(self) -> dict[str, int]:
        """bos_id, eos_id and pad_id of the target tokenizer (`Tokenizer.search_ids`); a
        translator of ids alone (no tokenizers: tests, benchmarks) uses atento's numbering."""
        if self.tgt_tok is None:
            return {"bos_id": BOS_ID, "eos_id": EOS_ID, "pad_id": PAD_ID}
        return self.tgt_tok.search_ids()

    @property
    def source_limit(self) -> int | None:
        """The most source pieces the model takes (None = any); outputs are capped likewise."""
        return length_limit(self.model)

    @property
    def attention(self) -> bool:
        """Whether hypotheses carry their attention rows (`options.attention`)."""
        return self.options.attention

    def with_attention(self, keep: bool = True) -> Translator:
        """A translator whose hypotheses carry their attention rows (or not)."""
        return replace(self, options=replace(self.options, attention=keep))

    def with_options(self, **changes) -> Translator:
        """A translator with some `DecodeOptions` fields changed (None values are ignored);
        ValueError when the model cannot honour them (e.g. a layer out of range)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        options = replace(self.options, **changes)
        self.model.check_options(options)
        return replace(self, options=options)

    def with_precision(self, name: str) -> Translator:
        """A translator decoding in precision `name` (auto | fp32 | bf16 | fp16) on its device."""
        return replace(self, placement=self.placement.with_precision(name, key="--precision"))

    def with_search(self, **changes) -> Translator:
        """A translator with some search settings changed (None values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, search=replace(self.search, **changes))

    def translate(self, sentences: list[str], *, progress: bool = False) -> list[list[Hypothesis]]:
        """n-best hypotheses for every sentence, in input order."""
        src = self.src_tok.encode_batch(sentences)
        return self.translate_ids(src, progress=progress)

    def translate_ids(
        self, src: list[list[int]], *, progress: bool = False, stats: SearchStats | None = None
    ) -> list[list[Hypothesis]]:
        """Like `translate` but for already-encoded sources (ids without EOS, or whatever
        `collate` batches). `stats` collects the searches' counts (`SearchStats`).

        With `search.workers` > 1, whole batches are decoded on that many threads, each
        running torch on its share of the calling thread's torch threads (set once per worker
        thread); outputs are identical to one worker. Safe to call from several threads at once.
        """
        require_eval(self.model, "Translator")
        src = fit_lengths(src, self.source_limit, name="input")
        cfg = self.search
        order = sorted(range(len(src)), key=lambda i: len(src[i]))
        batches = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
        results: list[list[Hypothesis]] = [[] for _ in src]
        bar = tqdm(total=len(src), desc="decoding", unit="sent", disable=not progress, leave=False)
        lock = threading.Lock()

        def decode(batch: list[int]) -> None:
            hyps = self._decode_batch([src[i] for i in batch], cfg, stats)
            for i, h in zip(batch, hyps, strict=True):
                results[i] = h
            with lock:
                bar.update(len(batch))

        workers = min(cfg.workers, len(batches))
        try:
            if workers <= 1:
                for batch in batches:
                    decode(batch)
            else:  # the calling thread's count is read (fixed) here and never set
                threads = max(1, torch.get_num_threads() // workers)
                with ThreadPoolExecutor(
                    workers, initializer=_set_worker_threads, initargs=(threads,)
                ) as pool:
                    list(pool.map(decode, batches))
        finally:
            bar.close()
        return results

    def _decode_batch(
        self, sources: list[list[int]], cfg: SearchConfig, stats: SearchStats | None = None
    ) -> list[list[Hypothesis]]:
        """n-best lists for one batch (autocast and no_grad are per thread, so set here)."""
        with torch.no_grad(), self.placement.autocast():
            return self._search(sources, cfg, self.placement.device, stats=stats)

    def traced(self, sentences: list[str]) -> tuple[list[list[Hypothesis]], BeamTrace]:
        """n-best hypotheses plus the beam search's `BeamTrace` (what every step kept, finished
        and pruned), for sentences decoded as one batch; beam 1 runs beam search with K = 1,
        which equals greedy search."""
        require_eval(self.model, "Translator")
        trace = BeamTrace()
        src = fit_lengths(self.src_tok.encode_batch(sentences), self.source_limit, name="input")
        with torch.no_grad(), self.placement.autocast():
            hyps = self._search(src, self.search, self.placement.device, trace=trace)
        return hyps, trace

    def _search(
        self,
        sources: list[list[int]],
        cfg: SearchConfig,
        device: torch.device,
        trace: BeamTrace | None = None,
        stats: SearchStats | None = None,
    ) -> list[list[Hypothesis]]:
        """Encode one batch on `device` (collated on the CPU) and run the search; UNK is
        banned under `search.ban_unk` (None, the task's choice left open, allows it)."""
        penalty = LengthPenalty(cfg.alpha)
        state, start_ids = self.begin(sources, device)
        max_len = torch.tensor(
            [math.ceil(cfg.max_len_a * len(s) + cfg.max_len_b) for s in sources], device=device
        ).clamp(min=1)
        limit = self.source_limit if self.start is None else None  # an LM's window slides
        if limit is not None:  # learned positions: EOS at the last one
            max_len = max_len.clamp(max=limit + 1)
        step = partial(self.model.step, options=self.options)
        unk_id = UNK_ID if self.tgt_tok is None else self.tgt_tok.unk_id
        rules = {"unk_id": unk_id if cfg.ban_unk else None, "stats": stats,
                 "min_len": cfg.min_len, **self.search_ids}  # fmt: skip
        if cfg.beam == 1 and trace is None:
            hyps = greedy_search(
                step, state, batch_size=len(sources), max_len=max_len, length_penalty=penalty,
                device=device, start_ids=start_ids, **rules,
            )  # fmt: skip
            return [[h] for h in hyps]
        return beam_search(
            step, state, batch_size=len(sources), beam_size=cfg.beam, max_len=max_len,
            length_penalty=penalty, nbest=cfg.nbest, device=device, trace=trace,
            start_ids=start_ids, **rules,
        )  # fmt: skip

    def begin(self, sources: Sequence, device: torch.device) -> tuple[Any, Tensor | None]:
        """The decoder state of one batch and its first tokens (None: BOS): the encoder's
        output for a source, or a decoder-only model's prompts (`start`)."""
        if self.start is not None:
            return self.start(self.model, sources, self.options)
        src_ids, src_mask = self.collate(sources)
        src_ids, src_mask = src_ids.to(device), src_mask.to(device)
        return self.model.init_state(self.model.encode(src_ids, src_mask), self.options), None

    def sample_ids(
        self, sources: Sequence, *, max_new: int, temperature: float = 1.0, top_k: int = 0,
        top_p: float = 1.0, generator: torch.Generator | None = None,
        on_step: Callable[[list[int]], None] | None = None,
    ) -> list[list[int]]:  # fmt: skip
        """Sampled outputs for one batch of sources (`atento.search.sampling.sample_search`
        over the same step function as the searchers): a translation model from BOS until
        EOS (kept) or `max_new` tokens, PAD and BOS never drawn; a language model (`start`)
        continues its prompts for exactly `max_new` tokens."""
        require_eval(self.model, "Translator")
        device = self.placement.device
        with self.placement.autocast(), grad_off():  # bf16: weights cast once, not per step
            state, start_ids = self.begin(sources, device)
            eos_id, banned = None, ()
            if start_ids is None:
                ids = self.search_ids
                start_ids = torch.full((len(sources),), ids["bos_id"], dtype=torch.long,
                                       device=device)  # fmt: skip
                eos_id = ids["eos_id"]
                banned = tuple(i for i in (ids["pad_id"], ids["bos_id"]) if i != eos_id)
            return sample_search(
                partial(self.model.step, options=self.options), state, start_ids=start_ids,
                max_len=max_new, temperature=temperature, top_k=top_k, top_p=top_p,
                generator=generator, eos_id=eos_id, banned=banned, on_step=on_step,
            )  # fmt: skip

    def best_strings(self, sentences: list[str], *, progress: bool = False) -> list[str]:
        """The detokenised best hypothesis of each sentence."""
        return [
            self.tgt_tok.decode(h[0].tokens) for h in self.translate(sentences, progress=progress)
        ]
