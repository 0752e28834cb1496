"""Time the extraction of frozen EfficientNet-Lite0 features for the Flickr8k images.

    python benchmarks/caption_features.py ../shared/data/flickr8k [--cache DIR] [--threads 2]
        [--finetune-blocks N]

Reads the train and dev split lists, extracts (or finds in the cache) the (49, 1280) fp16
region features of every image (with --finetune-blocks N, the activations at the cut before
the last N blocks that a `model.finetune_blocks=N` run caches, e.g. (49, 192) for 1), and
prints one JSON line: images, seconds, images/s, cache hits and misses, the cache's size on
disk and the peak resident memory. A second run finds everything in the cache (the hit path's
speed).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from atento.captioning.cache import FeatureCache  # noqa: E402
from atento.captioning.encoder import ImageEncoder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("flickr8k", help="the Flickr8k folder (images/, train.txt, dev.txt)")
    parser.add_argument("--cache", help="feature cache folder (default: atento's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--finetune-blocks", type=int, default=0,
                        help="the cut before the last N blocks (0: the final map)")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.flickr8k)
    names = []
    for split in ("train", "dev"):
        names += [n.strip() for n in (root / f"{split}.txt").read_text().splitlines() if n.strip()]
    paths = [root / "images" / n for n in names]
    cache = FeatureCache(args.cache, batch_size=args.batch_size,
                         finetune_blocks=args.finetune_blocks)  # fmt: skip
    ImageEncoder.pretrained()  # load the weights before the clock starts (built once)
    start = time.perf_counter()
    _, errors = cache.features(paths, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - start
    size = sum(f.stat().st_size for f in cache.directory.rglob("*.npy"))
    print(json.dumps({
        "images": len(paths), "finetune_blocks": args.finetune_blocks, "errors": len(errors),
        "seconds": round(seconds, 1),
        "images_per_second": round(len(paths) / seconds, 1), "hits": cache.hits,
        "misses": cache.misses, "threads": args.threads, "cache_mb": round(size / 2**20, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
