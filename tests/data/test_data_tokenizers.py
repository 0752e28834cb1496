"""Tokenizers: special ids (constants and properties), round trips, save/load of every kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from atento.data.tokenizers import (
    CharTokenizer,
    LabelSet,
    SentencePieceTokenizer,
    build_tokenizer,
    load_tokenizer,
    tokenizer_from_state,
)
from atento.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from atento.errors import AtentoError

SRC = [
    f"le {a} {n} mange une pomme rouge près de la maison"
    for a in ("chat", "chien", "garçon", "cheval", "oiseau")
    for n in ("noir", "blanc", "petit", "grand", "vieux", "jeune", "gris", "roux", "brun", "fou")
]
TGT = [
    f"the {n} {a} eats a red apple near the house"
    for a in ("cat", "dog", "boy", "horse", "bird")
    for n in ("black", "white", "small", "big", "old", "young", "grey", "red", "brown", "mad")
]


def test_special_ids_are_fixed() -> None:
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)


@pytest.mark.parametrize("kind", ["char", "word", "sentencepiece"])
def test_special_ids_are_read_only_properties_of_every_tokenizer(kind: str) -> None:
    tok = build_tokenizer(kind, SRC, vocab_size=60, run_dir=None, name="x")
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (PAD_ID, UNK_ID, BOS_ID, EOS_ID)
    assert tok.mask_id == tok.vocab_size  # [MASK]: the row after the tokenizer's own ids
    line = SRC[4]
    assert tok.decode([tok.bos_id, *tok.encode(line), tok.eos_id, tok.pad_id]) == line
    assert tok.unk_id in tok.encode("\u2603")  # a snowman is in no training text
    for name in ("pad_id", "unk_id", "bos_id", "eos_id", "mask_id"):
        with pytest.raises(AttributeError):
            setattr(tok, name, 5)
    back = tokenizer_from_state(tok.state())  # a checkpoint's tokenizer has them too
    assert (back.pad_id, back.eos_id, back.mask_id) == (PAD_ID, EOS_ID, tok.vocab_size)


def test_a_label_set_has_no_special_ids() -> None:
    labels = LabelSet(["neg", "pos"])
    names = ("pad_id", "unk_id", "bos_id", "eos_id", "mask_id")
    assert [getattr(labels, name) for name in names] == [None] * 5
    assert labels.encode("neg") == [0]  # class indices start at 0
    with pytest.raises(AttributeError):
        labels.pad_id = 0


def test_char_round_trip_and_unknown() -> None:
    tok = CharTokenizer.from_texts(["abc cab", "ba!"])
    assert tok.vocab_size == 4 + len(set("abc !"))
    ids = tok.encode("a cab!")
    assert min(ids) >= 4 and len(ids) == 6
    assert tok.decode(ids) == "a cab!"
    assert tok.pieces("a cab!") == list("a cab!")
    assert tok.encode("z") == [UNK_ID]
    assert tok.decode([BOS_ID, *tok.encode("ab"), EOS_ID, PAD_ID, PAD_ID]) == "ab"
    assert [tok.id_to_piece(i) for i in range(4)] == ["<pad>", "<unk>", "<s>", "</s>"]


def test_char_save_load(tmp_path: Path) -> None:
    tok = CharTokenizer.from_texts(["héllo wörld"])
    tok.save(tmp_path, "src")
    back = load_tokenizer(tmp_path, "src")
    assert isinstance(back, CharTokenizer)
    assert back.chars == tok.chars and back.encode("wörld") == tok.encode("wörld")


def test_sentencepiece_train_save_load_round_trip(tmp_path: Path) -> None:
    tok = build_tokenizer("sentencepiece", SRC, vocab_size=8000, run_dir=tmp_path, name="sp")
    assert (tmp_path / "sp.model").is_file() and (tmp_path / "sp.json").is_file()
    assert 4 < tok.vocab_size < 8000  # soft limit on a toy corpus
    sp = tok.sp
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (0, 1, 2, 3)
    back = load_tokenizer(tmp_path, "sp")
    assert isinstance(back, SentencePieceTokenizer)
    for line in SRC[:10]:
        ids = tok.encode(line)
        assert BOS_ID not in ids and EOS_ID not in ids
        assert back.encode(line) == ids
        assert len(tok.pieces(line)) == len(ids)
        assert [tok.id_to_piece(i) for i in ids] == tok.pieces(line)
        assert tok.decode([BOS_ID, *ids, EOS_ID, PAD_ID]) == line
    assert tokenizer_from_state(tok.state()).encode(SRC[3]) == tok.encode(SRC[3])


def test_sentencepiece_is_deterministic(tmp_path: Path) -> None:
    a = build_tokenizer("sentencepiece", SRC + TGT, vocab_size=60, run_dir=tmp_path / "a", name="x")
    b = build_tokenizer("sentencepiece", SRC + TGT, vocab_size=60, run_dir=tmp_path / "b", name="x")
    assert (tmp_path / "a" / "x.model").read_bytes() == (tmp_path / "b" / "x.model").read_bytes()
    assert a.encode(TGT[7]) == b.encode(TGT[7])


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(AtentoError, match="tokenizer not found"):
        load_tokenizer(tmp_path, "src")
    (tmp_path / "bad.json").write_text('{"kind": "bpe"}', encoding="utf-8")
    with pytest.raises(AtentoError, match="unknown tokenizer kind"):
        load_tokenizer(tmp_path, "bad")
    (tmp_path / "gone.json").write_text('{"kind": "sentencepiece"}', encoding="utf-8")
    with pytest.raises(AtentoError, match="model not found"):
        load_tokenizer(tmp_path, "gone")
