"""Tiny Marian (opus-mt-shaped) model directories, built with transformers itself.

Two SentencePiece models trained here on a few hundred toy sentences ("German" with umlauts
and ß, "English", word for word), a vocab.json numbering the pieces of both as Marian's does
(`</s>` 0, `<unk>` 1, ..., `<pad>` last), transformers' `MarianTokenizer` over them, and a
2 + 2 layer, 64-wide `MarianMTModel` with opus-mt's settings (swish, scale_embedding, static
sinusoids, pad = decoder start), trained for a few seconds (random weights only repeat one
token) and saved with `save_pretrained`. `eos_bias` sets EOS's entry of `final_logits_bias`
(the rest are random), so outputs end early or late and the finishing rules get exercised.
"""

from __future__ import annotations

import io
import json
import random
import warnings
from pathlib import Path

import sentencepiece as spm
import torch

WORDS = [  # toy German -> toy English, word for word
    ("ein", "a"), ("der", "the"), ("die", "the"), ("das", "the"), ("Mädchen", "girl"),
    ("Junge", "boy"), ("Hund", "dog"), ("Straße", "street"), ("über", "over"),
    ("grün", "green"), ("spielt", "plays"), ("läuft", "runs"), ("schön", "nice"),
    ("Bäume", "trees"), ("Fluß", "river"), ("Käse", "cheese"), ("groß", "big"),
    ("klein", "small"), ("Frau", "woman"), ("Männer", "men"), ("Wasser", "water"),
    ("weiß", "white"),
]  # fmt: skip
SOURCES = ["der Hund spielt über die Straße", "ein Mädchen", "Bäume  grün Fluß schön groß",
           "die Frau läuft", "Männer   Wasser weiß Käse klein der Junge", "Hund",
           "die die die die Straße über grün spielt läuft"]  # fmt: skip
TARGETS = ["the dog plays", "a girl over the green river", "trees", "a woman runs",
           "men white water", "dog", "the street"]  # fmt: skip
_BUILT: dict[tuple, Path] = {}


def parallel(n: int, seed: int) -> tuple[list[str], list[str]]:
    """`n` word-for-word pairs of 2..8 words (toy German -> toy English)."""
    rng = random.Random(seed)
    src, tgt = [], []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 8))]
        src.append(" ".join(de for de, _ in words))
        tgt.append(" ".join(en for _, en in words))
    return src, tgt


def train_spm(texts: list[str], vocab_size: int = 60) -> bytes:
    """A unigram model with Marian's SentencePiece specials (unk 0, eos 1, no bos / pad)."""
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=out, model_type="unigram",
        vocab_size=vocab_size, hard_vocab_limit=False, character_coverage=1.0, num_threads=1,
        minloglevel=2, unk_id=0, eos_id=1, bos_id=-1, pad_id=-1, shuffle_input_sentence=False,
    )  # fmt: skip
    return out.getvalue()


def write_tokenizer_files(directory: Path) -> int:
    """source.spm, target.spm and vocab.json in `directory`; returns the vocabulary size."""
    directory.mkdir(parents=True, exist_ok=True)
    src, tgt = parallel(300, 1)
    protos = train_spm(src), train_spm(tgt)
    (directory / "source.spm").write_bytes(protos[0])
    (directory / "target.spm").write_bytes(protos[1])
    vocab = {"</s>": 0, "<unk>": 1}
    for proto in protos:
        sp = spm.SentencePieceProcessor(model_proto=proto)
        for i in range(sp.get_piece_size()):
            if not (sp.is_control(i) or sp.is_unknown(i)):
                vocab.setdefault(sp.id_to_piece(i), len(vocab))
    vocab["<pad>"] = len(vocab)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    return len(vocab)


def hf_tokenizer(directory: Path):
    from transformers import MarianTokenizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Recommended: pip install sacremoses."
        return MarianTokenizer.from_pretrained(directory)


def build_marian(
    directory: Path, *, eos_bias: float = 0.0, seed: int = 0, train_steps: int = 120, **overrides
) -> Path:
    """A saved MarianMTModel + MarianTokenizer directory (module doc), trained for
    `train_steps` Adam steps on toy pairs (a few seconds: random weights repeat one token, a
    little training gives outputs of varied lengths that end with EOS by themselves), then
    `eos_bias` added to EOS's logit; `overrides` change config.json's keys."""
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    size = write_tokenizer_files(directory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = MarianTokenizer(source_spm=str(directory / "source.spm"),
                              target_spm=str(directory / "target.spm"),
                              vocab=str(directory / "vocab.json"))  # fmt: skip
    settings = dict(
        vocab_size=size, d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
        decoder_ffn_dim=128, activation_function="swish", scale_embedding=True,
        max_position_embeddings=64, pad_token_id=size - 1, decoder_start_token_id=size - 1,
        eos_token_id=0, forced_eos_token_id=0,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = MarianMTModel(MarianConfig(**{**settings, **overrides}))
    train(model, tok, train_steps, seed)
    with torch.no_grad():  # a bias on every logit (so that the import must carry it), EOS's
        model.final_logits_bias.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(seed))
        model.final_logits_bias[0, 0] = eos_bias
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def train(model, tok, steps: int, seed: int) -> None:
    """`steps` AdamW steps of 32 toy pairs; leaves the model in eval mode."""
    src, tgt = parallel(400, seed + 3)
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        rows = rng.sample(range(len(src)), 32)
        batch = tok([src[i] for i in rows], text_target=[tgt[i] for i in rows],
                    return_tensors="pt", padding=True)  # fmt: skip
        batch["labels"][batch["labels"] == tok.pad_token_id] = -100
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()


def marian_dir(tmp_path_factory, **kwargs) -> Path:
    """`build_marian(**kwargs)` once per test session (kept in a session temporary folder)."""
    key = tuple(sorted(kwargs.items()))
    if key not in _BUILT:
        _BUILT[key] = build_marian(tmp_path_factory.mktemp("marian"), **kwargs)
    return _BUILT[key]


def hf_model(directory: Path):
    from transformers import MarianMTModel

    return MarianMTModel.from_pretrained(directory).eval()


def import_run(directory: Path, out: Path) -> Path:
    """`atento import hf DIRECTORY --out OUT` through the command line; returns OUT."""
    from atento.cli.main import main

    if not (out / "checkpoint_best").exists():
        assert main(["import", "hf", str(directory), "--out", str(out)], guard=False) == 0
    return out
