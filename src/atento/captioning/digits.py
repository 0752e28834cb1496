"""A synthetic attention check no paper offers: scenes of scikit-learn's bundled 8 x 8 digits
pasted at known cells of a 3 x 3 canvas, captioned "a 3 left of a 7 above a 1", on which the
attention mass inside the cell of the digit being named can be measured.

    train, held_out = make_scenes(2000, seed=1), make_scenes(200, seed=2, held_out=True)
    model = DigitsCaptioner(hidden_size=64)
    ...  # train on caption_batch-like batches (tests/caption/test_caption_digits.py)
    mass = named_cell_attention(model, held_out)    # mean alpha in the named digit's cell

Digits are named in reading order (row-major cells); between two consecutive digits the
relation is "left of" when they share a row, else "above". Training scenes use the first
1,200 digit images, held-out scenes the other 597, so held-out digits are unseen drawings.
The encoder is a small convolution of its own whose 3 x 3 output grid is aligned with the
cells (region p = cell p), and the decoder is `ShowAttendTell` unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from atento.data.tokenizers import WordTokenizer
from atento.models.base import DEFAULT_OPTIONS, DecodeOptions, EncoderOutput
from atento.models.captioning import ShowAttendTell

GRID, CELL = 3, 8  # a 24 x 24 canvas of 3 x 3 cells of 8 x 8 pixels
WORDS = ["a", "left", "of", "above", *[str(d) for d in range(10)]]
SPLIT = 1200  # digit images [0, SPLIT) for training scenes, the rest for held-out ones


def digits_tokenizer() -> WordTokenizer:
    return WordTokenizer(WORDS)


@dataclass
class Scene:
    """image (1, 24, 24) in [0, 1]; the digits' cells in reading order; the caption."""

    image: Tensor
    cells: list[int]
    caption: str


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    data = load_digits()
    return data.images.astype(np.float32) / 16.0, data.target


def make_scenes(n: int, *, seed: int, held_out: bool = False) -> list[Scene]:
    """n scenes of 2 or 3 digits at distinct random cells (module doc)."""
    images, labels = _digits()
    pool = np.arange(SPLIT, len(images)) if held_out else np.arange(SPLIT)
    rng = np.random.default_rng(seed)
    scenes = []
    for _ in range(n):
        k = int(rng.integers(2, 4))
        cells = sorted(rng.choice(GRID * GRID, size=k, replace=False).tolist())
        picks = rng.choice(pool, size=k, replace=False)
        canvas = np.zeros((GRID * CELL, GRID * CELL), dtype=np.float32)
        words = []
        for j, (cell, pick) in enumerate(zip(cells, picks, strict=True)):
            r, c = divmod(cell, GRID)
            canvas[r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL] = images[pick]
            if j:
                same_row = cells[j - 1] // GRID == r
                words += ["left", "of"] if same_row else ["above"]
            words += ["a", str(int(labels[pick]))]
        scenes.append(Scene(torch.from_numpy(canvas)[None], cells, " ".join(words)))
    return scenes


def collate_scenes(sources: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Images (1, 24, 24) -> (B, 1, 24, 24) and the all-true mask over the 9 regions."""
    images = torch.stack(list(sources)).float()
    return images, torch.ones(images.size(0), GRID * GRID, dtype=torch.bool)


class DigitsCaptioner(nn.Module):
    """A small convolutional encoder (its 3 x 3 output grid is the cells) + `ShowAttendTell`.

    Same protocol as the other models (`encode`, `init_state`, `step`, teacher-forcing
    `forward`), with images (B, 1, 24, 24) as sources."""

    def __init__(self, *, channels: int = 32, emb_size: int = 32, hidden_size: int = 64) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, CELL, stride=CELL), nn.ReLU(),  # (B, C, 3, 3)
        )  # fmt: skip
        self.decoder = ShowAttendTell(
            tgt_vocab=digits_tokenizer().vocab_size, feature_size=channels, emb_size=emb_size,
            hidden_size=hidden_size, dropout=0.0,
        )  # fmt: skip

    def regions(self, images: Tensor) -> Tensor:
        """images (B, 1, 24, 24) -> regions (B, 9, C), region p = cell p (row-major)."""
        maps = self.conv(images)  # (B, C, 3, 3)
        return maps.flatten(2).transpose(1, 2)

    def check_options(self, options: DecodeOptions) -> None:
        self.decoder.check_options(options)

    def encode(self, images: Tensor, mask: Tensor) -> EncoderOutput:
        return self.decoder.encode(self.regions(images), mask)

    def init_state(self, enc: EncoderOutput, options: DecodeOptions = DEFAULT_OPTIONS):
        return self.decoder.init_state(enc, options)

    def step(self, last_ids: Tensor, state, options: DecodeOptions = DEFAULT_OPTIONS):
        return self.decoder.step(last_ids, state, options)

    def forward(self, images: Tensor, mask: Tensor, tgt_in: Tensor, select: Tensor | None = None,
                options: DecodeOptions | None = None) -> tuple[Tensor, Tensor | None]:  # fmt: skip
        return self.decoder(self.regions(images), mask, tgt_in, select, options)


@torch.no_grad()
def named_cell_attention(model: nn.Module, scenes: list[Scene]) -> float:
    """Mean attention weight, over every digit named in `scenes`' captions, that the step
    emitting the digit puts on that digit's cell (teacher-forced: alpha_t is the attention
    of the step that writes word t). Chance (uniform attention) is 1 / 9."""
    from atento.tasks.captioning import caption_batch

    tok = digits_tokenizer()
    captions = [tok.encode(s.caption) for s in scenes]
    batch = caption_batch(torch.stack([s.image for s in scenes]), captions)
    mask = torch.ones(len(scenes), GRID * GRID, dtype=torch.bool)
    _, weights = model(batch.features, mask, batch.tgt_in, options=DecodeOptions(attention=True))
    digit_ids = {tok.encode(str(d))[0] for d in range(10)}
    masses = []
    for b, (scene, ids) in enumerate(zip(scenes, captions, strict=True)):
        positions = [t for t, i in enumerate(ids) if i in digit_ids]  # one per digit, in order
        for t, cell in zip(positions, scene.cells, strict=True):
            masses.append(float(weights[b, t, cell]))
    return sum(masses) / len(masses)
