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

from atento.cli.common import add_search_args, configured, open_run
from atento.errors import AtentoError
from atento.outputs import output_path
from atento.rundir import LoadedRun


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("caption", help="caption images with a captioning run")
    p.add_argument("run_dir", help="run directory written by `atento train` (task: caption)")
    p.add_argument("images", nargs="+", help="image files or folders of images")
    add_search_args(p, nbest=True)
    p.set_defaults(run=run)


def caption_run(run_dir: str) -> LoadedRun:
    """A loaded run whose task is captioning (else a one-line error)."""
    loaded = open_run(run_dir)
    if loaded.cfg.task != "caption":
        raise AtentoError(f"{run_dir} is a {loaded.cfg.task} run; this needs task: caption")
    return loaded


def run(args: argparse.Namespace) -> int:
    from atento.captioning.images import list_images

    loaded = caption_run(args.run_dir)
    paths = list_images(args.images)
    if not paths:
        raise AtentoError("no image files in " + ", ".join(args.images))
    translator = configured(loaded.translator(), args)
    feats, errors = loaded.task.image_features(paths, progress=sys.stderr.isatty())
    good = [i for i, f in enumerate(feats) if f is not None]
    hyps = dict(zip(good, translator.translate_ids([feats[i] for i in good]), strict=True))
    tok = loaded.tgt_tok
    for i, path in enumerate(paths):
        if i in errors:
            print(f"atento caption: error: {errors[i]}", file=sys.stderr)
            continue
        if args.nbest is None:
            print(f"{path}\t{tok.decode(hyps[i][0].tokens)}")
        else:
            for h in hyps[i]:
                print(f"{path}\t{h.score:.4f}\t{tok.decode(h.tokens)}")
    sys.stdout.flush()
    return 2 if errors else 0


def draw_attention(loaded: LoadedRun, args: argparse.Namespace) -> int:
    """`atento attention RUN IMAGE --out FILE.png` for a captioning run: the image once per
    output word with that word's attention over the regions laid over it."""
    from atento.analysis.overlay import plot_caption_attention
    from atento.captioning.images import read_image
    from atento.data.vocab import EOS_PIECE

    if args.src or args.layer is not None or args.head is not None or args.grid:
        raise AtentoError("--src, --layer, --head and --grid apply to text runs; a captioning "
                          "run takes one IMAGE and --out FILE.png")  # fmt: skip
    output_path(args.out, option="--out")
    translator = configured(loaded.translator(), args).with_attention()
    feats, errors = loaded.task.image_features([args.sentence])
    if errors:
        raise AtentoError(errors[0])
    hyp = translator.translate_ids([feats[0]])[0][0]
    tok = loaded.tgt_tok
    words = [tok.id_to_piece(i) for i in hyp.tokens] + ([EOS_PIECE] if hyp.finished else [])
    caption = tok.decode(hyp.tokens)
    image = read_image(args.sentence)
    path = plot_caption_attention(image, words, hyp.attention[: len(words)], args.out,
                                  title=caption)  # fmt: skip
    print(f"{path}\t{args.sentence}\t{caption}")
    return 0


def add_image_set_args(parser: argparse.ArgumentParser) -> None:
    """--split / --captions / --images / --strict: which images a captioning run is analysed on."""
    from atento.tasks.captioning import CaptionTask

    CaptionTask.add_evaluate_arguments(parser)


def image_set(loaded: LoadedRun, args: argparse.Namespace):
    """(image names, features (P, C) each, reference captions) of the images that --split or
    --captions/--images name (unreadable images skipped with a count, or an error with
    --strict)."""
    images, name = loaded.task.evaluation_set(args)
    feats, kept = loaded.task.features(images.images, what=name)
    return [images.images[i].name for i in kept], list(feats), [images.captions[i] for i in kept]
