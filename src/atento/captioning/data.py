"""Caption data: the Flickr8k layout and a plain folder of images + TSV of captions.

Flickr8k (`data.corpus: flickr8k`, `data.dir`): `images/NAME.jpg`, `{train,dev}.txt` (the
image names of each split, one a line) and `captions.txt` (`NAME.jpg#K<TAB>caption`). The
reader starts from the split list: captions.txt also names images that are in no split here.

TSV (`data.corpus: tsv`): `file<TAB>caption` lines, file names relative to the images folder;
an image may have several lines (several references). An image named there but missing is
skipped with a count on stderr, or an error under `strict`.

Every image keeps all its references (for BLEU with several references); captions are
normalised to lower-cased, whitespace-separated words (the data's own tokenisation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from atento.data.lines import readable_path
from atento.errors import AtentoError, warn


def normalise(caption: str) -> str:
    """Lower-cased, single-spaced: the form captions are trained on and scored in."""
    return " ".join(caption.lower().split())


@dataclass
class CaptionSet:
    """Images with their reference captions (normalised), one entry per image."""

    images: list[Path] = field(default_factory=list)
    captions: list[list[str]] = field(default_factory=list)
    skipped: int = 0  # images named but missing (or without a caption)

    def __len__(self) -> int:
        return len(self.images)

    def head(self, n: int) -> CaptionSet:
        """The first n images (all when n <= 0)."""
        if n <= 0:
            return self
        return CaptionSet(self.images[:n], self.captions[:n], self.skipped)


def _read_lines(path: Path) -> list[str]:
    path = readable_path(path)  # a file, or a pipe (`--captions <(...)`)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise AtentoError(f"{path}: invalid UTF-8 at byte offset {exc.start}") from None
    except OSError as exc:
        raise AtentoError(f"cannot read {path}: {exc.strerror or exc}") from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise AtentoError(f"{path}: empty file")
    return lines


def _split_tab(line: str, path: Path, number: int) -> tuple[str, str]:
    if "\t" not in line:
        raise AtentoError(f"{path}:{number}: no tab: expected file<TAB>caption")
    name, caption = line.split("\t", 1)
    return name.strip(), caption


def _collect(
    names: list[str], captions: dict[str, list[str]], images: Path, *, strict: bool, what: str
) -> CaptionSet:
    """A CaptionSet of `names` (in order) whose image file exists and has a caption."""
    out = CaptionSet()
    for name in names:
        path = images / name
        if not path.is_file():
            if strict:
                raise AtentoError(f"{what}: image {path} not found (strict)")
            out.skipped += 1
            continue
        refs = [c for c in captions.get(name, []) if c]
        if not refs:
            if strict:
                raise AtentoError(f"{what}: image {name} has no caption (strict)")
            out.skipped += 1
            continue
        out.images.append(path)
        out.captions.append(refs)
    if out.skipped:
        warn(f"{what}: {out.skipped} image(s) missing or without a caption skipped")
    if not out.images:
        raise AtentoError(f"{what}: no image with a caption found")
    return out


def read_flickr8k(directory: str | Path, split: str, *, strict: bool = False) -> CaptionSet:
    """The images of `split` (`{split}.txt`) with their captions from captions.txt."""
    directory = Path(directory)
    if not directory.is_dir():
        raise AtentoError(f"Flickr8k folder not found: {directory}")
    split_file = directory / f"{split}.txt"
    names = [n.strip() for n in _read_lines(split_file) if n.strip()]
    wanted = set(names)
    captions: dict[str, list[str]] = {}
    path = directory / "captions.txt"
    for number, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        key, caption = _split_tab(line, path, number)
        name = key.split("#", 1)[0]
        if name in wanted:
            captions.setdefault(name, []).append(normalise(caption))
    return _collect(names, captions, directory / "images", strict=strict, what=str(split_file))


def read_tsv(tsv: str | Path, images: str | Path, *, strict: bool = False) -> CaptionSet:
    """Images of a `file<TAB>caption` file (several lines per image allowed), in order of
    first appearance; file names are relative to the `images` folder."""
    tsv, images = Path(tsv), Path(images)
    if not images.is_dir():
        raise AtentoError(f"images folder not found: {images}")
    captions: dict[str, list[str]] = {}
    for number, line in enumerate(_read_lines(tsv), 1):
        if not line.strip():
            continue
        name, caption = _split_tab(line, tsv, number)
        captions.setdefault(name, []).append(normalise(caption))
    return _collect(list(captions), captions, images, strict=strict, what=str(tsv))
