"""Raw sentence pairs for a split, whatever corpus the config names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from atento.data.dates import dates_splits
from atento.data.multi30k import load_multi30k, multi30k_files
from atento.data.parallel import read_parallel
from atento.data.store import PairSource, file_pairs, memory_pairs
from atento.errors import AtentoError

if TYPE_CHECKING:
    from atento.tasks.translation_data import DataConfig

SPLITS = ("train", "valid", "test")
MULTI30K_SPLITS = {"train": "train", "valid": "val", "test": "test_2016_flickr"}


def load_split(cfg: DataConfig, split: str) -> list[tuple[str, str]]:
    """(source, target) pairs of `split` (train, valid or test) of the configured corpus."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}")
    if cfg.corpus == "dates":
        pairs = dates_splits(cfg.n_train, cfg.n_valid, cfg.n_test, cfg.seed)[split]
    elif cfg.corpus == "multi30k":
        name = MULTI30K_SPLITS[split]
        pairs = load_multi30k(name, cfg.src_lang, cfg.tgt_lang, cfg.dir or None)
    else:
        files = getattr(cfg, split)
        if not (files.src and files.tgt):
            if split == "train":
                raise AtentoError("config: data.train.src and data.train.tgt must be set")
            return []
        pairs = read_parallel(files.src, files.tgt)
    if split == "train" and cfg.max_train_pairs > 0:
        pairs = pairs[: cfg.max_train_pairs]
    if split == "train" and not pairs:
        raise AtentoError("the training data is empty")
    return pairs


def train_source(cfg: DataConfig) -> PairSource:
    """The training pairs of the configured corpus as a stream for the corpus store (files
    and Multi30k read line by line; the generated dates corpus from memory)."""
    limit = max(cfg.max_train_pairs, 0)
    if cfg.corpus == "dates":
        pairs = dates_splits(cfg.n_train, cfg.n_valid, cfg.n_test, cfg.seed)["train"]
        ident = {"name": "dates", "n_train": cfg.n_train, "n_valid": cfg.n_valid,
                 "n_test": cfg.n_test, "seed": cfg.seed, "limit": limit}  # fmt: skip
        return memory_pairs(pairs[:limit] if limit else pairs, ident)
    if cfg.corpus == "multi30k":
        return file_pairs(*multi30k_files("train", cfg.src_lang, cfg.tgt_lang, cfg.dir or None),
                          limit=limit)  # fmt: skip
    if not (cfg.train.src and cfg.train.tgt):
        raise AtentoError("config: data.train.src and data.train.tgt must be set")
    return file_pairs(cfg.train.src, cfg.train.tgt, limit=limit)
