"""`atento prepare CONFIG [key.path=value ...] [--workers N]` and `atento prepare --clean`.

Builds (or finds, checking every file's checksum) the corpus store that `atento train CONFIG`
would map, ahead of time (before a multi-node run, say), and prints where it went and its
size. `train` and `evaluate` prepare on first use themselves; this command is never required.
`--clean` removes every store under `$ATENTO_CACHE/stores` and says how much it freed.
"""

from __future__ import annotations

import argparse
import sys
import time

from atento.errors import AtentoError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="build the corpus store of a config ahead of training")
    p.add_argument("config", nargs="?", help="YAML config file (as for `atento train`)")
    p.add_argument("overrides", nargs="*", help="key.path=value overrides, as for train")
    p.add_argument("--workers", type=int, help="encoding processes (default data.workers, "
                   "0 there = the CPU cores)")  # fmt: skip
    p.add_argument("--clean", action="store_true",
                   help="remove every corpus store under $ATENTO_CACHE/stores")  # fmt: skip
    p.set_defaults(run=run)


def human(size: int) -> str:
    """A byte count as people read it (1.5 MB, 2.3 GB)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _count(name: str, entry: dict) -> str:
    """`src 29,000 rows`, `train 1,080 tokens` (a stream), `train_labels 300 values`."""
    if f"{name}.len" in entry["files"]:
        return f"{name} {entry['rows']:,} rows"
    return f"{name} {entry['tokens']:,} {'values' if name.endswith('_labels') else 'tokens'}"


def run(args: argparse.Namespace) -> int:
    from atento.data.store import clean_stores, stores_root

    if args.clean:
        if args.config or args.overrides:
            raise AtentoError("prepare --clean takes no config: it removes every store")
        count, freed = clean_stores()
        print(f"removed {count} corpus store(s) from {stores_root()}, {human(freed)} freed")
        return 0
    if not args.config:
        raise AtentoError("prepare needs a CONFIG file (or --clean)")
    if args.workers is not None and args.workers < 1:
        raise AtentoError(f"--workers must be at least 1, got {args.workers}")
    from atento.config_io import load_config
    from atento.registry import task_class

    cfg = load_config(args.config, args.overrides)
    task = task_class(cfg.task)(cfg, log=lambda line: print(line, file=sys.stderr))
    if not hasattr(task, "prepare_store"):
        raise AtentoError(f"the {cfg.task} task reads its data in memory: no corpus store")
    start = time.perf_counter()
    data = task.prepare_store(None, None, workers=args.workers, verify=True)
    store, m = data.store, data.store.manifest
    counts = ", ".join(_count(name, entry) for name, entry in m["arrays"].items())
    print(f"corpus store {store.path} ({human(store.size)}): {counts}; "
          f"ready in {time.perf_counter() - start:.1f} s")  # fmt: skip
    return 0
