"""Typed experiment configuration: dataclass sections loaded from YAML, with dotted overrides.

A config has four sections, `data`, `model`, `train` and `search`. Every key is declared here
with its type and default, so a misspelt key or a value of the wrong type is a one-line
`AtentoError` that names it (and suggests the closest valid key) instead of being ignored.

    cfg = load_config("configs/dates.yaml", overrides=["train.max_steps=100"])
    dump_config(cfg, run_dir / "config.yaml")
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from atento.errors import AtentoError

ATTENTION_CHOICES = ("none", "cosine", "additive", "location", "general", "dot", "scaled_dot")


@dataclass
class SplitFiles:
    """Two line-aligned plain-text files (gzip accepted)."""

    src: str = ""
    tgt: str = ""


@dataclass
class DataConfig:
    corpus: str = "dates"  # files | multi30k | dates
    src_lang: str = "fr"  # multi30k only
    tgt_lang: str = "en"
    dir: str = ""  # multi30k directory; empty = download once into a cache
    train: SplitFiles = field(default_factory=SplitFiles)  # corpus=files
    valid: SplitFiles = field(default_factory=SplitFiles)
    test: SplitFiles = field(default_factory=SplitFiles)
    tokenizer: str = "sentencepiece"  # sentencepiece | char
    vocab_size: int = 8000  # SentencePiece vocabulary (joint) or per side (separate)
    joint_vocab: bool = True
    max_len: int = 100  # pairs longer than this (in pieces, either side) are dropped
    max_train_pairs: int = 0  # 0 = all; >0 keeps the first N (quick experiments)
    n_train: int = 20000  # dates corpus sizes
    n_valid: int = 500
    n_test: int = 1000
    seed: int = 1234  # dates generator seed


@dataclass
class ModelConfig:
    arch: str = "rnn"
    cell: str = "gru"  # gru | lstm
    emb_size: int = 256
    hidden_size: int = 256  # per direction in the encoder; decoder size
    enc_layers: int = 1
    dec_layers: int = 1
    dropout: float = 0.2
    attention: str = "additive"  # none | cosine | additive | location | general | dot | scaled_dot
    input_feeding: bool = False  # feed the previous attentional vector into the decoder RNN
    max_src_len: int = 0  # location attention's window; 0 = data.max_len + 2
    tie_embeddings: bool = False  # output layer shares the target embedding matrix
    # Transformer (arch: transformer): uses dropout above, not emb_size / hidden_size / cell
    d_model: int = 256
    heads: int = 4
    ff_size: int = 1024
    layers: int = 3  # encoder layers and decoder layers (each)
    pre_norm: bool = False  # post-norm as in Vaswani et al. 2017; pre-norm as an option
    positions: str = "sinusoidal"  # sinusoidal | learned
    max_positions: int = 256  # learned positions / precomputed sinusoids
    share_embeddings: bool = (
        True  # one embedding matrix for source, target and output (joint vocab)
    )
    attention_dropout: float = 0.0


@dataclass
class TrainConfig:
    batch_tokens: int = 3000  # target tokens per batch
    lr: float = 2e-3
    warmup_steps: int = 200  # linear warm-up, then inverse-square-root decay
    label_smoothing: float = 0.1
    clip_norm: float = 1.0
    weight_decay: float = 0.0
    max_steps: int = 0  # 0 = no limit
    max_epochs: int = 0  # 0 = no limit
    max_minutes: float = 0.0  # 0 = no limit; wall-clock training budget
    valid_every: int = 500  # steps between validations
    valid_sentences: int = 0  # 0 = whole validation set for BLEU
    patience: int = 0  # validations without BLEU improvement before stopping; 0 = never
    checkpoint_every: int = 0  # steps between "last" checkpoints; 0 = at each validation
    seed: int = 1
    threads: int = 0  # torch threads; 0 = leave PyTorch's default
    bf16: bool = False  # bfloat16 autocast for the forward pass (CPUs with AVX-512 BF16 / AMX)
    ema_decay: float = 0.0  # > 0: validate, keep and translate an exponential moving average


@dataclass
class SearchConfig:
    beam: int = 5
    alpha: float = 1.0  # length normalisation score / Ty^alpha; 0 disables it
    nbest: int = 1
    max_len_a: float = 1.5  # maximum output length = a * source length + b
    max_len_b: int = 10
    batch_size: int = 64  # sentences per decoding batch
    bf16: bool = False  # bfloat16 autocast while decoding (CPUs with AMX / AVX-512 BF16)
    workers: int = 1  # batches decoded at once, on threads sharing torch's threads out


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    search: SearchConfig = field(default_factory=SearchConfig)

    def validate(self) -> Config:
        """Check values that types alone cannot; raise AtentoError naming the key."""
        checks = [
            (
                self.data.corpus in ("files", "multi30k", "dates"),
                "data.corpus",
                "files, multi30k, dates",
            ),
            (
                self.data.tokenizer in ("sentencepiece", "char"),
                "data.tokenizer",
                "sentencepiece, char",
            ),
            (self.model.arch in ("rnn", "transformer"), "model.arch", "rnn, transformer"),
            (
                self.model.positions in ("sinusoidal", "learned"),
                "model.positions",
                "sinusoidal, learned",
            ),
            (self.model.cell in ("gru", "lstm"), "model.cell", "gru, lstm"),
            (
                self.model.attention in ATTENTION_CHOICES,
                "model.attention",
                ", ".join(ATTENTION_CHOICES),
            ),
            (0.0 <= self.model.dropout < 1.0, "model.dropout", "a value in [0, 1)"),
            (self.train.batch_tokens > 0, "train.batch_tokens", "a positive number"),
            (0.0 <= self.train.ema_decay < 1.0, "train.ema_decay", "a value in [0, 1)"),
            (self.search.beam >= 1, "search.beam", "at least 1"),
            (self.search.workers >= 1, "search.workers", "at least 1"),
            (
                1 <= self.search.nbest <= self.search.beam,
                "search.nbest",
                "between 1 and search.beam",
            ),
        ]
        for ok, key, allowed in checks:
            if not ok:
                raise AtentoError(f"config: {key}={_get(self, key)!r} is not valid (use {allowed})")
        if self.data.corpus == "files" and not (self.data.train.src and self.data.train.tgt):
            raise AtentoError("config: data.corpus=files needs data.train.src and data.train.tgt")
        return self


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """Convert a YAML / command-line value to the declared type or raise naming the key."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        typ = next(t for t in typing.get_args(typ) if t is not type(None))
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif typ is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    name = getattr(typ, "__name__", str(typ))
    raise AtentoError(f"config: {key} must be {name}, got {value!r}")


def _unknown(key: str, valid: list[str], prefix: str) -> AtentoError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {prefix}{close[0]}?)" if close else f" (valid: {', '.join(valid)})"
    return AtentoError(f"config: unknown key {prefix}{key}{hint}")


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise AtentoError(f"config: {prefix.rstrip('.') or 'top level'} must be a mapping")
    types_ = _field_types(cls)
    kwargs = {}
    for key, value in raw.items():
        if key not in types_:
            raise _unknown(str(key), list(types_), prefix)
        typ = types_[key]
        if is_dataclass(typ):
            kwargs[key] = _build(typ, value, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, typ, f"{prefix}{key}")
    return cls(**kwargs)


def _set_dotted(raw: dict, dotted: str, value: Any) -> None:
    """Write `value` at `a.b.c` into nested dicts, checking each name against the schema."""
    parts = dotted.split(".")
    cls: type = Config
    node = raw
    for i, part in enumerate(parts):
        types_ = _field_types(cls)
        prefix = ".".join(parts[:i]) + ("." if i else "")
        if part not in types_:
            raise _unknown(part, list(types_), prefix)
        typ = types_[part]
        if i == len(parts) - 1:
            if is_dataclass(typ):
                raise AtentoError(f"config: {dotted} is a section; set one of its keys")
            node[part] = value
        else:
            if not is_dataclass(typ):
                raise AtentoError(f"config: {prefix}{part} has no sub-keys")
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node[part] = dict(node[part])
            node = node[part]
            cls = typ


def config_from_dict(raw: dict | None, overrides: list[str] = ()) -> Config:
    """Build a validated Config from a nested dict plus `key.path=value` overrides."""
    raw = dict(raw or {})
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for item in overrides:
        if "=" not in item:
            raise AtentoError(f"config: override {item!r} must look like key.path=value")
        key, value = item.split("=", 1)
        _set_dotted(raw, key.strip(), yaml.safe_load(value) if value else "")
    return _build(Config, raw, "").validate()


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read a YAML config file and apply overrides; AtentoError on any problem."""
    path = Path(path)
    if not path.is_file():
        raise AtentoError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise AtentoError(
            f"config: {path} is not valid YAML ({str(exc).splitlines()[0]})"
        ) from None
    return config_from_dict(raw, overrides)


def config_to_dict(cfg: Config) -> dict:
    return asdict(cfg)


def dump_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), encoding="utf-8")


def replace(cfg: Config, **sections: Any) -> Config:
    """A copy of `cfg` with whole sections replaced (handy in tests)."""
    return dataclasses.replace(cfg, **sections)
