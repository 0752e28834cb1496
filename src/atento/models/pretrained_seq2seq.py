"""Starting a translation run from another translation run's weights: `model.init_from=RUN`.

The pretrained run is any `task: translation` run of `model.arch: transformer`: one trained
here, or an imported Marian (opus-mt) model (`atento import hf`). The new run takes its source
and target tokenizers (ids must mean the same pieces; `data.tokenizer` and `data.vocab_size`
are then not used) and must declare the same model keys that fix the weights' shapes and the
function they compute (`SHAPE_KEYS`); a difference is a one-line error naming the key and both
values, before training starts. Dropouts and everything outside `model` are the new run's.

    pretrained = load_pretrained_seq2seq(cfg)     # in TranslationTask.prepare (a new run)
    model = TransformerSeq2Seq(...); copy_weights(model, pretrained)   # in the builder
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor, nn

from atento.errors import AtentoError
from atento.models.pretrained import check_keys, load_exactly, open_init_from

if TYPE_CHECKING:
    from atento.config import Config
    from atento.data.vocab import Tokenizer

SHAPE_KEYS = (
    "d_model", "heads", "ff_size", "layers", "pre_norm", "positions", "max_positions",
    "share_embeddings", "tie_embeddings", "activation", "scale_embeddings", "sinusoids",
    "output_bias",
)  # fmt: skip


@dataclass
class PretrainedSeq2Seq:
    """A pretrained translation run's tokenizers (`src`, `tgt`) and weights."""

    run: str
    step: int
    tokenizers: dict[str, Tokenizer]
    weights: dict[str, Tensor]


def load_pretrained_seq2seq(cfg: Config) -> PretrainedSeq2Seq:
    """Read `cfg.model.init_from`'s best checkpoint and check that it fits `cfg` (module
    doc); AtentoError naming the mismatch otherwise."""
    run, ckpt, model, _ = open_init_from(cfg, same_task=True)
    check_keys(cfg, model, run, SHAPE_KEYS)
    tokenizers = {role: ckpt.tokenizers[role] for role in ("src", "tgt")
                  if role in ckpt.tokenizers}  # fmt: skip
    if len(tokenizers) != 2:
        raise AtentoError(f"model.init_from={run} holds no source and target tokenizers")
    return PretrainedSeq2Seq(run=run, step=ckpt.step, tokenizers=tokenizers, weights=ckpt.model)


def copy_weights(model: nn.Module, pretrained: PretrainedSeq2Seq) -> None:
    """Load the pretrained weights into `model` exactly (every key, every shape)."""
    load_exactly(model, pretrained.weights, pretrained.run)
