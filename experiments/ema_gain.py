"""What the weight average buys: the averaged and the raw weights of one run, side by side.

    python experiments/ema_gain.py runs/t30 --src ../shared/data/multi30k/test_2016_flickr.fr.gz \
        --ref ../shared/data/multi30k/test_2016_flickr.en.gz

Reads `checkpoint_last/` of a run trained with `train.ema_decay > 0` (it holds both: `model`
is the average, `train_model` the raw weights) and decodes --src with each (the run's search
settings, --beam to change them). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json

from atento.checkpoints import LAST, load_checkpoint
from atento.data.parallel import read_parallel
from atento.errors import AtentoError
from atento.rundir import load_run
from atento.training.metrics import corpus_scores


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--src", required=True)
    p.add_argument("--ref", required=True)
    p.add_argument("--beam", type=int, default=None)
    args = p.parse_args()
    loaded = load_run(args.run_dir, which="last")
    ckpt = load_checkpoint(f"{args.run_dir}/{LAST}", training=True)
    if ckpt.train_model is None:
        raise AtentoError(f"{args.run_dir} was trained without train.ema_decay: nothing to compare")
    pairs = read_parallel(args.src, args.ref)
    sources, refs = [s for s, _ in pairs], [r for _, r in pairs]
    translator = loaded.translator().with_search(beam=args.beam)
    report = {"run_dir": args.run_dir, "step": ckpt.step, "beam": translator.search.beam}
    for name in ("model", "train_model"):
        loaded.model.load_state_dict(getattr(ckpt, name))
        outputs = translator.best_strings(sources)
        scores = corpus_scores(outputs, refs)
        label = "average" if name == "model" else "raw"
        report[label] = {"bleu": scores.bleu, "chrf": scores.chrf}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
