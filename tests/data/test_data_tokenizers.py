"""Tokenizers: fixed special ids, round trips, save/load of every kind, joint vs separate."""

from __future__ import annotations

from pathlib import Path

import pytest

from atento.data.tokenizers import (
    CharTokenizer,
    SentencePieceTokenizer,
    build_tokenizers,
    load_tokenizer,
    load_tokenizers,
    tokenizer_from_state,
    train_sentencepiece,
)
from atento.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from atento.errors import AtentoError
from atento.tasks.translation_data import DataConfig

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
    tok = train_sentencepiece(SRC, vocab_size=8000, directory=tmp_path, name="sp")
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
    a = train_sentencepiece(SRC + TGT, vocab_size=60, directory=tmp_path / "a", name="x")
    b = train_sentencepiece(SRC + TGT, vocab_size=60, directory=tmp_path / "b", name="x")
    assert (tmp_path / "a" / "x.model").read_bytes() == (tmp_path / "b" / "x.model").read_bytes()
    assert a.encode(TGT[7]) == b.encode(TGT[7])


@pytest.mark.parametrize("kind", ["sentencepiece", "char"])
def test_joint_vs_separate(tmp_path: Path, kind: str) -> None:
    joint_dir, sep_dir = tmp_path / "joint", tmp_path / "sep"
    cfg = DataConfig(tokenizer=kind, vocab_size=60, joint_vocab=True)
    src_tok, tgt_tok = build_tokenizers(cfg, SRC, TGT, joint_dir)
    assert src_tok is tgt_tok
    assert src_tok.decode(src_tok.encode(TGT[0])) == TGT[0]  # joint covers both sides
    a, b = load_tokenizers(joint_dir)
    assert a is b and a.encode(SRC[1]) == src_tok.encode(SRC[1])

    cfg = DataConfig(tokenizer=kind, vocab_size=60, joint_vocab=False)
    src_tok, tgt_tok = build_tokenizers(cfg, SRC, TGT, sep_dir)
    assert src_tok is not tgt_tok
    assert (sep_dir / "src.json").is_file() and (sep_dir / "tgt.json").is_file()
    a, b = load_tokenizers(sep_dir)
    assert a.encode(SRC[2]) == src_tok.encode(SRC[2])
    assert b.encode(TGT[2]) == tgt_tok.encode(TGT[2])
    assert b.decode(b.encode(TGT[2])) == TGT[2]
    if kind == "char":  # "ç" only occurs in the source text
        assert UNK_ID in tgt_tok.encode("garçon") and UNK_ID not in src_tok.encode("garçon")


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(AtentoError, match="tokenizer not found"):
        load_tokenizer(tmp_path, "src")
    with pytest.raises(AtentoError, match="no tokenizers in"):
        load_tokenizers(tmp_path / "nowhere")
    (tmp_path / "bad.json").write_text('{"kind": "bpe"}', encoding="utf-8")
    with pytest.raises(AtentoError, match="unknown tokenizer kind"):
        load_tokenizer(tmp_path, "bad")
    (tmp_path / "gone.json").write_text('{"kind": "sentencepiece"}', encoding="utf-8")
    with pytest.raises(AtentoError, match="model not found"):
        load_tokenizer(tmp_path, "gone")
