"""Caption readers: Flickr8k starts from the split lists; a folder + TSV skips (or, strict,
refuses) missing images; malformed files are one-line errors; the word vocabulary."""

import os

import pytest

from atento.captioning.data import read_flickr8k, read_tsv
from atento.data.tokenizers import WordTokenizer, tokenizer_from_state
from atento.data.vocab import UNK_ID
from atento.errors import AtentoError


def test_flickr8k_reads_split_lists_with_all_references(flickr_mini):
    train = read_flickr8k(flickr_mini, "train")
    dev = read_flickr8k(flickr_mini, "dev")
    assert len(train) == 8 and len(dev) == 2 and train.skipped == 0
    assert all(len(refs) == 5 for refs in train.captions + dev.captions)
    names = {p.name for p in train.images + dev.images}
    assert "not_in_any_split.jpg" not in names  # captions.txt names it; no split does
    assert all(c == c.lower() and "  " not in c for refs in train.captions for c in refs)


def test_tsv_missing_image_skipped_with_count_or_strict_error(flickr_mini, tmp_path, capsys):
    names = sorted(p.name for p in (flickr_mini / "images").iterdir())[:2]
    tsv = tmp_path / "captions.tsv"
    tsv.write_text(
        f"{names[0]}\tA dog runs .\n{names[0]}\tA brown dog .\nmissing.jpg\tNothing here .\n"
        f"{names[1]}\tTwo people .\n",
        encoding="utf-8",
    )
    data = read_tsv(tsv, flickr_mini / "images")
    assert [p.name for p in data.images] == names
    assert data.captions[0] == ["a dog runs .", "a brown dog ."]
    assert data.skipped == 1
    assert "1 image(s) missing" in capsys.readouterr().err
    with pytest.raises(AtentoError, match="missing.jpg not found"):
        read_tsv(tsv, flickr_mini / "images", strict=True)
    read, write = os.pipe()  # `--captions <(cat captions.tsv)`: a pipe reads the same
    os.write(write, tsv.read_bytes())
    os.close(write)
    piped = read_tsv(f"/dev/fd/{read}", flickr_mini / "images")
    assert piped.captions == data.captions and piped.images == data.images
    with pytest.raises(AtentoError, match="is a folder, not a file"):
        read_tsv(tmp_path, flickr_mini / "images")


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "empty file"), ("a.jpg a caption without a tab\n", ":1: no tab")],
)
def test_malformed_tsv_is_a_one_line_error(tmp_path, flickr_mini, text, message):
    tsv = tmp_path / "bad.tsv"
    tsv.write_text(text, encoding="utf-8")
    with pytest.raises(AtentoError, match=message) as err:
        read_tsv(tsv, flickr_mini / "images")
    assert str(tsv) in str(err.value) and "\n" not in str(err.value)


def test_word_tokenizer_min_count_and_round_trip():
    tok = WordTokenizer.from_texts(["A dog runs .", "a dog sits .", "A cat"], min_count=2)
    assert tok.words == ["a", ".", "dog"]  # by count, then alphabetically
    ids = tok.encode("A Dog jumps .")
    assert ids[2] == UNK_ID and tok.decode(ids) == "a dog \u2047 ."
    again = tokenizer_from_state(tok.state())
    assert again.encode("a dog .") == tok.encode("a dog .")
