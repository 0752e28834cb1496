"""Importing pretrained models from the Hugging Face format: `atento import hf MODEL_DIR --out RUN`.

A local model directory (`config.json`, `model.safetensors` or `pytorch_model.bin`, the
tokenizer files) becomes an atento run directory (config, tokenizers, `checkpoint_best/`) that
every command and `atento.load` accept. Nothing is downloaded: the user fetches the directory
first (`hf download gpt2 --local-dir models/gpt2`).

Each supported family (`config.json`'s `model_type`) is one module with
    convert(model_dir: Path, config: dict) -> Imported
mapping the names and layout of its weights onto one of atento's own architectures; anything
the family's config asks for that atento does not implement is a one-line error naming the
option, never a silently different model.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from atento.errors import AtentoError
from atento.hf.files import Imported, read_config, write_run

# model_type (config.json) -> the module that converts it (imported on use)
FAMILIES: dict[str, str] = {
    "gpt2": "atento.hf.gpt2",
    "bert": "atento.hf.bert",
    "marian": "atento.hf.marian",
}

__all__ = ["FAMILIES", "Imported", "convert", "import_hf"]


def convert(model_dir: str | Path) -> Imported:
    """The atento config, tokenizers and weights of the Hugging Face model in `model_dir`."""
    model_dir = Path(model_dir)
    config = read_config(model_dir)
    family = config.get("model_type")
    if family not in FAMILIES:
        known = ", ".join(sorted(FAMILIES))
        raise AtentoError(
            f"{model_dir / 'config.json'}: model_type {family!r} is not supported (atento "
            f"imports {known})"
        )
    module = importlib.import_module(FAMILIES[family])
    return module.convert(model_dir, config)


def import_hf(model_dir: str | Path, out: str | Path) -> Path:
    """Convert `model_dir` and write it as the run directory `out` (which must not hold a run
    already); returns the checkpoint's path."""
    return write_run(convert(model_dir), Path(out))
