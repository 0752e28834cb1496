"""`atento caption RUN_DIR IMAGE... [--beam K] [--alpha A] [--nbest N]`: one caption per image.

Prints `IMAGE<TAB>caption` for every image, in order (folders are expanded to the images in
them); with --nbest N, N lines per image with their scores. An image that cannot be read gets
a one-line error on stderr and the others still get their captions; the exit status is then 2.
Features come from the run's feature cache (computed once per image file); a run that
fine-tuned the encoder's last blocks caches the frozen part's output and runs its own tail.
"""

from __future__ import annotations

import argparse
import sys

from atento.cli.common import add_search_args, open_run, search_options
from atento.errors import AtentoError
from atento.outputs import output_path
from atento.rundir import LoadedRun


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("caption", help="caption images with a captioning run")
    p.add_argument("run_dir", help="run directory written by `atento train` (task: caption)")
    p.add_argument("images", nargs="+", help="image files or folders of images")
    add_search_args(p, nbest=True)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from atento.captioning.images import list_images

    loaded = open_run(args.run_dir)
    predictor = loaded.predictor.require("caption", command="caption")
    paths = list_images(args.images)
    if not paths:
        raise AtentoError("no image files in " + ", ".join(args.images))
    captions, errors = predictor.caption(paths, search_options(args),
                                         progress=sys.stderr.isatty())  # fmt: skip
    for i, path in enumerate(paths):
        if i in errors:
            print(f"atento caption: error: {errors[i]}", file=sys.stderr)
        elif args.nbest is None:
            print(f"{path}\t{captions[i].text}")
        else:
            for o in captions[i].nbest:
                print(f"{path}\t{o.score:.4f}\t{o.text}")
    sys.stdout.flush()
    return 2 if errors else 0


def draw_attention(loaded: LoadedRun, args: argparse.Namespace) -> int:
    """`atento attention RUN IMAGE --out FILE.png` for a captioning run: the image once per
    output word with that word's attention over the regions laid over it."""
    if args.src or args.layer is not None or args.head is not None or args.grid:
        raise AtentoError("--src, --layer, --head and --grid apply to text runs; a captioning "
                          "run takes one IMAGE and --out FILE.png")  # fmt: skip
    output_path(args.out, option="--out")
    path, caption = loaded.predictor.plot_attention(args.sentence, args.out, search_options(args))
    print(f"{path}\t{args.sentence}\t{caption.text}")
    return 0


def add_image_set_args(parser: argparse.ArgumentParser) -> None:
    """--split / --captions / --images / --strict: which images a captioning run is analysed on."""
    from atento.tasks.captioning import CaptionTask

    CaptionTask.add_evaluate_arguments(parser)
