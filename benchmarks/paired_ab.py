"""Two settings of one training-speed lever, paired on the same batches in one process:

    --lever linear_kernel  `runtime.linear_kernel` (--a plain --b auto, the default): the fp32
                           products of the linear layers on PyTorch's BLAS (MKL) or on oneDNN
    --lever fuse_relu      the feed-forward's ReLU + dropout as one autograd step or as two
                           (`PositionwiseFeedForward.fuse_relu`; --a off --b on)
    --lever explicit_attention  `train.explicit_attention` (--a false --b true): attention in
                           training steps as PyTorch's fused kernel or as two products and a
                           softmax (`attention.multihead`)
    --lever wgrad          with runtime.linear_kernel=auto, the weight gradients on PyTorch's
                           `mm` always or in the form measured per shape (`kernels.weight_grad`;
                           --a mm --b auto)

    python benchmarks/paired_ab.py configs/multi30k_fr_en_transformer.yaml \
        data.dir=../shared/data/multi30k runtime.precision=fp32 --seconds 300 --skip 30

Every batch is trained on twice, once per setting (which goes first alternates), so both
sides see the same shapes and the same minutes of a machine whose speed drifts; the ratio is
the sum of side a's step times over the sum of side b's. A step in which `auto` measured a
new shape (its first batch of a size class of rows) is left out with its pair, as are the
first `--skip` seconds. Prints one JSON line. Training each batch twice is for the timing
only; nothing here is a training run. `--b` equal to `--a` gives the noise floor. Run it on
an otherwise idle machine. (Session 7's figures were taken with this script under its old
name, `linear_kernel_ab.py`, which had only the linear-kernel lever.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from timing import benchmark_trainer  # noqa: E402

from atento import kernels  # noqa: E402
from atento.attention.multihead import set_explicit_attention  # noqa: E402
from atento.nn.feedforward import PositionwiseFeedForward  # noqa: E402
from atento.options import LINEAR_KERNELS  # noqa: E402
from atento.runtime import cpu_features, set_linear_kernel  # noqa: E402

_choices = kernels._train_choices


def _fuse_relu(value: str, trainer) -> None:
    PositionwiseFeedForward.fuse_relu = value == "on"


def _explicit(value: str, trainer) -> None:
    set_explicit_attention(trainer.model, {"true": True, "false": False, "auto": None}[value])


def _wgrad(value: str, trainer) -> None:
    """auto: the form measured per shape; mm: PyTorch's product whatever was measured (the
    measurement itself is the same on both sides)."""

    def mm(rows, weight):
        return _choices(rows, weight)._replace(wgrad="mm")

    kernels._train_choices = _choices if value == "auto" else mm


# lever -> (its settings, the function that applies one, default a, default b)
LEVERS = {
    "linear_kernel": (
        LINEAR_KERNELS,
        lambda mode, trainer: set_linear_kernel(mode),
        "plain",
        "auto",
    ),
    "fuse_relu": (("off", "on"), _fuse_relu, "off", "on"),
    "explicit_attention": (("false", "true", "auto"), _explicit, "false", "true"),
    "wgrad": (("mm", "auto"), _wgrad, "mm", "auto"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--skip", type=float, default=30.0)
    parser.add_argument("--lever", default="linear_kernel", choices=sorted(LEVERS))
    parser.add_argument("--a", help="side a's setting (the lever's default: plain, off)")
    parser.add_argument("--b", help="side b's setting (the lever's default: auto, on)")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    settings, apply, default_a, default_b = LEVERS[args.lever]
    args.a, args.b = args.a or default_a, args.b or default_b
    for side in (args.a, args.b):
        if side not in settings:
            parser.error(f"--lever {args.lever} takes {', '.join(settings)}, not {side!r}")
    times = {"a": [], "b": []}
    tokens = 0
    with benchmark_trainer(args.config, args.overrides) as trainer:
        placement = trainer.placement
        start = time.perf_counter()
        epoch = pairs = 0
        while time.perf_counter() - start < args.seconds:
            for idx in trainer.task.batch_plan(epoch):
                batch = trainer.task.collate(idx).to(placement.device)
                order = ("a", "b") if pairs % 2 == 0 else ("b", "a")
                took = {}
                known = kernels.measurements()
                for side in order:
                    apply(getattr(args, side), trainer)
                    tick = time.perf_counter()
                    _, count = trainer.train_step(batch)
                    took[side] = time.perf_counter() - tick
                pairs += 1
                warm = time.perf_counter() - start >= args.skip
                if warm and kernels.measurements() == known:  # no measurement inside
                    for side in took:
                        times[side].append(took[side])
                    tokens += count
                if time.perf_counter() - start >= args.seconds:
                    break
            epoch += 1
    a, b = sum(times["a"]), sum(times["b"])
    per_pair = [x / y for x, y in zip(times["a"], times["b"], strict=True)]
    row = {
        "label": args.label or Path(args.config).stem,
        "lever": args.lever,
        "a": args.a,
        "b": args.b,
        "pairs": len(per_pair),
        "a_tokens_per_second": round(tokens / a, 1),
        "b_tokens_per_second": round(tokens / b, 1),
        "speedup_b_over_a": round(a / b, 4),
        "pair_ratio_median": round(statistics.median(per_pair), 4),
        "precision": placement.precision,
        "threads": torch.get_num_threads(),
        "cpu_flags": cpu_features(),
        "overrides": args.overrides,
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main()
