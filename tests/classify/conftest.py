"""Toy sentiment data and tiny pretrained / fine-tuned runs: in the suite's conftest (every
kind of run is there), imported here under the names these tests use."""

from conftest import (  # noqa: F401
    BAD,
    FILLER,
    GOOD,
    TINY,
    TRAIN,
    classify_config,
    mlm_config,
    toy_sentences,
    write_tsv,
)
