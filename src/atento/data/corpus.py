"""Raw sentence pairs for a split, whatever corpus the config names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from atento.data.dates import dates_splits
from atento.data.multi30k import load_multi30k
from atento.data.parallel import read_parallel
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
