"""The training losses of the first N updates of a config, one JSON line (a parity check).

    python benchmarks/first_losses.py configs/multi30k_fr_en_transformer.yaml \
        data.dir=../shared/data/multi30k train.bf16=false --steps 50

Runs the code of the checkout it lives in (its `src/` goes first on the path), or of the one
ATENTO_SRC names, so that it gives an earlier revision's losses too (it speaks the training
loop's API before and after the Task seam): with the same seed and precision they must be
identical (benchmarks/core_regression.sh compares them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, os.environ.get("ATENTO_SRC") or str(Path(__file__).resolve().parents[1] / "src"))

try:  # the revision under ATENTO_SRC may predate the schema / loader split
    from atento.config_io import load_config
except ImportError:
    from atento.config import load_config
from atento.training.loop import Trainer  # noqa: E402


def _batches(trainer):
    """Training batches in order, with either the Task API or the one before it."""
    task = getattr(trainer, "task", None)
    epoch = 0
    while True:
        if task is not None:
            for idx in task.batch_plan(epoch):
                yield task.collate(idx)
        else:  # the loop before the Task seam
            from atento.data.batching import collate

            for idx in trainer.sampler.batches(epoch):
                yield collate([trainer.train_pairs[i] for i in idx])
        epoch += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(2)
    cfg = load_config(args.config, [*args.overrides, "train.valid_every=0"])
    losses = []
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp) / "run", progress=False)
        for batch, _ in zip(_batches(trainer), range(args.steps), strict=False):
            out = trainer.train_step(batch)
            losses.append(out[0] if isinstance(out, tuple) else out)
    print(json.dumps({"config": Path(args.config).name, "steps": len(losses), "losses": losses}))


if __name__ == "__main__":
    main()
