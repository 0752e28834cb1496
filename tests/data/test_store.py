"""The corpus store: what it holds equals the in-memory path it replaced, it is found again
by its key and rebuilt when an input or setting changes, and bad input, a full disk, a kill,
a damaged file or an older format never leave a store that looks finished."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from atento.data import store as store_mod
from atento.data.parallel import encode_pairs, read_parallel
from atento.data.store import (
    file_pairs,
    file_text,
    memory_text,
    prepare_parallel,
    prepare_stream,
    stores_root,
)
from atento.data.store.build import _build, open_store
from atento.data.store.sample import Reservoir
from atento.data.text import encode_text
from atento.data.tokenizers import build_tokenizer
from atento.errors import AtentoError
from conftest import ROOT, write_toy_corpus

SP = {"tokenizer": "sentencepiece", "vocab_size": 60, "joint_vocab": True,
      "tokenizer_sample": 1_000_000, "seed": 1, "max_len": 6}  # fmt: skip
QUIET = {"log": lambda *_: None}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ATENTO_CACHE", str(tmp_path / "cache"))
    for var in ("LOCAL_RANK", "WORLD_SIZE", "ATENTO_FAULT"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "cache"


@pytest.fixture
def corpus(tmp_path) -> tuple[Path, Path]:
    return write_toy_corpus(tmp_path / "data", 300, 1, "train")


def _stores() -> list[str]:
    return sorted(p.name for p in stores_root().iterdir()) if stores_root().is_dir() else []


@pytest.mark.parametrize(("kind", "joint"), [("sentencepiece", True), ("char", False)])
def test_parallel_store_equals_the_in_memory_path(corpus, kind, joint) -> None:
    settings = {**SP, "tokenizer": kind, "joint_vocab": joint}
    data = prepare_parallel(file_pairs(*corpus), settings, tokenizers=None, workers=1, **QUIET)
    pairs = read_parallel(*corpus)
    src, tgt = [s for s, _ in pairs], [t for _, t in pairs]
    if joint:  # main's builder: one tokenizer of all sources, then all targets
        tok = build_tokenizer(kind, [*src, *tgt], vocab_size=60, run_dir=None, name="joint")
        toks = (tok, tok)
    else:
        toks = tuple(build_tokenizer(kind, side, vocab_size=60, run_dir=None, name="x")
                     for side in (src, tgt))  # fmt: skip
    assert [t.state() for t in toks] == [data.tokenizers[r].state() for r in ("src", "tgt")]
    encoded, dropped = encode_pairs(pairs, *toks, max_len=6)
    assert dropped > 0 and data.dropped == dropped and len(data) == len(encoded)
    for i, (s, t) in enumerate(encoded):
        assert data.src.row(i).tolist() == s and data.tgt.row(i).tolist() == t
    assert data.lengths().tolist() == [[len(s), len(t)] for s, t in encoded]
    assert data.src.tokens.dtype == np.uint16 and isinstance(data.src.tokens, np.memmap)


def _contents(folder: Path) -> dict[str, bytes]:
    """The arrays and tokenizer files of a store (not its manifest, which dates itself)."""
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "manifest.json"}


def test_workers_change_nothing_and_the_store_is_found_again(corpus, cache) -> None:
    one = prepare_parallel(file_pairs(*corpus), SP, tokenizers=None, workers=1, **QUIET)
    files = _contents(one.store.path)
    created = one.store.manifest["created"]
    for path in one.store.path.iterdir():  # built again with 2 processes: the same bytes
        path.unlink()
    one.store.path.rmdir()
    two = prepare_parallel(file_pairs(*corpus), SP, tokenizers=None, workers=2, **QUIET)
    assert two.store.key == one.store.key
    assert _contents(two.store.path) == files
    again = prepare_parallel(file_pairs(*corpus), SP, tokenizers=None, workers=2, **QUIET)
    assert again.store.manifest["created"] == two.store.manifest["created"]
    assert _stores() == [one.store.key] and created


def test_a_changed_input_or_setting_is_a_new_store(corpus) -> None:
    first = prepare_parallel(file_pairs(*corpus), SP, tokenizers=None, workers=1, **QUIET)
    other = prepare_parallel(file_pairs(*corpus), {**SP, "vocab_size": 50}, tokenizers=None,
                             workers=1, **QUIET)  # fmt: skip
    assert other.store.key != first.store.key
    src, tgt = corpus
    src.write_text(src.read_text(encoding="utf-8").replace("chat", "chien"), encoding="utf-8")
    changed = prepare_parallel(file_pairs(*corpus), SP, tokenizers=None, workers=1, **QUIET)
    assert changed.store.key not in (first.store.key, other.store.key)
    # a given tokenizer names the store by its hash, and a recorded key is reused only
    # while it holds the same inputs and tokenizer
    given = prepare_parallel(file_pairs(*corpus), SP, tokenizers=changed.tokenizers, workers=1,
                             reuse=changed.store.key, **QUIET)  # fmt: skip
    assert given.store.key == changed.store.key
    fresh = prepare_parallel(file_pairs(*corpus), SP, tokenizers=first.tokenizers, workers=1,
                             reuse=changed.store.key, **QUIET)  # fmt: skip
    assert fresh.store.key not in (first.store.key, changed.store.key)


def test_reservoir_keeps_a_short_stream_in_order_and_samples_a_long_one_uniformly() -> None:
    r = Reservoir(10, seed=3)
    for i in range(7):
        r.offer(str(i))
    assert r.items == [str(i) for i in range(7)]
    hits = np.zeros(200)
    for seed in range(400):
        r = Reservoir(20, seed=seed)
        for i in range(200):
            r.offer(i)
        assert len(r.items) == len(set(r.items)) == 20
        hits[r.items] += 1
    # each item is kept with p = 20 / 200: 40 times in 400 draws, give or take ~6
    assert abs(hits.mean() - 40) < 1e-9 and hits.min() > 15 and hits.max() < 70
    assert abs(hits[:100].sum() - hits[100:].sum()) < 0.1 * hits.sum()  # no end favoured
    again = Reservoir(20, seed=5)
    for i in range(200):
        again.offer(i)
    first = Reservoir(20, seed=5)
    for i in range(200):
        first.offer(i)
    assert again.items == first.items


def test_a_joint_sample_draws_both_sides_in_equal_shares(tmp_path) -> None:
    # sources in Latin letters, targets in Greek: a sample of 40 of 2,000 pairs whose
    # first half were all sources would know no Greek at all
    src, tgt = tmp_path / "s.txt", tmp_path / "t.txt"
    src.write_text("".join(f"abc def {i % 7} ghi\n" for i in range(2000)), encoding="utf-8")
    tgt.write_text("".join(f"αβγ δεζ {i % 5} ηθι\n" for i in range(2000)), encoding="utf-8")
    data = prepare_parallel(file_pairs(src, tgt), {**SP, "tokenizer_sample": 40, "max_len": 0},
                            tokenizers=None, workers=1, **QUIET)  # fmt: skip
    tok = data.tokenizers["src"]
    assert tok.decode(tok.encode("αβγ δεζ")) == "αβγ δεζ" and 1 not in tok.encode("αβγ abc")


def test_line_count_mismatch_names_both_files_and_the_line(tmp_path) -> None:
    src, tgt = tmp_path / "a.fr", tmp_path / "b.en"
    src.write_text("un\ndeux\ntrois\n", encoding="utf-8")
    tgt.write_text("one\ntwo\n", encoding="utf-8")
    with pytest.raises(AtentoError, match=rf"line counts differ: {tgt} ends after line 2, "
                                          rf"{src} goes on \(line 3\)"):  # fmt: skip
        prepare_parallel(file_pairs(src, tgt), SP, tokenizers=None, workers=1, **QUIET)
    assert _stores() == []


@pytest.mark.parametrize(("content", "message"), [
    (b"un\n\xff\xfe\n", r"a.fr:2: invalid UTF-8 at byte offset 3"),
    (b"", "the training data is empty"),
])  # fmt: skip
def test_bad_utf8_and_an_empty_corpus_are_one_line_errors(tmp_path, content, message) -> None:
    src, tgt = tmp_path / "a.fr", tmp_path / "b.en"
    src.write_bytes(content)
    tgt.write_bytes(b"one\ntwo\n"[: len(content) and None])
    with pytest.raises(AtentoError, match=message):
        prepare_parallel(file_pairs(src, tgt), SP, tokenizers=None, workers=1, **QUIET)
    assert _stores() == []


def test_a_full_disk_leaves_no_half_store(corpus, monkeypatch) -> None:
    monkeypatch.setenv("ATENTO_FAULT", "store-write@2")
    monkeypatch.setattr("atento.faults._passed", {})
    with pytest.raises(AtentoError, match="no space left on the device while preparing") as exc:
        prepare_parallel(file_pairs(*corpus), SP, tokenizers=None, workers=1, **QUIET)
    assert "\n" not in str(exc.value)
    assert _stores() == []  # no store and no temporary folder
    monkeypatch.delenv("ATENTO_FAULT")
    assert len(prepare_parallel(file_pairs(*corpus), SP, tokenizers=None, workers=1, **QUIET))


def test_a_killed_prepare_leaves_nothing_finished(corpus, cache) -> None:
    code = (
        "import sys; from atento.data.store import file_pairs, prepare_parallel; "
        f"prepare_parallel(file_pairs(*sys.argv[1:]), {SP!r}, tokenizers=None, workers=1)"
    )
    env = {**os.environ, "ATENTO_FAULT": "store-build", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-c", code, *map(str, corpus)], env=env,
                          capture_output=True)  # fmt: skip
    assert proc.returncode == -9
    left = _stores()
    assert len(left) == 1 and left[0].startswith(".tmp-")  # no manifest, not renamed into place
    data = prepare_parallel(file_pairs(*corpus), SP, tokenizers=None, workers=1, **QUIET)
    assert _stores() == [data.store.key]  # the dead process's folder removed


def test_a_truncated_or_altered_store_is_a_one_line_error(corpus) -> None:
    data = prepare_parallel(file_pairs(*corpus), SP, tokenizers=None, workers=1, **QUIET)
    tok = data.store.path / "tgt.tok"
    raw = tok.read_bytes()
    tok.write_bytes(raw[:-2])
    with pytest.raises(AtentoError, match=rf"{tok}: corpus store file is .* bytes, its manifest"):
        prepare_parallel(file_pairs(*corpus), SP, tokenizers=None, workers=1, **QUIET)
    tok.write_bytes(raw[:-2] + b"\x07\x00")  # the same size, another last id
    assert len(prepare_parallel(file_pairs(*corpus), SP, tokenizers=None, workers=1, **QUIET))
    with pytest.raises(AtentoError, match=rf"{tok}: corpus store file does not match"):
        prepare_parallel(file_pairs(*corpus), SP, tokenizers=None, workers=1, verify=True,
                         **QUIET)  # fmt: skip


def test_an_older_format_is_rebuilt(corpus) -> None:
    data = prepare_parallel(file_pairs(*corpus), SP, tokenizers=None, workers=1, **QUIET)
    manifest = data.store.path / "manifest.json"
    old = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**old, "format": 0}))
    notes = []
    again = prepare_parallel(file_pairs(*corpus), SP, tokenizers=None, workers=1,
                             log=notes.append)  # fmt: skip
    assert again.store.manifest["format"] == store_mod.FORMAT
    assert any("another format version, rebuilding" in n for n in notes)


def test_other_local_ranks_wait_for_the_manifest(monkeypatch) -> None:
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr("atento.data.store.build.POLL_SECONDS", 0.01)
    calls = []

    def build(folder: Path) -> dict:
        calls.append(folder)
        return {"arrays": {}, "tokenizers": {}}

    def rank0() -> None:
        time.sleep(0.3)
        _build(stores_root(), "stream-test", build, print)

    thread = threading.Thread(target=rank0)
    thread.start()
    start = time.monotonic()
    store = open_store("stream-test", lambda folder: pytest.fail("rank 1 built"), log=print)
    thread.join()
    assert time.monotonic() - start >= 0.25 and len(calls) == 1
    assert store.manifest["key"] == "stream-test"


@pytest.mark.parametrize("kind", ["char", "sentencepiece"])
@pytest.mark.parametrize("valid", [False, True])
def test_text_stream_equals_encode_text(tmp_path, kind, valid) -> None:
    text = "".join(f"First Citizen {i}:\nBefore we proceed any further, hear me speak.\n\n"
                   for i in range(40)) + "the end without a line break"  # fmt: skip
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    valid_path = tmp_path / "v.txt"
    valid_path.write_text("Speak, speak.\nYou are all resolved\n", encoding="utf-8")
    if valid:
        train_text, valid_text = text, valid_path.read_text(encoding="utf-8")
    else:
        cut = int(len(text) * 0.9)
        train_text, valid_text = text[:cut], text[cut:]
    texts = [train_text, valid_text] if kind == "char" else train_text.split("\n")
    tok = build_tokenizer(kind, texts, vocab_size=70, run_dir=None, name="text")
    settings = {"tokenizer": kind, "vocab_size": 70, "tokenizer_sample": 10**6, "seed": 1}
    sources = [
        file_text(path, valid=valid_path if valid else "", valid_fraction=0.1),
        memory_text(text, valid_text if valid else None, valid_fraction=0.1, name="m"),
    ]
    for source in sources:
        data = prepare_stream(source, settings, tokenizers=None, workers=2, **QUIET)
        assert data.tokenizers["text"].state() == tok.state()
        assert data.train.tolist() == encode_text(tok, train_text)
        assert data.valid.tolist() == encode_text(tok, valid_text)
        assert data.valid_chars == len(valid_text)
