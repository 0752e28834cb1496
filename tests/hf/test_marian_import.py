"""Importing a Marian (opus-mt) model: the tokenizer's ids and text against transformers'
`MarianTokenizer`, the logits against `MarianMTModel`, and the one-line refusals."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from atento.cli.main import main
from atento.data.tokenizers import load_tokenizer, tokenizer_from_state
from atento.rundir import load_run

from .marian_models import SOURCES, TARGETS, hf_model, hf_tokenizer, import_run

pytest.importorskip("transformers")

TEXTS = [
    *SOURCES,
    "  der   Hund  ",  # runs of spaces, leading and trailing
    "Ångström über Straße ÿ",  # non-ASCII letters, some outside the pieces (UNK)
    "xyz qq",  # no known piece at all
    ">>de<< der Hund",  # a language code (multilingual targets)
    "",
]


@pytest.fixture
def run(marian_run):
    return marian_run


def test_token_ids_equal_transformers(marian, run):
    hf = hf_tokenizer(marian)
    loaded = load_run(run, device="cpu")
    src, tgt = loaded.tokenizers["src"], loaded.tokenizers["tgt"]
    for text in [*TEXTS, *TARGETS]:
        assert src.encode(text) + [src.eos_id] == hf(text).input_ids, text
        assert tgt.encode(text) + [tgt.eos_id] == hf(text_target=text).input_ids, text
        assert src.pieces(text) == hf.tokenize(text) or "<unk>" in hf.tokenize(text)
    assert src.encode_batch(TEXTS) == [src.encode(t) for t in TEXTS]


def test_special_ids_are_the_models(marian, run):
    hf = hf_tokenizer(marian)
    config = json.loads((marian / "config.json").read_text())
    for tok in load_run(run, device="cpu").tokenizers.values():
        assert tok.kind == "marian"
        assert (tok.eos_id, tok.unk_id, tok.pad_id) == (0, 1, hf.pad_token_id)
        assert tok.bos_id == config["decoder_start_token_id"] == tok.pad_id  # Marian starts at PAD
        assert tok.mask_id is None
        assert tok.vocab_size == config["vocab_size"] == len(hf.get_vocab())


def test_decoding_round_trips(marian, run):
    hf = hf_tokenizer(marian)
    toks = load_run(run, device="cpu").tokenizers
    for role, side in (("src", SOURCES), ("tgt", TARGETS)):
        tok = toks[role]
        for text in side:
            ids = tok.encode(text)
            assert tok.unk_id not in ids
            assert tok.decode(ids) == " ".join(text.split())  # runs of spaces normalised
            assert tok.decode([*ids, tok.eos_id, tok.pad_id]) == hf.decode(
                [*ids, tok.eos_id], skip_special_tokens=True
            )
    # an unknown piece is written as atento's other tokenizers write it (transformers drops it)
    src = toks["src"]
    assert src.decode(src.encode("Ångström")) == "⁇ngström"


def test_tokenizer_state_and_files_round_trip(run, tmp_path):
    for tok in load_run(run, device="cpu").tokenizers.values():
        again = tokenizer_from_state(tok.state())
        tok.save(tmp_path, "side")
        loaded = load_tokenizer(tmp_path, "side")
        for other in (again, loaded):
            assert other.state() == tok.state()
            assert [other.encode(t) for t in TEXTS] == [tok.encode(t) for t in TEXTS]
    # the run directory's own copies (src.json + src.spm, tgt.json + tgt.spm)
    assert load_tokenizer(run, "src").state() == load_run(run).tokenizers["src"].state()


def test_logits_equal_transformers_on_a_padded_batch(marian, run):
    model, hf = hf_model(marian), hf_tokenizer(marian)
    loaded = load_run(run, device="cpu")
    cfg = loaded.cfg.model
    assert (cfg.activation, cfg.sinusoids, cfg.scale_embeddings, cfg.pre_norm) == (
        "swish",
        "halves",
        True,
        False,
    )
    batch = hf(SOURCES, text_target=TARGETS, return_tensors="pt", padding=True)
    labels, pad = batch["labels"], hf.pad_token_id
    assert (batch["attention_mask"] == 0).any()  # sources of different lengths: padded
    start = torch.full((labels.size(0), 1), model.config.decoder_start_token_id)
    tgt_in = torch.cat([start, labels[:, :-1]], dim=1)
    with torch.no_grad():
        ref = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    decoder_input_ids=tgt_in).logits  # fmt: skip
        mine, _ = loaded.model(batch["input_ids"], batch["attention_mask"].bool(), tgt_in)
    real = labels != pad
    assert ref.abs().max() > 1.0  # not a degenerate model
    torch.testing.assert_close(mine[real], ref[real], atol=1e-4, rtol=0)
    # the final_logits_bias is in: without it the logits differ
    bias = loaded.model.output_bias
    assert bias is not None and bias.abs().max() > 0
    torch.testing.assert_close(bias, model.final_logits_bias[0])


class Sneaky:
    """An object only code can rebuild: a pickle holding it is refused (weights_only)."""


def _broken(marian, tmp_path, **changes):
    """A copy of the model directory with config.json's keys changed (None removes one)."""
    bad = tmp_path / "bad"
    shutil.copytree(marian, bad)
    config = json.loads((bad / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (bad / "config.json").write_text(json.dumps(config))
    return bad


@pytest.mark.parametrize(
    "changes, named",
    [
        ({"normalize_before": True}, "normalize_before=True"),
        ({"normalize_embedding": True}, "normalize_embedding=True"),
        ({"add_bias_logits": True}, "add_bias_logits=True"),
        ({"static_position_embeddings": False}, "static_position_embeddings=False"),
        ({"share_encoder_decoder_embeddings": False}, "share_encoder_decoder_embeddings=False"),
        ({"activation_function": "tanh"}, "activation_function='tanh'"),
        ({"decoder_layers": 3}, "decoder_layers=3"),
        ({"decoder_vocab_size": 7}, "decoder_vocab_size=7"),
        ({"eos_token_id": [0, 2]}, "eos_token_id=[0, 2]"),
        ({"architectures": ["MarianForCausalLM"]}, "architectures"),
        ({"vocab_size": 500, "decoder_vocab_size": 500}, "vocab_size is 500"),
        ({"encoder_layers": 1, "decoder_layers": 1}, "unexpected weights"),
        ({"d_model": 32}, "the embedding is"),
        ({"encoder_layers": 3, "decoder_layers": 3}, "lack model.encoder.layers.2"),
    ],
)
def test_unsupported_options_are_one_line_errors(marian, tmp_path, capsys, changes, named):
    bad = _broken(marian, tmp_path, **changes)
    assert main(["import", "hf", str(bad), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err, err
    assert not (tmp_path / "run" / "checkpoint_best").exists()


@pytest.mark.parametrize("missing", ["vocab.json", "source.spm", "target.spm"])
def test_missing_tokenizer_files_are_named(marian, tmp_path, capsys, missing):
    bad = _broken(marian, tmp_path)
    (bad / missing).unlink()
    assert main(["import", "hf", str(bad), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and missing in err, err


def test_a_pickle_that_needs_code_is_refused(marian, tmp_path, capsys):
    bad = _broken(marian, tmp_path)
    (bad / "model.safetensors").unlink()
    torch.save({"model.shared.weight": Sneaky()}, bad / "pytorch_model.bin")
    assert main(["import", "hf", str(bad), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pytorch_model.bin" in err, err


def test_pytorch_model_bin_with_every_tied_copy_imports(marian, run, tmp_path):
    """Older opus-mt directories hold pytorch_model.bin with the embedding three times, the
    positions' tables and lm_head.weight: all checked against the shared one, then dropped."""
    from safetensors.torch import load_file

    from atento.nn.positional import sinusoid_table

    bad = _broken(marian, tmp_path)
    weights = load_file(str(bad / "model.safetensors"))
    (bad / "model.safetensors").unlink()
    shared = weights["model.shared.weight"]
    table = sinusoid_table(torch.arange(64), 64, "halves")
    extra = {"model.encoder.embed_tokens.weight": shared, "lm_head.weight": shared,
             "model.decoder.embed_tokens.weight": shared,
             "model.encoder.embed_positions.weight": table,
             "model.decoder.embed_positions.weight": table}  # fmt: skip
    torch.save({**weights, **{k: v.clone() for k, v in extra.items()}}, bad / "pytorch_model.bin")
    out = import_run(bad, tmp_path / "run")
    a, b = load_run(out).model.state_dict(), load_run(run).model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # an lm_head that is not the embedding is another model: refused
    torch.save({**weights, "lm_head.weight": shared + 1}, bad / "pytorch_model.bin")
    assert main(["import", "hf", str(bad), "--out", str(tmp_path / "run2")]) == 2


def test_search_settings_come_from_the_generation_config(marian, tmp_path, capsys):
    """generation_config.json's num_beams and length_penalty become `search.beam` / `alpha`
    (older directories keep them in config.json); early_stopping=false is noted, since atento
    stops a sentence at K finished hypotheses."""
    newer = _broken(marian, tmp_path / "a")
    gen = json.loads((newer / "generation_config.json").read_text())
    gen.update(num_beams=4, length_penalty=0.8, early_stopping=False)
    (newer / "generation_config.json").write_text(json.dumps(gen))
    out = import_run(newer, tmp_path / "run_a")
    assert "early_stopping=False" in capsys.readouterr().out
    search = load_run(out).cfg.search
    assert (search.beam, search.alpha) == (4, 0.8)
    older = _broken(marian, tmp_path / "b", num_beams=6, length_penalty=0.5)
    (older / "generation_config.json").unlink()
    search = load_run(import_run(older, tmp_path / "run_b")).cfg.search
    assert (search.beam, search.alpha) == (6, 0.5)


def test_cross_attention_weights_equal_transformers(marian, run, tmp_path):
    """What `atento attention` draws (any layer, any head) is transformers' cross-attention."""
    from transformers import MarianMTModel

    model = MarianMTModel.from_pretrained(marian, attn_implementation="eager").eval()
    hf = hf_tokenizer(marian)
    batch = hf(SOURCES[:3], text_target=TARGETS[:3], return_tensors="pt", padding=True)
    start = torch.full((3, 1), model.config.decoder_start_token_id)
    tgt_in = torch.cat([start, batch["labels"][:, :-1]], dim=1)
    loaded = load_run(run, device="cpu")
    with torch.no_grad():
        ref = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    decoder_input_ids=tgt_in, output_attentions=True).cross_attentions  # fmt: skip
        for layer in (0, 1):
            mine = loaded.model.attention_heads(batch["input_ids"], batch["attention_mask"].bool(),
                                                tgt_in, layer=layer)  # fmt: skip
            torch.testing.assert_close(mine, ref[layer], atol=1e-5, rtol=0)
    out = tmp_path / "attention.png"
    argv = ["attention", str(run), SOURCES[0], "--out", str(out), "--layer", "0", "--head", "2"]
    assert main(argv) == 0 and out.is_file()
