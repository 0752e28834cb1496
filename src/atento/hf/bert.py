"""BERT (`model_type: bert`) -> `model.arch: bert`: `BertForMaskedLM` and `BertModel` as
`task: mlm`, `BertForSequenceClassification` as `task: classify`.

BERT (Devlin et al. 2019) is atento's encoder with post-norm layers (`model.pre_norm: false`,
no final norm), the exact GELU, LayerNorm epsilon 1e-12, a LayerNorm after the embedding sum
(`embed_norm`), token-type embeddings (`type_vocab`; one sentence reads type 0), and:
- the masked-LM head: a transform (dense, GELU, LayerNorm: `head_transform`) before the output
  layer tied to the word embeddings, with a bias (`output_bias`). `BertModel` has no head: its
  run's output layer is the tied embedding alone (good for attention views and fine-tuning,
  not for predicting masked words; the import says so);
- the pooler (dense + tanh on the [CLS] state: `pooler`, with `pooling: cls`), which the
  sequence classifier reads; kept in the body for an MLM checkpoint that has it, so that
  fine-tuning a classifier from the imported run (`model.init_from`) starts from it too.
[CLS] is atento's BOS, [SEP] its EOS; [MASK] is an id of BERT's vocabulary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from atento.errors import AtentoError
from atento.hf.files import NO_DATA, Imported, config_value, load_weights, take, unsupported
from atento.hf.tokenizer import read_tokenizer

# BertConfig's defaults (a config.json written by save_pretrained may leave them out)
DEFAULTS: dict[str, Any] = {
    "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 2,
    "layer_norm_eps": 1e-12, "position_embedding_type": "absolute", "is_decoder": False,
    "add_cross_attention": False, "tie_word_embeddings": True,
}  # fmt: skip
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
               "relu": "relu", "silu": "swish", "swish": "swish"}  # fmt: skip
MLM = ("BertForMaskedLM", "BertForPreTraining", "BertModel")
CLASSIFY = ("BertForSequenceClassification",)


def model_section(model_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """atento's `model` section for BERT's config.json; unsupported options are errors."""
    c = config_value(config, DEFAULTS)
    act = c("hidden_act")
    if act not in ACTIVATIONS:
        raise unsupported(model_dir, "hidden_act", act, ", ".join(ACTIVATIONS))
    for key, want in (("position_embedding_type", "absolute"), ("is_decoder", False),
                      ("add_cross_attention", False), ("tie_word_embeddings", True)):  # fmt: skip
        if c(key) != want:
            raise unsupported(model_dir, key, c(key), f"atento implements {key}={want}")
    return {
        "arch": "bert", "d_model": int(c("hidden_size")), "heads": int(c("num_attention_heads")),
        "layers": int(c("num_hidden_layers")), "ff_size": int(c("intermediate_size")),
        "dropout": float(c("hidden_dropout_prob")),
        "attention_dropout": float(c("attention_probs_dropout_prob")), "positions": "learned",
        "context": int(c("max_position_embeddings")), "pre_norm": False,
        "activation": ACTIVATIONS[act], "norm_eps": float(c("layer_norm_eps")),
        "embed_norm": True, "type_vocab": int(c("type_vocab_size")), "pooling": "cls",
    }  # fmt: skip


def _renamed(weights: dict[str, Tensor]) -> dict[str, Tensor]:
    """Older checkpoints' LayerNorm `gamma` / `beta` as `weight` / `bias`; buffers dropped."""
    out = {}
    for key, value in weights.items():
        if key.endswith("position_ids"):
            continue
        if key.endswith(".gamma") or key.endswith(".beta"):
            key = key.rsplit(".", 1)[0] + (".weight" if key.endswith("gamma") else ".bias")
        out[key] = value
    return out


def body_weights(w: dict[str, Tensor], layers: int, model_dir: Path) -> dict[str, Tensor]:
    """Remove BERT's embeddings, layers and pooler (prefix `bert.` or none) from `w` and
    return them under TextTransformer's names."""

    def get(name: str) -> Tensor:
        key = "bert." + name if "bert." + name in w else name
        return take(w, key, model_dir)

    e = "embeddings."
    out = {"embed.weight": get(e + "word_embeddings.weight"),
           "positions.embed.weight": get(e + "position_embeddings.weight"),
           "types.weight": get(e + "token_type_embeddings.weight"),
           "embed_norm.weight": get(e + "LayerNorm.weight"),
           "embed_norm.bias": get(e + "LayerNorm.bias")}  # fmt: skip
    out["output.weight"] = out["embed.weight"]  # tied
    pairs = {
        "self_attn.q_proj": "attention.self.query", "self_attn.k_proj": "attention.self.key",
        "self_attn.v_proj": "attention.self.value", "self_attn.out_proj": "attention.output.dense",
        "res_attn.norm": "attention.output.LayerNorm", "ff.w1": "intermediate.dense",
        "ff.w2": "output.dense", "res_ff.norm": "output.LayerNorm",
    }  # fmt: skip
    for i in range(layers):
        for mine, theirs in pairs.items():
            for part in ("weight", "bias"):
                out[f"layers.{i}.{mine}.{part}"] = get(f"encoder.layer.{i}.{theirs}.{part}")
    if "bert.pooler.dense.weight" in w or "pooler.dense.weight" in w:
        out["pooler.weight"] = get("pooler.dense.weight")
        out["pooler.bias"] = get("pooler.dense.bias")
    return out


def mlm_head(w: dict[str, Tensor], model_dir: Path, embed: Tensor) -> dict[str, Tensor]:
    """BertForMaskedLM's prediction head: the transform and the output bias (the decoder's
    weight is the word embedding, tied)."""
    p = "cls.predictions."
    decoder = w.pop(p + "decoder.weight", None)
    if decoder is not None and not decoder.equal(embed):
        raise unsupported(model_dir, "cls.predictions.decoder.weight", "untied",
                          "a decoder tied to the word embeddings")  # fmt: skip
    bias = take(w, p + "bias", model_dir)
    w.pop(p + "decoder.bias", None)  # the same tensor as cls.predictions.bias
    out = {"output.bias": bias}
    for mine, theirs in (("dense", "dense"), ("norm", "LayerNorm")):
        for part in ("weight", "bias"):
            out[f"transform.{mine}.{part}"] = take(w, f"{p}transform.{theirs}.{part}", model_dir)
    return out


def _labels(model_dir: Path, config: dict[str, Any]) -> list[str]:
    """The class names in index order (config.json's id2label)."""
    id2label = config.get("id2label") or {}
    n = int(config.get("num_labels", len(id2label) or 2))
    if config.get("problem_type") not in (None, "single_label_classification") or n < 2:
        what = config.get("problem_type") or "regression (num_labels=1)"
        raise unsupported(model_dir, "problem_type", what, "single_label_classification")
    labels = [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(n)]
    if len(set(labels)) != n:
        raise AtentoError(f"{model_dir / 'config.json'}: id2label repeats a label")
    return labels


def convert(model_dir: Path, config: dict[str, Any]) -> Imported:
    """A BERT directory -> an MLM run or a classification run (module doc)."""
    from atento.data.tokenizers import LabelSet

    arch = (config.get("architectures") or ["BertModel"])[0]
    if arch not in MLM + CLASSIFY:
        raise unsupported(model_dir, "architectures", arch, ", ".join(MLM + CLASSIFY))
    model = model_section(model_dir, config)
    tok = read_tokenizer(model_dir, "bert", config)
    missing = [r for r in ("bos", "eos", "pad", "mask") if tok.specials[r] is None]
    if missing:
        raise AtentoError(f"{model_dir}: the tokenizer lacks BERT's {missing[0]} token")
    w = _renamed(load_weights(model_dir))
    body = body_weights(w, model["layers"], model_dir)
    model["pooler"] = "pooler.weight" in body
    notes = []
    if arch in CLASSIFY:
        labels = LabelSet(_labels(model_dir, config))
        if not model["pooler"]:
            raise AtentoError(f"{model_dir}: the weights lack bert.pooler (the classifier's input)")
        weights = {"body." + k: v for k, v in body.items()}
        weights["head.weight"] = take(w, "classifier.weight", model_dir)
        weights["head.bias"] = take(w, "classifier.bias", model_dir)
        data = {"train": NO_DATA, "valid": NO_DATA}
        cfg = {"task": "classify", "model": model, "data": data}
        tokenizers = {"text": tok, "labels": labels}
    else:
        weights = body
        if any(k.startswith("cls.predictions.") for k in w):
            weights.update(mlm_head(w, model_dir, body["embed.weight"]))
            model.update(head_transform=True, output_bias=True)
        else:
            notes.append(f"{arch} has no masked-LM head: the output layer is the tied word "
                         "embedding alone (fine for attention and fine-tuning)")  # fmt: skip
        cfg = {"task": "mlm", "model": model, "data": {"train": NO_DATA}}
        tokenizers = {"text": tok}
    dropped = sorted({k.rsplit(".", 1)[0] for k in w})
    if any(not k.startswith("cls.seq_relationship") for k in dropped):
        raise unsupported(model_dir, "weights", dropped[0], "BERT's own tensors only")
    if dropped:
        notes.append("dropped the next-sentence head (cls.seq_relationship)")
    return Imported(config=cfg, tokenizers=tokenizers, weights=weights, notes=notes)
