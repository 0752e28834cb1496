"""The predictor of a captioning run: caption images, draw attention over their regions, and
the corpus analyses (search errors, beam sweeps) over an image set with all its references.

Sources are the images' feature grids (P, C) from the run's feature cache; everything after
that (greedy and beam search, scoring) is the translation code as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atento.errors import AtentoError
from atento.inference import Translator
from atento.options import NO_SEARCH, SearchOptions, ViewOptions
from atento.predictors.decoding import DecoderPredictor
from atento.predictors.outputs import wrap_outputs


@dataclass
class Caption:
    """An image's caption: `text` (the best) and `nbest`, best first, each an output with
    `.text`, `.score` and `.pieces` (as a translation's n-best)."""

    image: str
    nbest: list[Any]

    @property
    def text(self) -> str:
        return self.nbest[0].text

    @property
    def score(self) -> float:
        return self.nbest[0].score


@dataclass
class ImageSet:
    """Images with their reference captions: names, features (P, C) each, references."""

    names: list[str]
    features: list[Any]
    references: list[list[str]]


class CaptionPredictor(DecoderPredictor):
    operations = frozenset({"caption", "corpus", "image_attention"})
    reads = frozenset({"split", "captions", "images", "strict", "no_meteor", "hyp_out"})

    @property
    def tok(self):
        return self.run.tokenizers["tgt"]

    def base_translator(self) -> Translator:
        return self.run.task.translator(self.run.model, self.run.placement)

    def decode(self, tokens: list[int]) -> str:
        return self.tok.decode(tokens)

    def output_pieces(self, tokens: list[int]) -> list[str]:
        return [self.tok.id_to_piece(i) for i in tokens]

    def features(self, paths: list[str | Path], *, progress: bool = False):
        """(features (P, C) or None each, {index: error}) of image files, from the cache."""
        return self.run.task.image_features(paths, progress=progress)

    def caption(
        self, paths: list[str | Path], search: SearchOptions = NO_SEARCH, *,
        attention: bool = False, progress: bool = False,
    ) -> tuple[list[Caption | None], dict[int, str]]:  # fmt: skip
        """A `Caption` per readable image (None for the others) and {index: error}."""
        if not paths:
            raise AtentoError("no images to caption")
        t = self.translator(search, ViewOptions(attention=attention))
        feats, errors = self.features(paths, progress=progress)
        good = [i for i, f in enumerate(feats) if f is not None]
        hyps = dict(zip(good, t.translate_ids([feats[i] for i in good]), strict=True))
        out: list[Caption | None] = [None] * len(paths)
        for i in good:
            out[i] = Caption(str(paths[i]), wrap_outputs(self, hyps[i], columns=None))
        return out, errors

    def plot_attention(
        self, image: str | Path, path: str | Path, search: SearchOptions = NO_SEARCH
    ) -> tuple[Path, Caption]:
        """Caption `image` and draw it once per output word (EOS included when finished) with
        that word's attention over the regions laid over it, into the PNG `path`."""
        from atento.analysis.overlay import plot_caption_attention
        from atento.captioning.images import read_image

        (caption,), errors = self.caption([image], search, attention=True)
        if errors:
            raise AtentoError(errors[0])
        best = caption.nbest[0]
        words = best.attention_rows  # the pieces, and EOS when finished
        drawn = plot_caption_attention(read_image(image), words, best.attention[: len(words)],
                                       path, title=caption.text)  # fmt: skip
        return drawn, caption

    def image_set(self, options: Any) -> ImageSet:
        """The images and references that --split or --captions/--images name (unreadable
        images skipped with a count, or an error with --strict)."""
        images, name = self.run.task.evaluation_set(options)
        feats, kept = self.run.task.features(images.images, what=name)
        return ImageSet([images.images[i].name for i in kept], list(feats),
                        [images.captions[i] for i in kept])  # fmt: skip
