"""Marian (`MarianMTModel`, the opus-mt models) -> `task: translation`, `model.arch: transformer`.

Marian's Transformer is atento's encoder-decoder with the options `config.json` names:

    post-norm layers (LayerNorm(x + sublayer(x)), eps 1e-5)   model.pre_norm: false
    activation_function (opus-mt: swish)                       model.activation
    scale_embedding (opus-mt: true, x sqrt(d_model))           model.scale_embeddings
    static sinusoids, sin in the first half, cos in the second model.sinusoids: halves
    final_logits_bias (a fixed bias on the logits)             model.output_bias: true
    one embedding for source, target and output               model.share_embeddings: true
    decoder_start_token_id (= pad in opus-mt)                  the tokenizers' bos_id

Weights (transformers' names -> atento's), for each layer i:
    model.shared.weight                         tgt_embed / src_embed / output (one tensor)
    final_logits_bias (1, V)                    output_bias (V,)
    model.encoder.layers.i.self_attn.{q,k,v,out}_proj   encoder_layers.i.self_attn.*
    model.encoder.layers.i.self_attn_layer_norm        encoder_layers.i.res_attn.norm
    model.encoder.layers.i.fc1 / fc2 / final_layer_norm  encoder_layers.i.ff.w1 / w2 / res_ff.norm
    model.decoder.layers.i.self_attn / encoder_attn     decoder_layers.i.self_attn / cross_attn
    model.decoder.layers.i.{self_attn,encoder_attn}_layer_norm  res_self.norm / res_cross.norm
Anything else in the config that changes the function (pre-norm, a layer norm on the
embeddings, learned positions, separate vocabularies, a different depth or width per side) is a
one-line error naming the option. Options that only change training (dropouts, layer drop) are
mapped where atento has them and noted otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from atento.errors import AtentoError
from atento.hf.files import CONFIG, Imported, load_weights, take, unsupported
from atento.hf.jsonfile import read_json_object
from atento.hf.marian_tokenizer import MarianTokenizer
from atento.nn.positional import sinusoid_table

# activation_function -> model.activation
ACTIVATIONS = {"swish": "swish", "silu": "swish", "relu": "relu", "gelu": "gelu",
               "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}  # fmt: skip
# options of the older (BART-derived) Marian configs that opus-mt directories still carry:
# (key, the value atento implements, what the other value would need)
FIXED = (
    ("normalize_before", False, "pre-norm layers; Marian's are post-norm"),
    ("normalize_embedding", False, "a LayerNorm on the embeddings"),
    ("add_final_layer_norm", False, "a final LayerNorm after each stack"),
    ("add_bias_logits", False, "a trained bias on the logits"),
    ("static_position_embeddings", True, "learned positions; Marian's are static sinusoids"),
    ("share_encoder_decoder_embeddings", True, "separate source and target vocabularies"),
    ("tie_word_embeddings", True, "an output layer apart from the embeddings"),
    ("is_decoder", False, "a decoder-only Marian (MarianForCausalLM)"),
)
SAME_ON_BOTH_SIDES = (("encoder_layers", "decoder_layers"),
                      ("encoder_attention_heads", "decoder_attention_heads"),
                      ("encoder_ffn_dim", "decoder_ffn_dim"))  # fmt: skip
LAYER_NAMES = {  # transformers' sub-module -> atento's, per side
    "encoder": {"self_attn": "self_attn", "self_attn_layer_norm": "res_attn.norm",
                "fc1": "ff.w1", "fc2": "ff.w2", "final_layer_norm": "res_ff.norm"},
    "decoder": {"self_attn": "self_attn", "encoder_attn": "cross_attn",
                "self_attn_layer_norm": "res_self.norm",
                "encoder_attn_layer_norm": "res_cross.norm", "fc1": "ff.w1", "fc2": "ff.w2",
                "final_layer_norm": "res_ff.norm"},
}  # fmt: skip
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


def _get(config: dict[str, Any], key: str, model_dir: Path, kind: type = int) -> Any:
    value = config.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
        raise AtentoError(f"{model_dir / CONFIG}: {key} must be {kind.__name__}, got {value!r}")
    return value


def model_section(model_dir: Path, config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The atento `model` section of a Marian config.json, and notes; AtentoError (naming the
    option) for anything atento's Transformer does not implement."""
    archs = config.get("architectures") or ["MarianMTModel"]
    if "MarianMTModel" not in archs:
        raise unsupported(model_dir, "architectures", archs, "atento imports MarianMTModel")
    for key, want, needs in FIXED:
        if key in config and config[key] != want:
            raise unsupported(model_dir, key, config[key], f"it needs {needs}")
    for enc, dec in SAME_ON_BOTH_SIDES:
        if config.get(enc) != config.get(dec):
            want = f"atento's Transformer has {enc}={config.get(enc)!r} on both sides"
            raise unsupported(model_dir, dec, config.get(dec), want)
    vocab = _get(config, "vocab_size", model_dir)
    if config.get("decoder_vocab_size", vocab) not in (None, vocab):
        raise unsupported(model_dir, "decoder_vocab_size", config["decoder_vocab_size"],
                          "separate source and target vocabularies")  # fmt: skip
    act = config.get("activation_function", "gelu")
    if act not in ACTIVATIONS:
        raise unsupported(model_dir, "activation_function", act, ", ".join(ACTIVATIONS))
    notes = []
    if config.get("activation_dropout", 0.0) or config.get("encoder_layerdrop", 0.0) or \
            config.get("decoder_layerdrop", 0.0):  # fmt: skip
        notes.append("activation_dropout and layer drop are not used (training only)")
    section = {
        "arch": "transformer", "d_model": _get(config, "d_model", model_dir),
        "heads": _get(config, "encoder_attention_heads", model_dir),
        "ff_size": _get(config, "encoder_ffn_dim", model_dir),
        "layers": _get(config, "encoder_layers", model_dir),
        "dropout": float(config.get("dropout", 0.1)),
        "attention_dropout": float(config.get("attention_dropout", 0.0)),
        "pre_norm": False, "positions": "sinusoidal", "sinusoids": "halves",
        "max_positions": _get(config, "max_position_embeddings", model_dir),
        "share_embeddings": True, "tie_embeddings": True, "activation": ACTIVATIONS[act],
        "scale_embeddings": bool(config.get("scale_embedding", False)), "output_bias": True,
    }  # fmt: skip
    return section, notes


def special_ids(model_dir: Path, config: dict[str, Any]) -> dict[str, int]:
    """eos / pad / bos (the decoder's start) ids from config.json."""
    ids = {}
    for what, key in (("eos", "eos_token_id"), ("pad", "pad_token_id"),
                      ("bos", "decoder_start_token_id")):  # fmt: skip
        value = config.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise unsupported(model_dir, key, value, "one token id")
        ids[what] = value
    return ids


def search_section(model_dir: Path, config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The `search` settings of generation_config.json (beam, length penalty), and notes;
    older directories have none and keep these keys in config.json."""
    path = model_dir / "generation_config.json"
    gen = read_json_object(path)
    if gen is None:
        gen = config
    search: dict[str, Any] = {}
    if isinstance(gen.get("num_beams"), int) and gen["num_beams"] >= 1:
        search["beam"] = gen["num_beams"]
    if isinstance(gen.get("length_penalty"), (int, float)) and gen["length_penalty"] >= 0:
        search["alpha"] = float(gen["length_penalty"])
    notes = []
    if gen.get("early_stopping") not in (None, True):
        notes.append(
            f"generation_config early_stopping={gen['early_stopping']!r}: atento's beam search "
            "stops a sentence at K finished hypotheses (early_stopping=true)"
        )
    return search, notes


def convert_weights(
    model_dir: Path, weights: dict[str, Tensor], layers: int, d_model: int, max_positions: int
) -> dict[str, Tensor]:
    """transformers' MarianMTModel state dict -> atento's TransformerSeq2Seq names (module
    doc); AtentoError for a missing or unexpected tensor."""
    weights = dict(weights)
    embed = weights.pop("model.shared.weight", None)
    for name in ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight",
                 "lm_head.weight"):  # fmt: skip
        other = weights.pop(name, None)
        if embed is None:
            embed = other
        elif other is not None and not torch.equal(other, embed):
            raise unsupported(model_dir, "share_encoder_decoder_embeddings", False,
                              f"{name} differs from the shared embedding")  # fmt: skip
    if embed is None:
        raise AtentoError(f"{model_dir}: the weights lack model.shared.weight")
    table = sinusoid_table(torch.arange(max_positions), d_model, "halves")
    for side in ("encoder", "decoder"):
        pos = weights.pop(f"model.{side}.embed_positions.weight", None)
        fits = pos is None or (
            pos.shape == table.shape and torch.allclose(pos.float(), table, atol=1e-5)
        )
        if not fits:
            want = f"model.{side}.embed_positions are not Marian's sinusoids"
            raise unsupported(model_dir, "static_position_embeddings", False, want)
    bias = weights.pop("final_logits_bias", None)
    bias = torch.zeros(embed.size(0)) if bias is None else bias.reshape(-1)
    out = {"tgt_embed.weight": embed, "src_embed.weight": embed, "output.weight": embed,
           "output_bias": bias}  # fmt: skip
    for side, names in LAYER_NAMES.items():
        for i in range(layers):
            for theirs, mine in names.items():
                parts = [f"{p}." for p in PROJECTIONS] if theirs.endswith("attn") else [""]
                for part in parts:
                    for kind in ("weight", "bias"):
                        name = f"model.{side}.layers.{i}.{theirs}.{part}{kind}"
                        mine_name = f"{side}_layers.{i}.{mine}.{part}{kind}"
                        out[mine_name] = take(weights, name, model_dir)
    if weights:
        raise AtentoError(f"{model_dir}: unexpected weights {sorted(weights)[:3]} (a config with "
                          f"more layers than {layers}?)")  # fmt: skip
    return out


def convert(model_dir: Path, config: dict[str, Any]) -> Imported:
    """A Hugging Face MarianMTModel directory -> atento's translation run (module doc)."""
    model, notes = model_section(model_dir, config)
    ids = special_ids(model_dir, config)
    search, search_notes = search_section(model_dir, config)
    tokenizers = {
        role: MarianTokenizer.from_files(model_dir / spm, model_dir / "vocab.json",
                                         specials={**ids, "unk": None})
        for role, spm in (("src", "source.spm"), ("tgt", "target.spm"))
    }  # fmt: skip
    vocab = config["vocab_size"]
    if tokenizers["src"].vocab_size != vocab:
        raise AtentoError(f"{model_dir / 'vocab.json'}: {tokenizers['src'].vocab_size} pieces, "
                          f"but config.json's vocab_size is {vocab}")  # fmt: skip
    if (model_dir / "target_vocab.json").is_file():
        raise unsupported(model_dir, "separate_vocabs", True, "one vocab.json for both sides")
    raw = load_weights(model_dir)
    weights = convert_weights(model_dir, raw, model["layers"], model["d_model"],
                              model["max_positions"])  # fmt: skip
    shape = tuple(weights["tgt_embed.weight"].shape)
    if shape != (vocab, model["d_model"]):
        raise AtentoError(
            f"{model_dir}: the embedding is {shape}, config.json says ({vocab}, {model['d_model']})"
        )
    cfg = {
        "task": "translation", "model": model,
        "data": {"joint_vocab": True, "max_len": model["max_positions"] - 2},
        "search": search,
    }  # fmt: skip
    return Imported(config=cfg, tokenizers=tokenizers, weights=weights,
                    notes=notes + search_notes)  # fmt: skip
