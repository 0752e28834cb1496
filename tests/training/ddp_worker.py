"""One training rank for the distributed tests (started as a plain process, no torchrun).

    python ddp_worker.py RUN_DIR RANK WORLD_SIZE PORT [key=value ...]     (RESUME=1: --resume)

Trains configs/toy_dates.yaml (or the config file CONFIG names) with the overrides and writes
RUN_DIR/rank{RANK}.json: the loss of every step and the batches (example indices) this rank took.
"""

import json
import os
import sys
from pathlib import Path

import torch

from atento.config_io import load_config
from atento.training import distributed
from atento.training.loop import Trainer

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "toy_dates.yaml"


def main() -> None:
    out, rank, size, port, *overrides = sys.argv[1:]
    rank, size = int(rank), int(size)
    torch.set_num_threads(1)
    # as torchrun sets them: local rank 0 builds the corpus store, the other waits for it
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(size))  # fmt: skip
    world = distributed.World(rank, size, rank, size)
    cfg = load_config(os.environ.get("CONFIG") or CONFIG, overrides)
    distributed.init(world, torch.device("cpu"), cfg.runtime.collective_timeout)
    trainer = Trainer(cfg, out, resume=os.environ.get("RESUME") == "1", progress=False,
                      world=world)  # fmt: skip
    losses, batches = [], []
    train_step, collate = trainer.train_step, trainer.task.collate

    def step(micro):
        loss, count = train_step(micro)
        losses.append(loss)
        return loss, count

    def take(indices):
        batches.append(list(indices))
        return collate(indices)

    trainer.train_step, trainer.task.collate = step, take
    trainer.fit()
    record = {"losses": losses, "batches": batches}
    Path(out, f"rank{rank}.json").write_text(json.dumps(record))
    world.barrier()
    distributed.exit_process(0)  # as the command line ends a rank: no gloo teardown at exit


if __name__ == "__main__":
    main()
