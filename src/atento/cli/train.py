"""`atento train CONFIG.yaml [key.path=value ...] [--out DIR] [--resume]`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from atento.config import config_from_dict, load_config
from atento.errors import AtentoError
from atento.training.checkpoint import LAST, load_checkpoint


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("config", help="YAML config file")
    p.add_argument(
        "overrides", nargs="*", help="key.path=value overrides, e.g. train.max_steps=100"
    )
    p.add_argument("--out", help="run directory (default: runs/<config name>)")
    p.add_argument(
        "--resume", action="store_true",
        help="continue the run in --out from its last checkpoint (overrides still apply)",
    )  # fmt: skip
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from atento.training.loop import Trainer

    cfg = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    if args.resume:
        last = out / LAST
        if not last.is_file():
            raise AtentoError(f"cannot resume: no {LAST} in {out}")
        cfg = config_from_dict(load_checkpoint(last)["config"], args.overrides)
    result = Trainer(cfg, out, resume=args.resume).fit()
    print(json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in vars(result).items()}))
    return 0
