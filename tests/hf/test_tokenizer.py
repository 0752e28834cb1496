"""The imported tokenizer (kind hf) against the library's: the same ids on text with runs of
spaces and non-ASCII letters, decoding, special ids, the older files, storage round trips."""

from __future__ import annotations

import json

import pytest

from atento.checkpoints import find_checkpoint, load_checkpoint
from atento.data.tokenizers import load_tokenizer, tokenizer_from_state
from atento.hf.tokenizer import HFTokenizer, read_tokenizer
from atento.rundir import load_run

pytest.importorskip("transformers")

from .conftest import (
    EOT,
    PROBES,
    TEXTS,
    byte_level_bpe,
    fast,
    import_hf,
    tokenizers,
    transformers,
    wordpiece,
)


def library(model_dir):
    return transformers.AutoTokenizer.from_pretrained(model_dir)


def test_gpt2_ids_and_decoding_equal_the_librarys(gpt2_dir, gpt2_run):
    ours, theirs = load_run(gpt2_run).tokenizers["text"], library(gpt2_dir)
    for text in PROBES:
        ids = ours.encode(text)
        assert ids == theirs(text, add_special_tokens=False)["input_ids"]
        assert ours.decode(ids) == text == theirs.decode(ids)  # byte-level: exact round trip
        assert len(ours.pieces(text)) == len(ids)
    assert ours.encode_batch(PROBES) == [ours.encode(t) for t in PROBES]
    # GPT-2's one boundary token is BOS and EOS, it has no PAD and no [MASK]
    eot = theirs.convert_tokens_to_ids(EOT)
    assert (ours.bos_id, ours.eos_id, ours.pad_id, ours.mask_id) == (eot, eot, None, None)
    assert ours.unk_id is None  # named <|endoftext|> too, but byte-level BPE has no unknowns
    assert ours.encode(f"a{EOT}b")[1] == eot  # a special token is never split
    assert ours.decode([eot, *ours.encode("hi  there"), eot]) == "hi  there"
    assert ours.whole_text and ours.embedding_rows == ours.vocab_size == len(theirs)


def test_bert_ids_and_decoding_equal_the_librarys(bert_dirs, bert_runs):
    ours, theirs = load_run(bert_runs["mlm"]).tokenizers["text"], library(bert_dirs["mlm"])
    for text in PROBES:
        ids = ours.encode(text)
        assert ids == theirs(text, add_special_tokens=False)["input_ids"]
        # with atento's [CLS] x [SEP] the same sequence as the library's own
        assert [ours.bos_id, *ids, ours.eos_id] == theirs(text)["input_ids"]
        assert ours.decode(ids) == theirs.decode(ids)
        assert ours.decode([ours.bos_id, *ids, ours.eos_id, ours.pad_id]) == theirs.decode(
            theirs(text)["input_ids"], skip_special_tokens=True
        )
    ids = theirs.convert_tokens_to_ids
    assert (ours.bos_id, ours.eos_id, ours.pad_id, ours.unk_id, ours.mask_id) == (
        ids("[CLS]"), ids("[SEP]"), ids("[PAD]"), ids("[UNK]"), ids("[MASK]"),
    )  # fmt: skip
    assert ours.embedding_rows == ours.vocab_size  # [MASK] is inside the vocabulary
    assert ours.regular_ids.start == 7 and ours.encode("[MASK]") == [ours.mask_id]


@pytest.mark.parametrize("family", ["gpt2", "bert"])
def test_the_state_round_trips_through_files_and_checkpoints(family, gpt2_run, bert_runs,
                                                              tmp_path):  # fmt: skip
    run = gpt2_run if family == "gpt2" else bert_runs["mlm"]
    tok = load_tokenizer(run, "text")
    assert isinstance(tok, HFTokenizer)
    ckpt = load_checkpoint(find_checkpoint(run, "best"))
    again = tokenizer_from_state(ckpt.tokenizers["text"].state())
    tok.save(tmp_path, "copy")
    copy = load_tokenizer(tmp_path, "copy")
    for other in (ckpt.tokenizers["text"], again, copy):
        assert other.state() == tok.state()
        assert [other.encode(t) for t in PROBES] == [tok.encode(t) for t in PROBES]


def _older_files(tok, family, model_dir, config_vocab, settings=None):
    """A model directory with only the older tokenizer files of `tok`."""
    model_dir.mkdir()
    tok.model.save(str(model_dir))  # vocab.txt, or vocab.json + merges.txt
    if family == "gpt2":  # GPT-2's vocab.json lists <|endoftext|> too (its last id)
        vocab = json.loads((model_dir / "vocab.json").read_text(encoding="utf-8"))
        vocab[EOT] = tok.token_to_id(EOT)
        (model_dir / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    if settings is not None:
        (model_dir / "tokenizer_config.json").write_text(json.dumps(settings))
    return read_tokenizer(model_dir, family, {"vocab_size": config_vocab})


def test_vocab_json_and_merges_read_as_gpt2s_byte_level_bpe(gpt2_dir, tmp_path):
    tok = byte_level_bpe()
    older = _older_files(tok, "gpt2", tmp_path / "old", tok.get_vocab_size())
    ours = read_tokenizer(gpt2_dir, "gpt2", {"vocab_size": tok.get_vocab_size()})
    for text in PROBES:
        assert older.encode(text) == ours.encode(text)
        assert older.decode(older.encode(text)) == text
    assert older.encode(f"x{EOT}y") == ours.encode(f"x{EOT}y")  # EOS, never split
    assert (older.bos_id, older.eos_id, older.pad_id) == (ours.bos_id, ours.eos_id, None)


@pytest.mark.parametrize("lower", [True, False])
def test_vocab_txt_reads_as_berts_wordpiece_with_do_lower_case(lower, tmp_path):
    tok = wordpiece(lowercase=lower)
    settings = {"do_lower_case": lower}
    older = _older_files(tok, "bert", tmp_path / "old", tok.get_vocab_size(), settings)
    for text in PROBES:
        assert older.encode(text) == tok.encode(text, add_special_tokens=False).ids
    assert older.encode("[MASK] Héllo") == [older.mask_id, *tok.encode("Héllo").ids[1:-1]]
    assert (older.bos_id, older.eos_id, older.pad_id, older.mask_id) == (4, 5, 0, 6)


def test_a_tokenizer_config_naming_tokens_is_honoured(tmp_path):
    tok = byte_level_bpe()
    tok.add_special_tokens(["<pad>"])
    d = tmp_path / "named"
    fast(tok, "gpt2").save_pretrained(d)
    settings = json.loads((d / "tokenizer_config.json").read_text())
    settings["pad_token"] = "<pad>"
    (d / "tokenizer_config.json").write_text(json.dumps(settings))
    ours = read_tokenizer(d, "gpt2", {"vocab_size": tok.get_vocab_size()})
    assert ours.pad_id == tok.token_to_id("<pad>") and ours.eos_id == tok.token_to_id(EOT)
    assert "hello" in TEXTS[4] and ours.decode(ours.encode("hello")) == "hello"


def test_imported_tokenizer_survives_a_second_import_directory(gpt2_dir, tmp_path):
    """The run directory stands alone: its tokenizer needs nothing from the model directory."""
    import shutil

    src = tmp_path / "model"
    shutil.copytree(gpt2_dir, src)
    run = import_hf(src, tmp_path / "run")
    shutil.rmtree(src)
    assert (
        load_run(run).tokenizers["text"].decode(load_run(run).tokenizers["text"].encode(PROBES[0]))
        == PROBES[0]
    )


@pytest.mark.parametrize("family", ["gpt2", "bert"])
def test_a_directory_with_only_the_older_files_imports_the_same_run(family, gpt2_dir, gpt2_run,
                                                                    bert_dirs, bert_runs,
                                                                    tmp_path):  # fmt: skip
    """tokenizer.json removed, vocab.txt or vocab.json + merges.txt written (as published
    directories of these models have them): the same ids through `atento import hf`."""
    import shutil

    src, run = (gpt2_dir, gpt2_run) if family == "gpt2" else (bert_dirs["mlm"], bert_runs["mlm"])
    d = tmp_path / "older"
    shutil.copytree(src, d)
    tok = tokenizers.Tokenizer.from_file(str(d / "tokenizer.json"))  # the directory's own
    (d / "tokenizer.json").unlink()
    tok.model.save(str(d))
    if family == "gpt2":
        vocab = json.loads((d / "vocab.json").read_text(encoding="utf-8"))
        (d / "vocab.json").write_text(json.dumps({**vocab, EOT: tok.token_to_id(EOT)}))
    older = load_run(import_hf(d, tmp_path / "run")).tokenizers["text"]
    ours = load_run(run).tokenizers["text"]
    assert [older.encode(t) for t in PROBES] == [ours.encode(t) for t in PROBES]
    assert older.specials == ours.specials


def test_a_damaged_tokenizer_file_is_one_line_naming_it(gpt2_run, tmp_path):
    from atento.errors import AtentoError

    state = json.loads((gpt2_run / "text.json").read_text(encoding="utf-8"))
    state["tokenizer"] = "{not json"
    (tmp_path / "text.json").write_text(json.dumps(state), encoding="utf-8")
    with pytest.raises(AtentoError, match="text.json: not a readable hf tokenizer"):
        load_tokenizer(tmp_path, "text")
