"""Starting a run from another run's weights: `model.init_from=RUN`.

A classifier, a continued pretraining (`task: mlm`) or a language model trained further on
new text (`task: lm`) takes the text Transformer of a pretrained run: an encoder pretrained
with `task: mlm` for `model.arch: bert`, a language model (`task: lm`) for `model.arch: gpt`,
the body of an earlier classification run of the same architecture, or a model imported with
`atento import hf`. The new run uses the pretrained run's tokenizer (ids must mean the same
tokens) and must declare the same architecture sizes and variants (`pre_norm`, `activation`,
...: the imported run's config.yaml has them); anything that does not fit is a one-line error
naming the keys and their values there, before training starts.

    pretrained = load_pretrained(cfg)            # in Task.prepare (a new run only)
    body = TextTransformer(...); copy_body(body, pretrained)   # in the builder
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from atento.checkpoints import find_checkpoint, load_checkpoint
from atento.errors import AtentoError

if TYPE_CHECKING:
    from atento.config import Config
    from atento.data.tokenizers import Tokenizer

# The keys that fix the shapes and meaning of a text Transformer's weights: the sizes, and the
# variants an imported model may have (models/text.py; absent from older runs' configs, which
# have their defaults).
SHAPE_KEYS = ("d_model", "heads", "layers", "ff_size", "positions", "context")
VARIANT_KEYS = ("pre_norm", "activation", "norm_eps", "embed_norm", "type_vocab",
                "head_transform", "output_bias", "pooler")  # fmt: skip
BUILT_KINDS = ("char", "word", "sentencepiece")  # data.tokenizer: the kinds built from text
BODY = "body."  # the prefix of the text Transformer inside a SentenceClassifier


@dataclass
class Pretrained:
    """A pretrained run's text tokenizer and body weights (TextTransformer keys)."""

    run: str
    task: str
    step: int
    tokenizer: Tokenizer
    weights: dict[str, Tensor]


def load_pretrained(cfg: Config) -> Pretrained:
    """Read `cfg.model.init_from`'s best checkpoint and check that it fits `cfg` (module doc);
    AtentoError naming the mismatch otherwise."""
    run, ckpt, model, task = open_init_from(cfg)
    check_keys(cfg, model, run, getattr(cfg.model, "matching_keys", (*SHAPE_KEYS, *VARIANT_KEYS)))
    tok = ckpt.tokenizers.get("text")
    if tok is None:
        raise AtentoError(f"model.init_from={run} holds no text tokenizer (task {task})")
    wanted = getattr(cfg.data, "tokenizer", tok.kind)
    if wanted != tok.kind and tok.kind in BUILT_KINDS:  # an imported one has no data.tokenizer
        raise AtentoError(
            f"config: data.tokenizer={wanted} but model.init_from={run} uses a {tok.kind} "
            f"tokenizer (its ids would mean other tokens; set data.tokenizer={tok.kind})"
        )
    weights = {k: v for k, v in ckpt.model.items() if not k.startswith("head.")}
    if any(k.startswith(BODY) for k in weights):  # an earlier classification run
        weights = {k[len(BODY) :]: v for k, v in weights.items() if k.startswith(BODY)}
    return Pretrained(run=run, task=task, step=ckpt.step, tokenizer=tok, weights=weights)


def open_init_from(cfg: Config, *, same_task: bool = False) -> tuple[str, Any, dict, str]:
    """`cfg.model.init_from`'s best checkpoint: (run, checkpoint, its `model` section, its
    task), after checking that it is a run of the same architecture (and task, with
    `same_task`); AtentoError naming the mismatch otherwise."""
    run = cfg.model.init_from
    if not Path(run).is_dir():
        raise AtentoError(f"model.init_from: run directory not found: {run}")
    ckpt = load_checkpoint(find_checkpoint(Path(run), "best"))
    config: dict[str, Any] = ckpt.config if isinstance(ckpt.config, dict) else {}
    model = config.get("model", {})
    task, arch = str(config.get("task", "translation")), model.get("arch")
    if arch != cfg.model.arch or (same_task and task != cfg.task):
        want = f"task {cfg.task} with model.arch={cfg.model.arch} needs a run of the same"
        if not same_task:
            want = f"model.arch={cfg.model.arch} needs a run of the same architecture"
        raise AtentoError(
            f"model.init_from={run} is a run of task {task}, model.arch={arch}; {want}"
        )
    return run, ckpt, model, task


def check_keys(cfg: Config, model: dict[str, Any], run: str, keys: tuple[str, ...]) -> None:
    """The `keys` of `cfg.model` (shapes and variants) equal the pretrained run's `model`
    section (a key an older run does not list has its default); else one AtentoError naming
    every key that differs and its value there."""
    defaults = {f.name: f.default for f in fields(cfg.model)}
    differ = [(key, getattr(cfg.model, key), model.get(key, defaults.get(key)))
              for key in keys if hasattr(cfg.model, key)]  # fmt: skip
    differ = [(key, mine, theirs) for key, mine, theirs in differ if mine != theirs]
    if not differ:
        return
    key, mine, theirs = differ[0]
    fix = " ".join(f"model.{k}={_yaml(t)}" for k, _, t in differ)
    raise AtentoError(
        f"config: model.{key}={mine!r} but model.init_from={run} was trained with "
        f"model.{key}={theirs!r} (set {fix})"
    )


def _yaml(value: object) -> str:
    """A value as an override spells it (true, not True)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def text_tokenizer(cfg: Config, run_dir: Any, build: Callable[[], Any]) -> tuple[Any, Any]:
    """(the text tokenizer of a new run, the `Pretrained` it comes from or None): that of
    `model.init_from` (saved as `text` into `run_dir`), else what `build()` makes."""
    if not cfg.model.init_from:
        return build(), None
    pretrained = load_pretrained(cfg)
    if run_dir is not None:
        pretrained.tokenizer.save(run_dir, "text")
    return pretrained.tokenizer, pretrained


def copy_body(body: nn.Module, pretrained: Pretrained) -> None:
    """Load the pretrained weights into `body` exactly (every key, every shape)."""
    load_exactly(body, pretrained.weights, pretrained.run)


def load_exactly(module: nn.Module, weights: dict[str, Tensor], run: str) -> None:
    """`module.load_state_dict(weights, strict=True)`; AtentoError naming `run` (a
    `model.init_from` run) when they do not fit."""
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise AtentoError(
            f"model.init_from={run}: its weights do not fit this model ({first})"
        ) from None
