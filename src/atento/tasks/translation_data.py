"""The `data` section of `task: translation`: a parallel corpus and its tokenizers.

Apart from `tasks/translation.py` so that the data readers (`atento.data.corpus`,
`atento.data.tokenizers`) can name it without importing the task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from atento.config import check
from atento.errors import AtentoError


@dataclass
class SplitFiles:
    """Two line-aligned plain-text files (gzip accepted)."""

    src: str = ""
    tgt: str = ""


@dataclass
class DataConfig:
    """The data section of the translation task: a parallel corpus and its tokenizers."""

    corpus: str = "dates"  # files | multi30k | dates
    src_lang: str = "fr"  # multi30k only
    tgt_lang: str = "en"
    dir: str = ""  # multi30k directory; empty = download once into a cache
    train: SplitFiles = field(default_factory=SplitFiles)  # corpus=files
    valid: SplitFiles = field(default_factory=SplitFiles)
    test: SplitFiles = field(default_factory=SplitFiles)
    tokenizer: str = "sentencepiece"  # sentencepiece | char
    vocab_size: int = 8000  # SentencePiece vocabulary (joint) or per side (separate)
    joint_vocab: bool = True
    max_len: int = 100  # pairs longer than this (in pieces, either side) are dropped
    max_train_pairs: int = 0  # 0 = all; >0 keeps the first N (quick experiments)
    n_train: int = 20000  # dates corpus sizes
    n_valid: int = 500
    n_test: int = 1000
    seed: int = 1234  # dates generator seed; the tokenizer sample's seed
    tokenizer_sample: int = 1_000_000  # sentences SentencePiece trains on (both sides together)
    workers: int = 0  # processes encoding the corpus store; 0 = the CPU cores

    def validate(self, cfg: Any) -> None:
        check(self.corpus in ("files", "multi30k", "dates"), cfg, "data.corpus",
              "files, multi30k, dates")  # fmt: skip
        check(self.tokenizer in ("sentencepiece", "char"), cfg, "data.tokenizer",
              "sentencepiece, char")  # fmt: skip
        check(self.tokenizer_sample >= 2, cfg, "data.tokenizer_sample", "at least 2")
        check(self.workers >= 0, cfg, "data.workers", "0 (the CPU cores) or more")
        if self.corpus == "files" and not (self.train.src and self.train.tgt):
            raise AtentoError("config: data.corpus=files needs data.train.src and data.train.tgt")
