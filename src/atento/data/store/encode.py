"""Encoding batches of lines on a pool of processes, in order, with bounded memory.

    for result in encode_batches(batches, encode_pairs_batch, tokenizers, workers=4): ...

Each worker process rebuilds the tokenizers once from their `state()` and encodes whole
batches of lines (`work(tokenizers, batch)`); the results come back in the batches' order.
At most two batches per worker are in flight, so the lines read ahead stay a few batches
however long the corpus is (`Pool.imap` would read the whole input ahead). With one worker
the batches are encoded in this process.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
from tqdm import tqdm

from atento.data.tokenizers import Tokenizer, tokenizer_from_state

_TOKENIZERS: dict[str, Tokenizer] = {}


def default_workers() -> int:
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _init(states: dict[str, dict[str, Any]]) -> None:
    _TOKENIZERS.clear()
    _TOKENIZERS.update({role: tokenizer_from_state(s) for role, s in states.items()})


def _run(work: Callable, batch: Any) -> Any:
    return work(_TOKENIZERS, batch)


BATCH_LINES = 8192  # lines a worker encodes at once (a batch of the callers' streams)


def encode_batches(
    batches: Iterable[Any],
    work: Callable[[dict[str, Tokenizer], Any], Any],
    tokenizers: dict[str, Tokenizer],
    *,
    workers: int,
) -> Iterator[Any]:
    """`work(tokenizers, batch)` of each batch, in order, on `workers` processes, with a
    progress bar on a terminal (lines counted as BATCH_LINES a batch: approximate)."""
    bar = tqdm(desc="encoding the corpus", unit=" lines", unit_scale=BATCH_LINES, leave=False,
               disable=None)  # fmt: skip
    with bar:
        for result in _encode(batches, work, tokenizers, workers=workers):
            bar.update(1)
            yield result


def _encode(
    batches: Iterable[Any],
    work: Callable[[dict[str, Tokenizer], Any], Any],
    tokenizers: dict[str, Tokenizer],
    *,
    workers: int,
) -> Iterator[Any]:
    if workers <= 1:
        for batch in batches:
            yield work(tokenizers, batch)
        return
    states = {role: tok.state() for role, tok in tokenizers.items()}
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ctx.Pool(workers, initializer=_init, initargs=(states,)) as pool:
        pending: deque = deque()
        for batch in batches:
            pending.append(pool.apply_async(_run, (work, batch)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def flatten(ids: list[list[int]], dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Lists of ids -> (every id in one array of `dtype`, each list's length as int64)."""
    lengths = np.fromiter(map(len, ids), np.int64, count=len(ids))
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype, count=int(lengths.sum()))
    return flat, lengths


def encode_pairs_batch(tokenizers: dict[str, Tokenizer], batch: tuple) -> tuple:
    """A batch of (sources, targets, max_len, dtype) -> (source ids, source lengths, target
    ids, target lengths, pairs dropped): a pair is dropped when either side encodes to nothing
    or to more than max_len pieces (max_len <= 0: any length), as `data.parallel.encode_pairs`
    does."""
    sources, targets, max_len, dtype = batch
    src, src_len = flatten(tokenizers["src"].encode_batch(sources), dtype)
    tgt, tgt_len = flatten(tokenizers["tgt"].encode_batch(targets), dtype)
    limit = max_len if max_len > 0 else np.iinfo(np.int64).max
    keep = (src_len > 0) & (src_len <= limit) & (tgt_len > 0) & (tgt_len <= limit)
    if not keep.all():
        src, tgt = src[np.repeat(keep, src_len)], tgt[np.repeat(keep, tgt_len)]
        src_len, tgt_len = src_len[keep], tgt_len[keep]
    return src, src_len, tgt, tgt_len, int(len(keep) - keep.sum())


def encode_text_batch(tokenizers: dict[str, Tokenizer], batch: tuple) -> tuple:
    """A batch of (part, texts, eos, dtype) -> (part, ids of every text, one after the other,
    each followed by EOS when `eos`)."""
    part, texts, eos, dtype = batch
    tok = tokenizers["text"]
    ids = tok.encode_batch(texts)
    if eos:
        ids = [[*row, tok.eos_id] for row in ids]
    return part, flatten(ids, dtype)[0]


def encode_rows_batch(tokenizers: dict[str, Tokenizer], batch: tuple) -> tuple:
    """A batch of (part, texts, labels, dtype) -> (part, ids of every text, one after the
    other, each text's length, labels as they came): rows of single sentences."""
    part, texts, labels, dtype = batch
    ids, lengths = flatten(tokenizers["text"].encode_batch(texts), dtype)
    return part, ids, lengths, labels
