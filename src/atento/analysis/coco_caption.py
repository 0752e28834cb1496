"""The coco-caption scores of captions: BLEU-1..4, CIDEr-D and METEOR as computed by the scorer
that Xu et al. (2015) and most captioning papers report, `pycocoevalcap` (the coco-caption
code packaged for PyPI), on the hypotheses and references `atento evaluate` already has.

    coco_caption_scores(["a dog runs ."], [["a dog runs .", "a brown dog is running ."]])

What is and is not coco-caption's pipeline:
- **Tokens.** coco-caption runs Stanford's PTBTokenizer (Java) with lower-casing and then
  drops its punctuation tokens (`.`, `,`, `'`, `-`, ...). Our captions are already lower-cased
  and tokenised like the data, so the Java tokenizer is not run: the space-separated tokens go
  in as they are, less the tokens in coco-caption's own punctuation list
  (`pycocoevalcap.tokenizer.ptbtokenizer.PUNCTUATIONS`), with `"` and brackets treated as
  PTB's `''` and `-lrb-` (`coco_tokens`: on Flickr8k's captions the same tokens as the Java
  tokenizer for all but 8 of 35,455). The scores then do not depend on whether Java is
  installed (METEOR aside).
- **BLEU** (`Bleu(4)`): clipped n-gram counts (maximum over references), the closest reference
  length per image (ties: the shorter) summed over the corpus, the brevity penalty
  exp(1 - r/c), no smoothing (zero matches give ~0). On the same tokens this is sacreBLEU's
  corpus BLEU with `tokenize="none"` (a test checks it to 1e-6); the difference from the
  sacreBLEU figures `evaluate` also reports is the dropped punctuation.
- **CIDEr-D** (`Cider`, which coco-caption reports as "CIDEr"): tf-idf n-gram vectors (n =
  1..4), the idf taken over the evaluation set's own references, clipped cosine similarity
  averaged over references and n, a Gaussian length penalty (sigma 6; coco's "length" counts
  bigrams), times 10. It depends on the whole set: one image alone scores 0 (every idf is 0).
- **METEOR** (`Meteor`): meteor-1.5.jar with its English paraphrase table, both inside the
  wheel, run by `java` (`-l en -norm`). Needs a `java` on PATH; loading the table takes ~1.2
  GB and tens of seconds. Without Java, `meteor` is None and `meteor_note` says why.

Scores are reported x 100 (as the papers' tables print BLEU and METEOR; coco-caption prints
fractions, so CIDEr-D 54.3 here is coco-caption's 0.543).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SIGNATURE = (
    "pycocoevalcap 1.2: BLEU closest ref len, CIDEr-D (sigma 6, idf over the set's refs), "
    "METEOR 1.5 -l en -norm; data tokens, coco punctuation dropped, no PTBTokenizer; x100"
)


@dataclass
class CocoScores:
    bleu: list[float]  # BLEU-1 .. BLEU-4, x 100
    cider_d: float  # x 100
    meteor: float | None  # x 100; None when not computed
    meteor_note: str | None  # why METEOR is None

    def report(self) -> dict[str, Any]:
        """The fields `atento evaluate` adds to a captioning report."""
        b1, b2, b3, b4 = self.bleu
        return {
            "coco_bleu1": b1, "coco_bleu2": b2, "coco_bleu3": b3, "coco_bleu4": b4,
            "cider_d": self.cider_d, "meteor": self.meteor, "meteor_note": self.meteor_note,
            "coco_signature": SIGNATURE,
        }  # fmt: skip


# What PTBTokenizer -lowerCase makes of tokens that coco's punctuation list then misses: a
# double quote becomes `` or '' (in the list: dropped), brackets become -lrb- etc. (the list has
# only the upper-case forms, so coco-caption keeps them)
_AS_PTB = {'"': "''", "(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-",
           "}": "-rcb-"}  # fmt: skip


def coco_tokens(caption: str) -> str:
    """Space-separated tokens as coco-caption scores them: its punctuation tokens dropped,
    brackets spelt as PTBTokenizer spells them. On Flickr8k's 35,455 captions (lower-cased,
    as read) this equals PTBTokenizer + coco's punctuation removal on all but 8 (`cannot`,
    `at&t`, `bro!`: words PTB splits)."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS

    words = (_AS_PTB.get(w, w) for w in caption.split())
    return " ".join(w for w in words if w not in PUNCTUATIONS)


def _percent(x: float) -> float:
    return round(100.0 * float(x), 2)


def coco_caption_scores(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], *, meteor: bool = True
) -> CocoScores:
    """BLEU-1..4 and CIDEr-D of one caption per image against that image's references, and
    METEOR when `meteor` and a `java` is on PATH (module doc)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    if any(not refs for refs in references):
        raise ValueError("every image needs at least one reference")
    if not hypotheses:
        return CocoScores([0.0] * 4, 0.0, None, "no captions to score")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    res = {i: [coco_tokens(h)] for i, h in enumerate(hypotheses)}
    gts = {i: [coco_tokens(r) for r in refs] for i, refs in enumerate(references)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    if meteor:
        value, note = meteor_score(gts, res)
    else:
        value, note = None, "not computed (--no-meteor)"
    return CocoScores([_percent(b) for b in bleu], _percent(cider),
                      None if value is None else _percent(value), note)  # fmt: skip


def meteor_score(
    gts: dict[int, list[str]], res: dict[int, list[str]]
) -> tuple[float | None, str | None]:
    """coco-caption's corpus METEOR (a fraction) of `res` against `gts`, or (None, why)."""
    if shutil.which("java") is None:
        return None, "needs java (none on PATH; e.g. apt-get install default-jre-headless)"
    from pycocoevalcap.meteor.meteor import Meteor

    # "|||" separates fields in METEOR's protocol; the wrapper strips it from hypotheses only
    gts = {k: [r.replace("|||", "") for r in refs] for k, refs in gts.items()}
    try:
        scorer = Meteor()
    except OSError as e:
        return None, f"METEOR: could not start java ({e})"
    process = scorer.meteor_p
    try:
        value, _ = scorer.compute_score(gts, res)
        return float(value), None
    except (OSError, ValueError) as e:  # java died: an empty line, or a closed pipe
        process.kill()
        process.wait()
        if scorer.lock.locked():  # held by the failed call; __del__ takes it again
            scorer.lock.release()
        lines = process.stderr.read().decode(errors="replace").strip().splitlines()
        return None, f"METEOR failed: {lines[-1] if lines else e}"
    finally:
        del scorer  # its __del__ closes the pipe and ends java
