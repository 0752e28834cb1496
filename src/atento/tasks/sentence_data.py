"""The corpus store of the single-sentence tasks (`task: mlm`, `task: classify`): their
training sentences, streamed once into memory-mapped rows (`atento.data.store.sentences`).

    data, tokenizers, pretrained = load_sentences(task, source, run_dir, tokenizers)
    lengths = row_lengths(data.train.lengths, limit, overhead)   # (N, 2) for the sampler

The text tokenizer is the store's (trained on its sample) for a new run, `model.init_from`'s
as it is (the store keyed by its hash), or the resumed run's; the run directory keeps a copy
and records the store (`store.json`), so `--resume` maps the same one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from atento.data.store import (
    SentenceData,
    SentenceSource,
    default_workers,
    prepare_sentences,
    record_store,
    recorded_key,
)
from atento.data.tokenizers import Tokenizer
from atento.models.pretrained import text_tokenizer


def open_sentences(
    task: Any, source: SentenceSource, run_dir: Path | None,
    tokenizers: dict[str, Tokenizer] | None, *, workers: int | None = None, verify: bool = False,
) -> SentenceData:  # fmt: skip
    """The store of `source` for `task` (its config's data section: tokenizer, vocab_size,
    tokenizer_sample, seed, workers): found, waited for or built. Without `tokenizers`, a
    `model.init_from` run's tokenizer is used (`atento prepare`), else the store trains one."""
    cfg = task.cfg
    data = cfg.data
    if tokenizers is None and cfg.model.init_from:
        tokenizers = {"text": text_tokenizer(cfg, None, lambda: None)[0]}
    settings = {"tokenizer": data.tokenizer, "vocab_size": data.vocab_size,
                "tokenizer_sample": data.tokenizer_sample, "seed": data.seed}  # fmt: skip
    return prepare_sentences(
        source, settings, tokenizers=None if tokenizers is None else {"text": tokenizers["text"]},
        workers=workers or data.workers or default_workers(), log=task.log,
        reuse=recorded_key(run_dir or task.run_dir), verify=verify,
    )  # fmt: skip


def load_sentences(
    task: Any, source: SentenceSource, run_dir: Path | None,
    tokenizers: dict[str, Tokenizer] | None,
) -> tuple[SentenceData, dict[str, Tokenizer], Any]:  # fmt: skip
    """`prepare`'s part: (the mapped store, the tokenizers by role, the `Pretrained` of
    `model.init_from` or None). A new run's text tokenizer (the store's or init_from's) is
    saved as `text` into `run_dir`, which records the store."""
    pretrained = None
    built = tokenizers is None and not task.cfg.model.init_from
    if tokenizers is None and task.cfg.model.init_from:
        text, pretrained = text_tokenizer(task.cfg, run_dir, lambda: None)  # saved as text
        tokenizers = {"text": text}
    data = open_sentences(task, source, run_dir, tokenizers)
    record_store(run_dir, data.store)
    if built:  # the store's own: the run keeps a copy
        tokenizers = {"text": data.tokenizers["text"]}
        if run_dir is not None:
            tokenizers["text"].save(run_dir, "text")
    assert tokenizers is not None
    return data, tokenizers, pretrained


def row_lengths(lengths: np.ndarray, limit: int | None, overhead: int) -> np.ndarray:
    """(N, 2) int64 for `TokenBatchSampler`: each row's length cut to `limit` pieces (None: as
    it is) plus the `overhead` special tokens the task adds, on both sides."""
    n = np.asarray(lengths, dtype=np.int64)
    if limit is not None:
        n = np.minimum(n, limit)
    n = n + overhead
    return np.stack([n, n], axis=1)
