"""Reading images for the encoder: RGB, 224 x 224, scaled to [-1, 1] (Pillow).

Grayscale, palette, CMYK and RGBA images are converted to RGB (transparency composited on
white); huge images are decoded at a reduced size first (JPEG draft mode) and refused only
beyond Pillow's decompression-bomb limit. A missing, empty, truncated or non-image file is an
`AtentoError` naming the file (one line).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from atento.errors import AtentoError

IMAGE_SIZE = 224
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def read_image(path: str | Path, size: int = IMAGE_SIZE) -> Image.Image:
    """The image at `path` as an RGB Pillow image of size x size (aspect ratio not kept, as
    the Flickr8k copy was made); AtentoError (one line, naming the file) when unreadable."""
    path = Path(path)
    try:
        found = path.is_file()
    except (OSError, ValueError):  # e.g. a NUL byte in the name
        found = False
    if not found:
        raise AtentoError(f"image not found: {path}")
    if path.stat().st_size == 0:
        raise AtentoError(f"{path}: empty file, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.draft("RGB", (size, size))  # JPEG: decode a huge image at a reduced scale
                img.load()
                rgb = _to_rgb(img)
    except (UnidentifiedImageError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:  # fmt: skip
        what = "not an image (or a format Pillow cannot read)"
        if not isinstance(exc, UnidentifiedImageError):
            what = "too large to decode safely (Pillow's decompression-bomb limit)"
        raise AtentoError(f"{path}: {what}") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AtentoError(f"{path}: unreadable image ({first})") from None
    return rgb.resize((size, size), Image.Resampling.BILINEAR)


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB, with any transparency composited on white."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def image_tensor(img: Image.Image) -> Tensor:
    """An RGB Pillow image -> (3, H, W) float tensor scaled to [-1, 1] (EfficientNet-Lite's
    input: (x / 255 - 0.5) / 0.5)."""
    array = np.asarray(img, dtype=np.float32)  # (H, W, 3) in 0..255
    return torch.from_numpy(array).permute(2, 0, 1).div(127.5).sub(1.0).contiguous()


def load_image(path: str | Path, size: int = IMAGE_SIZE) -> Tensor:
    """`read_image` + `image_tensor`: (3, size, size) in [-1, 1]."""
    return image_tensor(read_image(path, size))


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):  # e.g. a NUL byte in the name: not a folder
        return False


def list_images(paths: list[str]) -> list[Path]:
    """Files as given, folders expanded to the image files inside them (sorted by name)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if _is_dir(p):
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out
