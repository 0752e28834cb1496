"""Reading a Hugging Face model directory and writing the run directory it becomes.

Weights are read without executing pickle code: `model.safetensors` (preferred), else
`pytorch_model.bin` with `torch.load(weights_only=True)`, either also split into shards that
an `.index.json` lists; a checkpoint that needs code to load is refused with one line naming
the file.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from atento.checkpoints import BEST, Checkpoint, find_checkpoint, save_checkpoint
from atento.data.tokenizers import Tokenizer
from atento.errors import AtentoError
from atento.hf.jsonfile import read_json_object

SAFETENSORS, TORCH_BIN, CONFIG = "model.safetensors", "pytorch_model.bin", "config.json"
# data.train of an imported run: it was trained elsewhere, so commands that would read its
# data (evaluate without --text) say so in their "file not found" line
NO_DATA = "none (an imported model has no data of its own: give the text to score)"


@dataclass
class Imported:
    """What a family's `convert` returns: an atento config (as `config_io` reads it), the
    tokenizers by role (`text`, or `src` and `tgt`), the weights by atento's parameter names,
    and notes to print (what was dropped or mapped, one line each)."""

    config: dict[str, Any]
    tokenizers: dict[str, Tokenizer]
    weights: dict[str, Tensor]
    notes: list[str] = field(default_factory=list)


def read_config(model_dir: Path) -> dict[str, Any]:
    """`model_dir/config.json` as a dict; AtentoError naming the file otherwise."""
    if not model_dir.is_dir():
        raise AtentoError(f"model directory not found: {model_dir}")
    missing = "not found (a Hugging Face model directory has config.json)"
    return read_json_object(model_dir / CONFIG, missing=missing)


def load_weights(model_dir: Path) -> dict[str, Tensor]:
    """The state dict of `model_dir`: `model.safetensors`, else `pytorch_model.bin` read
    weights-only, each also as shards listed by its `.index.json` (larger models)."""
    for name, read in ((SAFETENSORS, _read_safetensors), (TORCH_BIN, _read_torch_bin)):
        if (model_dir / name).is_file():
            return read(model_dir / name)
        index = model_dir / f"{name}.index.json"
        if index.is_file():
            state: dict[str, Tensor] = {}
            for shard in _shards(index):
                state.update(read(model_dir / shard))
            return state
    raise AtentoError(f"{model_dir}: holds neither {SAFETENSORS} nor {TORCH_BIN}")


def _shards(index: Path) -> list[str]:
    """The shard files an `.index.json` lists (its weight_map's values), in order."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return sorted({str(f) for f in weight_map.values()})
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        raise AtentoError(f"{index}: not a shard index (a JSON weight_map)") from None


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    import safetensors.torch

    if not path.is_file():
        raise AtentoError(f"{path}: not found (a shard the index lists)")
    try:
        return safetensors.torch.load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise AtentoError(f"{path}: not a readable safetensors file ({exc})") from None


def _read_torch_bin(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise AtentoError(f"{path}: not found (a shard the index lists)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AtentoError(
            f"{path}: needs code to load, refused (weights_only): {first}; save it as "
            "model.safetensors"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise AtentoError(f"{path}: not a readable PyTorch checkpoint ({exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise AtentoError(f"{path}: not a state dict of tensors")
    return state


def config_value(config: dict[str, Any], defaults: dict[str, Any]) -> Callable[[str], Any]:
    """A getter of config.json's values that falls back to the family's defaults (a config
    written by `save_pretrained` leaves out the values equal to them)."""
    return lambda key: config.get(key, defaults.get(key))


def take(weights: dict[str, Tensor], name: str, model_dir: Path) -> Tensor:
    """Remove and return `weights[name]`; AtentoError naming the tensor when it is missing."""
    if name not in weights:
        raise AtentoError(f"{model_dir}: the weights lack {name} (weights for another config?)")
    return weights.pop(name)


def unsupported(model_dir: Path, option: str, value: object, want: str) -> AtentoError:
    """The one-line error for a config option atento does not implement."""
    return AtentoError(
        f"{model_dir / CONFIG}: {option}={value!r} is not supported by atento's import ({want})"
    )


def write_run(imported: Imported, out: Path) -> Path:
    """Write `imported` as the run directory `out` (its `checkpoint_best/` and config), after
    checking that the weights load into the model its config builds."""
    from atento.config import config_to_dict
    from atento.config_io import config_from_dict, dump_config
    from atento.registry import build_model, task_class

    if (out / BEST).exists() or any(out.glob("checkpoint_*")):
        raise AtentoError(f"{out}: already holds a run (choose another --out)")
    cfg = config_from_dict(imported.config)
    task = task_class(cfg.task)(cfg)
    task.tokenizers = dict(imported.tokenizers)
    model = build_model(cfg, **task.model_sizes())
    try:
        missing, unexpected = model.load_state_dict(imported.weights, strict=False)
    except RuntimeError as exc:  # a shape that differs: weights of another config
        first = str(exc).strip().splitlines()[-1].strip()
        raise AtentoError(f"the weights do not fit config.json ({first})") from None
    if missing or unexpected:
        what = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise AtentoError(f"the converted weights do not fit the atento model ({what})")
    out.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, out / "config.yaml")
    for role, tok in imported.tokenizers.items():
        tok.save(out, role)
    ckpt = Checkpoint(config=config_to_dict(cfg), tokenizers=imported.tokenizers,
                      model=model.state_dict(), step=0)  # fmt: skip
    save_checkpoint(ckpt, out / BEST)
    return find_checkpoint(out, "best")
