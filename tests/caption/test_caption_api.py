"""`atento.load(run).caption(...)` gives what `atento caption` prints."""

import pytest

import atento
from atento.cli.main import main
from atento.errors import AtentoError


def test_api_caption_equals_the_command(caption_run, flickr_mini, capsys):
    images = [flickr_mini / "images" / n for n in (flickr_mini / "dev.txt").read_text().split()]
    m = atento.load(caption_run)
    got = m.caption(images, beam=3, alpha=0.5)
    capsys.readouterr()
    assert main(["caption", str(caption_run), *map(str, images), "--beam", "3",
                 "--alpha", "0.5"]) == 0  # fmt: skip
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"{c.image}\t{c.text}" for c in got]
    two = m.caption(images[0], beam=3, nbest=2)[0].nbest
    assert len(two) == 2 and two[0].score >= two[1].score  # outputs, as a translation's n-best
    with pytest.raises(AtentoError, match="caption run; translate needs a translation or lm run"):
        m.translate("a dog")
    with pytest.raises(AtentoError, match="not_there.jpg"):
        m.caption(flickr_mini / "not_there.jpg")


def test_plot_attention_of_a_captioning_run_draws_the_image(caption_run, flickr_mini, tmp_path):
    image = flickr_mini / "images" / (flickr_mini / "dev.txt").read_text().split()[0]
    path = atento.load(caption_run).plot_attention(str(image), tmp_path / "cap.png", beam=2)
    assert path.is_file() and path.stat().st_size > 1000
