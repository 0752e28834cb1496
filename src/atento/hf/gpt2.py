"""GPT-2 (`GPT2LMHeadModel`, `model_type: gpt2`) -> `model.arch: gpt`, `task: lm`.

GPT-2 (Radford et al. 2019) is atento's pre-norm GPT with GELU's tanh approximation
(`gelu_new`: `model.activation: gelu_tanh`), learned positions (`model.context = n_positions`),
a final LayerNorm and an output layer tied to the token embedding. Its linear layers are
`Conv1D`s, whose weights are stored (in, out): transposed here into `nn.Linear`'s (out, in);
the fused query/key/value projection `c_attn` (D, 3D) is split into three.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from atento.errors import AtentoError
from atento.hf.files import NO_DATA, Imported, config_value, load_weights, take, unsupported
from atento.hf.tokenizer import read_tokenizer

# GPT2Config's defaults (a config.json written by save_pretrained may leave them out)
DEFAULTS: dict[str, Any] = {
    "vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12,
    "n_inner": None, "activation_function": "gelu_new", "resid_pdrop": 0.1, "embd_pdrop": 0.1,
    "attn_pdrop": 0.1, "layer_norm_epsilon": 1e-5, "scale_attn_weights": True,
    "scale_attn_by_inverse_layer_idx": False, "add_cross_attention": False,
    "tie_word_embeddings": True,
}  # fmt: skip
ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu",
               "relu": "relu"}  # fmt: skip
ARCHITECTURES = ("GPT2LMHeadModel", "GPT2Model")


def model_section(model_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """atento's `model` section for GPT-2's config.json; unsupported options are errors."""
    c = config_value(config, DEFAULTS)
    act = c("activation_function")
    if act not in ACTIVATIONS:
        raise unsupported(model_dir, "activation_function", act, ", ".join(ACTIVATIONS))
    for key, want in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                      ("add_cross_attention", False), ("tie_word_embeddings", True)):  # fmt: skip
        if c(key) != want:
            raise unsupported(model_dir, key, c(key), f"atento implements {key}={want}")
    d = int(c("n_embd"))
    return {
        "arch": "gpt", "d_model": d, "heads": int(c("n_head")), "layers": int(c("n_layer")),
        "ff_size": int(c("n_inner") or 4 * d), "dropout": float(c("resid_pdrop")),
        "attention_dropout": float(c("attn_pdrop")), "positions": "learned",
        "context": int(c("n_positions")), "activation": ACTIVATIONS[act],
        "norm_eps": float(c("layer_norm_epsilon")),
    }  # fmt: skip


def convert_weights(w: dict[str, Tensor], layers: int, model_dir: Path) -> dict[str, Tensor]:
    """GPT-2's state dict (with or without the `transformer.` prefix) -> TextTransformer's."""
    w = {k.removeprefix("transformer."): v for k, v in w.items()}
    lm_head = w.pop("lm_head.weight", None)

    def get(name: str) -> Tensor:
        return take(w, name, model_dir)

    out = {"embed.weight": get("wte.weight"), "positions.embed.weight": get("wpe.weight"),
           "norm.weight": get("ln_f.weight"), "norm.bias": get("ln_f.bias")}  # fmt: skip
    out["output.weight"] = out["embed.weight"]  # tied
    if lm_head is not None and not lm_head.equal(out["embed.weight"]):
        raise unsupported(model_dir, "lm_head.weight", "untied", "an output tied to wte")
    for i in range(layers):
        h, a = f"h.{i}.", f"layers.{i}."
        q, k, v = get(h + "attn.c_attn.weight").t().chunk(3, dim=0)  # Conv1D (D, 3D) -> 3 x (D, D)
        qb, kb, vb = get(h + "attn.c_attn.bias").chunk(3)
        for name, weight, bias in (("q", q, qb), ("k", k, kb), ("v", v, vb)):
            out[f"{a}self_attn.{name}_proj.weight"] = weight.contiguous()
            out[f"{a}self_attn.{name}_proj.bias"] = bias.contiguous()
        pairs = {"self_attn.out_proj": "attn.c_proj", "ff.w1": "mlp.c_fc", "ff.w2": "mlp.c_proj"}
        for mine, theirs in pairs.items():
            out[f"{a}{mine}.weight"] = get(f"{h}{theirs}.weight").t().contiguous()
            out[f"{a}{mine}.bias"] = get(f"{h}{theirs}.bias")
        for mine, theirs in (("res_attn.norm", "ln_1"), ("res_ff.norm", "ln_2")):
            out[f"{a}{mine}.weight"] = get(f"{h}{theirs}.weight")
            out[f"{a}{mine}.bias"] = get(f"{h}{theirs}.bias")
    # buffers of older checkpoints: the causal mask and its fill value
    leftover = [k for k in w if not k.endswith((".attn.bias", ".attn.masked_bias"))]
    if leftover:
        raise unsupported(model_dir, "weights", leftover[0], "GPT-2's own tensors only")
    return out


def convert(model_dir: Path, config: dict[str, Any]) -> Imported:
    """A GPT-2 directory -> a language-model run (`task: lm`)."""
    archs = config.get("architectures") or ["GPT2LMHeadModel"]
    if archs[0] not in ARCHITECTURES:
        raise unsupported(model_dir, "architectures", archs[0], ", ".join(ARCHITECTURES))
    model = model_section(model_dir, config)
    tok = read_tokenizer(model_dir, "gpt2", config)
    if tok.eos_id is None:
        raise AtentoError(f"{model_dir}: the tokenizer has no <|endoftext|> (GPT-2's EOS)")
    weights = convert_weights(load_weights(model_dir), model["layers"], model_dir)
    data = {"train": NO_DATA, "block_size": min(model["context"], 1024)}
    cfg = {"task": "lm", "model": model, "data": data}
    return Imported(config=cfg, tokenizers={"text": tok}, weights=weights)
