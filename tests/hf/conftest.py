"""Tiny random GPT-2 and BERT models built by `transformers` itself (2 layers, width 64), with
tokenizers trained here by `tokenizers` and wrapped with `tokenizer_object=` (in transformers 5
the `vocab_file=` constructors can silently give an empty vocabulary), saved with
`save_pretrained` and imported through the command line. Each model is built once a session.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from atento.cli.main import main

try:  # transformers is a test extra: without it every module here skips (its importorskip)
    import tokenizers
    import transformers
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers
except ImportError:  # pragma: no cover
    tokenizers = transformers = None

# runs of spaces, non-ASCII letters (accents, Greek, CJK), punctuation and line breaks
TEXTS = [
    "Héllo   wörld, naïve café!",
    "The quick brown fox  jumps over the lazy dog.",
    "Ünïcödé  tëxt with   spaces and a tab\there.",
    "Straße, Ελληνικά, 日本語 and Ñandú.",
    "hello world, hello again; the end.",
    "A line\nand the next one.",
] * 30
PROBES = [
    "Héllo   wörld,  naïve café!",
    "the  quick   Ünïcödé fox.",
    "Straße Ελληνικά 日本語",
    "  leading and trailing  ",
    "a\nb",
]
EOT = "<|endoftext|>"
# as in BERT's vocabulary, the specials are not atento's PAD 0 / UNK 1 / BOS 2 / EOS 3
BERT_SPECIALS = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def byte_level_bpe() -> tokenizers.Tokenizer:
    """GPT-2's kind of tokenizer trained on TEXTS (<|endoftext|> is the last id, as GPT-2's)."""
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=320, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tok.train_from_iterator(TEXTS, trainer)
    tok.add_special_tokens([EOT])
    return tok


def wordpiece(lowercase: bool = True) -> tokenizers.Tokenizer:
    """BERT's kind of tokenizer trained on TEXTS ([PAD] 0, [UNK] 3, [CLS] 4, [SEP] 5, [MASK] 6)."""
    tok = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=220, special_tokens=BERT_SPECIALS,
                                        show_progress=False)  # fmt: skip
    tok.train_from_iterator(TEXTS, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 4), ("[SEP]", 5)],
    )  # fmt: skip
    return tok


def fast(tok: tokenizers.Tokenizer, family: str):
    """The library's tokenizer object around `tok`, as a published model directory has it."""
    if family == "gpt2":
        return transformers.PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token=EOT, eos_token=EOT, unk_token=EOT
        )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
        unk_token="[UNK]", mask_token="[MASK]",
    )  # fmt: skip


def import_hf(model_dir: Path, out: Path) -> Path:
    """`atento import hf MODEL_DIR --out OUT` (exit 0 asserted)."""
    assert main(["import", "hf", str(model_dir), "--out", str(out)], guard=False) == 0
    return out


def gpt2_config(vocab_size: int, **kw):
    """<|endoftext|> is the last id."""
    return transformers.GPT2Config(
        n_layer=2, n_embd=64, n_head=4, n_positions=128, vocab_size=vocab_size,
        bos_token_id=vocab_size - 1, eos_token_id=vocab_size - 1, **kw,
    )  # fmt: skip


def bert_config(vocab_size: int, **kw):
    return transformers.BertConfig(
        num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128,
        max_position_embeddings=64, vocab_size=vocab_size, **kw,
    )  # fmt: skip


def eos_biased(model, eos: int, strength: float) -> None:
    """Make the final LayerNorm's bias point along EOS's embedding, so that random weights
    emit EOS within a few steps (the searches' finishing rules then run)."""
    with torch.no_grad():
        e = model.transformer.wte.weight[eos]
        model.transformer.ln_f.bias.copy_(strength * e / e.norm())


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory) -> Path:
    """A GPT2LMHeadModel directory (tokenizer.json), EOS biased."""
    d = tmp_path_factory.mktemp("hf") / "gpt2"
    tok = byte_level_bpe()
    torch.manual_seed(0)
    V = tok.get_vocab_size()
    model = transformers.GPT2LMHeadModel(gpt2_config(V)).eval()
    eos_biased(model, V - 1, 2.0)
    model.save_pretrained(d)
    fast(tok, "gpt2").save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def gpt2_run(gpt2_dir, tmp_path_factory) -> Path:
    return import_hf(gpt2_dir, tmp_path_factory.mktemp("runs") / "gpt2")


@pytest.fixture(scope="session")
def bert_dirs(tmp_path_factory) -> dict[str, Path]:
    """BertForMaskedLM, BertForSequenceClassification (labels neg, pos) and BertModel
    directories over one WordPiece tokenizer."""
    root = tmp_path_factory.mktemp("hf")
    tok = wordpiece()
    config = bert_config(tok.get_vocab_size(), id2label={0: "neg", 1: "pos"},
                         label2id={"neg": 0, "pos": 1})  # fmt: skip
    dirs = {}
    for kind, cls in (("mlm", transformers.BertForMaskedLM),
                      ("classify", transformers.BertForSequenceClassification),
                      ("base", transformers.BertModel)):  # fmt: skip
        torch.manual_seed(1)
        model = cls(config).eval()
        dirs[kind] = root / kind
        model.save_pretrained(dirs[kind])
        fast(tok, "bert").save_pretrained(dirs[kind])
    return dirs


@pytest.fixture(scope="session")
def bert_runs(bert_dirs, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {kind: import_hf(d, root / f"bert_{kind}") for kind, d in bert_dirs.items()}


def copy_dir(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ---------------------------------------------------------------- the tiny Marian (opus-mt)
@pytest.fixture(scope="session")
def marian(tmp_path_factory):
    """A tiny opus-mt-shaped Marian directory (tests/hf/marian_models.py), built once."""
    from .marian_models import marian_dir

    return marian_dir(tmp_path_factory)


@pytest.fixture(scope="session")
def marian_run(marian, tmp_path_factory):
    """`marian` imported through the command line."""
    from .marian_models import import_run

    return import_run(marian, tmp_path_factory.mktemp("runs") / "marian")
