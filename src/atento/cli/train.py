"""`atento train CONFIG.yaml [key.path=value ...] [--out DIR] [--resume [auto]] [--nproc N]`.

Under torchrun (`torchrun --nproc_per_node N -m atento train ...`, or `--nproc N`, which starts
torchrun's elastic launcher for this machine) every process trains one rank with
DistributedDataParallel: gloo on CPU, nccl on CUDA with one device per rank.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from atento.checkpoints import LAST, find_checkpoint, load_checkpoint
from atento.cli.common import start_runtime
from atento.config_io import config_from_dict, load_config
from atento.errors import AtentoError, warn
from atento.outputs import output_path
from atento.registry import placement_for


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("config", help="YAML config file")
    p.add_argument(
        "overrides", nargs="*", help="key.path=value overrides, e.g. train.max_steps=100"
    )
    p.add_argument("--out", help="run directory (default: runs/<config name>)")
    p.add_argument(
        "--resume", nargs="?", const="yes", choices=("yes", "auto"),
        help="continue the run in --out from its last checkpoint (overrides still apply); "
        "`--resume auto` resumes when --out holds a checkpoint and starts afresh otherwise "
        "(for torchrun's --max-restarts)",
    )  # fmt: skip
    p.add_argument(
        "--nproc", type=int, default=1,
        help="train with N processes on this machine (starts torchrun's launcher; each process "
        "one rank of DistributedDataParallel)",
    )  # fmt: skip
    p.set_defaults(run=run)


def _launch(args: argparse.Namespace) -> int:
    """`--nproc N`: start torchrun's elastic launcher with N copies of this command."""
    from torch.distributed.run import get_args_parser
    from torch.distributed.run import run as torchrun

    argv = [args.config, *args.overrides]
    if args.out:
        argv += ["--out", args.out]
    if args.resume:
        argv += ["--resume", args.resume]
    launcher = ["--standalone", "--nproc-per-node", str(args.nproc), "-m", "atento", "train"]
    try:
        torchrun(get_args_parser().parse_args([*launcher, *argv]))
    except Exception as exc:  # torchrun's ChildFailedError: the rank said why, above
        failures = getattr(exc, "failures", {}) or {}
        codes = ", ".join(f"rank {r}: exit code {f.exitcode}" for r, f in sorted(failures.items()))
        print(f"atento train: error: a training process failed ({codes or exc})", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    from atento.training import distributed
    from atento.training.checkpointing import check_same_model
    from atento.training.loop import Trainer
    from atento.training.run_files import has_checkpoint

    world = distributed.World.from_env()
    if args.nproc < 1:
        raise AtentoError(f"--nproc must be at least 1, got {args.nproc}")
    if args.nproc > 1 and not world.distributed:
        load_config(args.config, args.overrides)  # bad config: one error, not one per rank
        return _launch(args)
    cfg = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    resume = args.resume == "yes" or (args.resume == "auto" and has_checkpoint(out))
    if resume:
        try:
            last = find_checkpoint(out, "last")
        except AtentoError:
            last = None
        if last is None or not last.name.startswith(LAST):
            raise AtentoError(f"cannot resume: no {LAST} in {out}")
        ckpt = load_checkpoint(last)
        cfg = config_from_dict(ckpt.config, args.overrides, migrate=ckpt.format < 2)
        check_same_model(cfg, ckpt.config)  # before anything is printed or written
    output_path(out, kind="dir", option="--out")  # a file, or a folder that cannot be written
    placement = placement_for(cfg)
    if world.distributed and placement.device.type == "cuda":
        placement = placement_for(cfg, device=f"cuda:{world.local_rank}")
    if world.main:
        start_runtime(cfg.runtime, placement, training=True, processes=world.local_size)
    else:
        from atento.runtime import apply_process_settings

        apply_process_settings(cfg.runtime, placement, training=True, processes=world.local_size)
    distributed.init(world, placement.device, cfg.runtime.collective_timeout)
    try:
        result = Trainer(cfg, out, resume=resume, placement=placement, world=world).fit()
    except RuntimeError as exc:
        if not world.distributed:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        warn(f"train: error: rank {world.rank} of {world.size} lost the other ranks ({first}): "
             f"one died or hung; {out} keeps its last checkpoint (--resume continues)")  # fmt: skip
        distributed.exit_process(1)  # no teardown: the group is broken
    except BaseException:
        distributed.shutdown(wait=False)
        raise
    if world.main:
        print(json.dumps(result.summary()))
    if world.distributed:
        world.barrier()  # every rank is done with collectives and rank 0 has printed
        distributed.exit_process(0)
    return 0
