"""The store of a parallel corpus (translation): both sides' ids as rows, memory-mapped.

    source = file_pairs("train.fr", "train.en")              # or memory_pairs(pairs, identity)
    data = prepare_parallel(source, settings, tokenizers=None, workers=4, log=print)
    data.src.row(i), data.tgt.row(i), data.lengths()         # (N, 2) int64, data.tokenizers

Without tokenizers, one streaming pass samples the sentences for SentencePiece (a reservoir
of `sample` sentences, half from each side for a joint vocabulary) or collects the alphabet
(characters), and checks that the two files have as many lines; a second pass encodes on
`workers` processes. Pairs that are empty or longer than `max_len` on either side are
dropped, as before the store; the kept pairs keep their order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from atento import faults
from atento.data.lines import DEFAULT_POLICY, LinePolicy, stream_lines
from atento.data.store.arrays import ArrayWriter, token_dtype
from atento.data.store.build import Store, open_store, reusable
from atento.data.store.encode import BATCH_LINES, encode_batches, encode_pairs_batch
from atento.data.store.keys import digest_of, file_identity, store_key
from atento.data.store.sample import Reservoir, train_tokenizers
from atento.data.tokenizers import Tokenizer
from atento.errors import AtentoError


@dataclass
class PairSource:
    """Where the pairs come from: their identity (for the key) and a fresh stream of them."""

    identity: list[dict[str, Any]]
    stream: Callable[[], Iterator[tuple[str, str]]]
    name: str


def file_pairs(src: str | Path, tgt: str | Path, *, limit: int = 0,
               policy: LinePolicy = DEFAULT_POLICY) -> PairSource:  # fmt: skip
    """The pairs of two line-aligned files (gzip accepted), the first `limit` (0 = all).
    Their counts must match: the first line where one file ends is an error naming both."""

    def stream() -> Iterator[tuple[str, str]]:
        a, b = stream_lines(src, policy), stream_lines(tgt, policy)
        n = 0
        while not limit or n < limit:
            s, t = next(a, None), next(b, None)
            if s is None or t is None:
                if s is None and t is None:
                    return
                short, long_ = (src, tgt) if s is None else (tgt, src)
                raise AtentoError(
                    f"line counts differ: {short} ends after line {n}, {long_} goes on "
                    f"(line {n + 1})"
                )
            n += 1
            yield s, t

    ident = [file_identity(src), file_identity(tgt), {"limit": limit, "policy": repr(policy)}]
    return PairSource(ident, stream, f"{src} / {tgt}")


def memory_pairs(pairs: list[tuple[str, str]], identity: dict[str, Any]) -> PairSource:
    """Pairs already in memory (a generated corpus), named by `identity`."""
    return PairSource([identity], lambda: iter(pairs), str(identity.get("name", "pairs")))


class ParallelData:
    """A parallel corpus's store, mapped: `src`, `tgt` (`TokenArrays`), tokenizers, counts."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.src, self.tgt = store.arrays("src"), store.arrays("tgt")
        self.tokenizers = store.tokenizers()
        self.dropped = int(store.manifest["dropped"])

    def __len__(self) -> int:
        return len(self.src)

    def lengths(self) -> np.ndarray:
        """(N, 2) int32: each pair's (source, target) length, no EOS / BOS."""
        return np.stack([np.asarray(self.src.lengths), np.asarray(self.tgt.lengths)], axis=1)


def parallel_key(
    source: PairSource, settings: dict[str, Any], tokenizers: dict[str, Tokenizer] | None
) -> tuple[str, dict[str, Any]]:
    """The store key and the settings it covers: the tokenizer's digest replaces the settings
    that build one when it is given."""
    keyed = {"max_len": settings["max_len"]}
    if tokenizers is None:
        keyed.update({k: settings[k] for k in ("tokenizer", "vocab_size", "joint_vocab",
                                                "tokenizer_sample", "seed")})  # fmt: skip
    else:
        keyed["tokenizer_sha256"] = digest_of(tokenizers)
    return store_key("parallel", source.identity, keyed), keyed


def prepare_parallel(
    source: PairSource, settings: dict[str, Any], *, tokenizers: dict[str, Tokenizer] | None,
    workers: int, log=print, reuse: str | None = None, verify: bool = False,
) -> ParallelData:  # fmt: skip
    """The store of `source` under `settings` (tokenizer, vocab_size, joint_vocab,
    tokenizer_sample, seed, max_len): found or built. `reuse`: the key a run directory
    recorded, taken when that store holds the same inputs and the same `tokenizers`."""
    if reuse and tokenizers is not None:
        found = reusable(reuse, source.identity, tokenizers)
        if found is not None:
            return ParallelData(found)
    key, keyed = parallel_key(source, settings, tokenizers)

    def build(folder: Path) -> dict[str, Any]:
        return _build(folder, source, settings, tokenizers, workers, log) | {"settings": keyed}

    return ParallelData(open_store(key, build, log=log, verify=verify))


def _sample_and_train(folder, source, settings, log) -> dict[str, Tokenizer]:
    """First pass: a sample (SentencePiece) or the alphabet (characters) of each side."""
    kind, joint = settings["tokenizer"], settings["joint_vocab"]
    share = settings["tokenizer_sample"] // (2 if joint else 1)
    seed = settings["seed"]
    start = time.perf_counter()
    if kind == "char":
        chars: dict[str, set[str]] = {"src": set(), "tgt": set()}
        n = 0
        for n, (s, t) in enumerate(source.stream(), start=1):  # noqa: B007
            chars["src"].update(s)
            chars["tgt"].update(t)
        sides = {role: ["".join(sorted(c))] for role, c in chars.items()}
    else:
        res = {"src": Reservoir(share, seed), "tgt": Reservoir(share, seed + 1)}
        for s, t in source.stream():
            res["src"].offer(s)
            res["tgt"].offer(t)
        n = res["src"].seen
        sides = {role: r.items for role, r in res.items()}
    if n == 0:
        raise AtentoError("the training data is empty")
    toks = train_tokenizers(kind, sides, vocab_size=settings["vocab_size"], joint=joint,
                            directory=folder)  # fmt: skip
    log(f"corpus store: tokenizer trained in {time.perf_counter() - start:.1f} s")
    return toks


def _build(folder, source, settings, tokenizers, workers, log) -> dict[str, Any]:
    start = time.perf_counter()
    if tokenizers is None:
        tokenizers = _sample_and_train(folder, source, settings, log)
    else:
        names = {id(t): ("joint" if tokenizers["src"] is tokenizers["tgt"] else r)
                 for r, t in tokenizers.items()}  # fmt: skip
        for tok in tokenizers.values():
            tok.save(folder, names[id(tok)])
    trained = time.perf_counter()
    dtype = token_dtype(max(t.vocab_size for t in tokenizers.values()))
    src_w = ArrayWriter(folder, "src", dtype, rows=True)
    tgt_w = ArrayWriter(folder, "tgt", dtype, rows=True)
    batches = _batches(source, settings["max_len"], dtype)
    lines = dropped = 0
    for src, src_len, tgt, tgt_len, n_dropped in encode_batches(
        batches, encode_pairs_batch, tokenizers, workers=workers
    ):
        src_w.append(src, src_len)
        tgt_w.append(tgt, tgt_len)
        lines += len(src_len) + n_dropped
        dropped += n_dropped
        faults.point("store-build")
    if lines == 0:
        raise AtentoError("the training data is empty")
    if src_w.n_rows == 0:
        raise AtentoError(
            f"no training pairs left after dropping {dropped} empty or over-long ones"
        )
    joint = tokenizers["src"] is tokenizers["tgt"]
    done = time.perf_counter()
    return {
        "inputs": source.identity,
        "tokenizers": {"src": "joint" if joint else "src", "tgt": "joint" if joint else "tgt"},
        "tokenizer_sha256": digest_of(tokenizers),
        "arrays": {"src": src_w.close(), "tgt": tgt_w.close()},
        "lines": lines, "pairs": src_w.n_rows, "dropped": dropped, "workers": workers,
        "seconds": {"tokenizer": round(trained - start, 3), "encode": round(done - trained, 3)},
    }  # fmt: skip


def _batches(source: PairSource, max_len: int, dtype) -> Iterator[tuple]:
    src, tgt = [], []
    for s, t in source.stream():
        src.append(s)
        tgt.append(t)
        if len(src) == BATCH_LINES:
            yield src, tgt, max_len, dtype
            src, tgt = [], []
    if src:
        yield src, tgt, max_len, dtype
