"""coco-caption's scores (pycocoevalcap) on toys worked by hand: BLEU with its closest-length
rule, CIDEr-D with its tf-idf, clipping and bigram-counted length penalty, the maxima and the
zeros; coco BLEU equals sacreBLEU's on the same tokens; METEOR where Java is installed."""

import math
import random
import shutil

import pytest

from atento.analysis import coco_caption
from atento.analysis.coco_caption import coco_caption_scores, coco_tokens
from atento.training.metrics import caption_bleu


def scores(hyps, refs):
    return coco_caption_scores(hyps, refs, meteor=False)


def test_bleu_by_hand_with_the_closest_length_tie_going_to_the_shorter():
    # image 1: c = 4, refs 4 and 2 -> r = 4; 1..4-grams all match (4/4, 3/3, 2/2, 1/1)
    # image 2: c = 2, refs 3 and 1 tie at distance 1 -> r = 1 (the shorter); "e" and "f"
    #   match (2/2), "e f" does not (0/1); no 3- or 4-grams
    # corpus: c = 6 >= r = 5 (no brevity penalty); p1 = 6/6, p2 = 3/4, p3 = 2/2, p4 = 1/1
    s = scores(["a b c d", "e f"], [["a b c d", "a b"], ["e g h", "f"]])
    expected = [1.0, math.sqrt(0.75), 0.75 ** (1 / 3), 0.75 ** (1 / 4)]
    assert s.bleu == pytest.approx([round(100 * x, 2) for x in expected], abs=1e-9)
    # had the tie gone to the longer reference, r = 7 > 6 and BP = exp(1 - 7/6) = 0.85
    assert caption_bleu(["a b c d", "e f"], [["a b c d", "a b"], ["e g h", "f"]]).bleu == s.bleu


def test_cider_d_by_hand_on_two_images():
    # 2 images -> every n-gram of one image's references has df 1: idf = log 2 - log 1 = L;
    # an n-gram in no reference gets df max(1, 0) = 1, the same L.
    # image 1: "a b" vs refs "a b" (cosine 1 for n = 1, 2; no 3-, 4-grams: 0) and "c d" (0):
    #   10 * mean_n(1, 1, 0, 0) / 2 references = 2.5
    # image 2: "e f g" vs "e f": n = 1: (L^2 + L^2) / (sqrt(3) L sqrt(2) L) = 2 / sqrt 6,
    #   n = 2: L^2 / (sqrt(2) L L) = 1 / sqrt 2, n = 3: 0 (the reference has none);
    #   length penalty exp(-delta^2 / (2 * 6^2)) with coco's "length" = bigram count, 2 vs 1;
    #   "h i" shares nothing: 10 * (2/sqrt6 + 1/sqrt2) / 4 * exp(-1/72) / 2
    image2 = 10 * (2 / math.sqrt(6) + 1 / math.sqrt(2)) / 4 * math.exp(-1 / 72) / 2
    s = scores(["a b", "e f g"], [["a b", "c d"], ["e f", "h i"]])
    assert s.cider_d == pytest.approx(round(100 * (2.5 + image2) / 2, 2), abs=1e-9)


def test_identical_captions_give_the_maxima_and_disjoint_ones_zero():
    refs = [["a dog runs on grass"] * 3, ["two men play football"] * 3]
    best = scores(["a dog runs on grass", "two men play football"], refs)
    assert best.bleu == [100.0] * 4
    assert best.cider_d == 1000.0  # cosine 1 for every n, no length penalty, times 10
    worst = scores(["the cat sleeps inside", "one kid reads books"], refs)
    assert worst.bleu[0] == 0.0 and worst.bleu[3] < 1e-3 and worst.cider_d == 0.0


def test_one_image_has_no_cider():
    # idf = log(1) - log(1) = 0 for every n-gram: CIDEr-D needs a set of images
    assert scores(["a dog runs"], [["a dog runs"]]).cider_d == 0.0


def test_coco_bleu_equals_sacrebleu_on_the_same_tokens():
    rng = random.Random(0)
    words = ["a", "dog", "runs", "on", "grass"]
    hyps, refs = [], []
    for _ in range(40):
        hyps.append(" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))))
        refs.append([" ".join(rng.choice(words) for _ in range(rng.randint(3, 9)))
                     for _ in range(rng.randint(1, 5))])  # fmt: skip
    coco, sacre = scores(hyps, refs).bleu, caption_bleu(hyps, refs).bleu
    assert all(x > 0 for x in coco)
    assert coco == pytest.approx(sacre, abs=0.011)  # both rounded to 2 decimals


def test_punctuation_tokens_are_dropped_as_coco_caption_does():
    assert coco_tokens("a dog , running - fast .") == "a dog running fast"
    # PTBTokenizer turns " into `` / '' (dropped) and ( into -LRB-, which -lowerCase makes
    # -lrb-: not in coco's list (upper case only), so coco-caption keeps it
    assert coco_tokens('a sign saying " hi " ( red )') == "a sign saying hi -lrb- red -rrb-"
    s = scores(["a dog runs on grass .", "two men play with a ball ."],
               [["a dog runs on grass"], ["two men play with a , ball"]])  # fmt: skip
    assert s.bleu == [100.0] * 4


def test_report_fields_and_the_missing_java_note(monkeypatch):
    monkeypatch.setattr(coco_caption.shutil, "which", lambda name: None)
    report = coco_caption_scores(["a b", "c d"], [["a b"], ["c d"]]).report()
    assert {"coco_bleu1", "coco_bleu2", "coco_bleu3", "coco_bleu4", "cider_d"} <= set(report)
    assert report["meteor"] is None and "needs java" in report["meteor_note"]
    assert "pycocoevalcap" in report["coco_signature"]


def test_mismatched_lengths_and_empty_references_are_errors():
    with pytest.raises(ValueError, match="reference lists"):
        scores(["a"], [])
    with pytest.raises(ValueError, match="at least one reference"):
        scores(["a"], [[]])


@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR runs a jar: no java on PATH")
def test_meteor_with_java(monkeypatch):
    # one Java process for everything (loading the paraphrase table takes the time)
    from pycocoevalcap.meteor import meteor

    dog = ["a dog runs on the grass", "a brown dog is running"]
    men = ["two men play football", "men are playing soccer"]
    refs = {0: dog, 1: men, 2: dog, 3: men, 4: dog, 5: men}
    hyps = {0: ["a dog runs on the grass"], 1: ["two men play football"],  # exact
            2: ["a dog is running on grass"], 3: ["two men playing soccer"],  # close
            4: ["xyz"], 5: ["qwv"]}  # fmt: skip
    scorer = meteor.Meteor()  # ends with the test (its __del__ stops java)
    _, per_image = scorer.compute_score(refs, hyps)
    same, close, none = per_image[0:2], per_image[2:4], per_image[4:6]
    assert none == [0.0, 0.0]
    assert all(0.0 < c < s <= 1.0 for c, s in zip(close, same, strict=True))
    assert min(same) > 0.9  # exact matches: only the fragmentation penalty is left
    # atento's wrapper: the same scorer's corpus score on a subset
    monkeypatch.setattr(meteor, "Meteor", lambda: scorer)
    subset = {k: refs[k] for k in (2, 3)}, {k: hyps[k] for k in (2, 3)}
    value, note = coco_caption.meteor_score(*subset)
    assert note is None and value == pytest.approx(scorer.compute_score(*subset)[0])
    assert min(close) <= value <= max(close)
