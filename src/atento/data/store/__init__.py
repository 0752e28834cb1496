"""The prepared-data store: a training corpus read once, streaming, into flat token arrays on
disk that every task and rank maps (`np.memmap`), keyed by the inputs and the encoding.

    data = prepare_parallel(file_pairs(src, tgt), settings, tokenizers=None, workers=4)
    data = prepare_stream(file_text(path, valid_fraction=0.1), settings, tokenizers=None, ...)
    data = prepare_sentences(labelled_source(path, "sst2", labelled=True), settings, ...)

`keys` (cache root, identity, key), `arrays` (the files, memory-mapped), `build` (temporary
folder, manifest last, rename; waiting ranks; clean), `sample` (the tokenizer's bounded
sample), `encode` (the worker pool), `parallel` (translation), `stream` (language models) and
`sentences` (single sentences with an optional class: MLM pretraining, classification).
"""

from atento.data.store.build import (
    Store,
    clean_stores,
    folder_size,
    open_store,
    read_store,
    record_store,
    recorded_key,
)
from atento.data.store.encode import default_workers
from atento.data.store.keys import FORMAT, cache_root, stores_root
from atento.data.store.parallel import (
    PairSource,
    ParallelData,
    file_pairs,
    memory_pairs,
    prepare_parallel,
)
from atento.data.store.sentences import (
    SentenceData,
    SentenceSource,
    labelled_source,
    prepare_sentences,
)
from atento.data.store.stream import StreamData, TextSource, file_text, memory_text, prepare_stream

__all__ = [
    "FORMAT",
    "PairSource",
    "ParallelData",
    "SentenceData",
    "SentenceSource",
    "Store",
    "StreamData",
    "TextSource",
    "cache_root",
    "clean_stores",
    "default_workers",
    "file_pairs",
    "file_text",
    "folder_size",
    "labelled_source",
    "memory_pairs",
    "memory_text",
    "open_store",
    "prepare_parallel",
    "prepare_sentences",
    "prepare_stream",
    "read_store",
    "record_store",
    "recorded_key",
    "stores_root",
]
