"""Special ids come from the tokenizer, never from the constants of `data/vocab.py`.

The oracle: permute every id of a trained run (the tokenizer's and the rows of the model's
embeddings and output layer alike), so that PAD, UNK, BOS and EOS land on other ids (EOS on 0,
where PAD was). The permuted run is the same model; decoding, scoring and the teacher-forced
loss must give the same text and the same numbers. A constant left anywhere in the path feeds
or bans the wrong token and changes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from atento.analysis.scoring import score_sequences, target_ids
from atento.data.vocab import Tokenizer
from atento.inference import Translator
from atento.registry import build_model
from atento.rundir import load_run
from atento.search import LengthPenalty

SOURCES = ["9 april 1974", "12 may 2001", "thursday, 3 march 1988", "1 jan 2000"]


class Permuted(Tokenizer):
    """`base` with every id i renamed perm[i]."""

    kind = "permuted"

    def __init__(self, base: Tokenizer, perm: list[int]) -> None:
        self.base, self.perm = base, perm
        self.inverse = {new: old for old, new in enumerate(perm)}

    def _map(self, i: int | None) -> int | None:
        return None if i is None else self.perm[i]

    pad_id = property(lambda self: self._map(self.base.pad_id))
    unk_id = property(lambda self: self._map(self.base.unk_id))
    bos_id = property(lambda self: self._map(self.base.bos_id))
    eos_id = property(lambda self: self._map(self.base.eos_id))

    @property
    def vocab_size(self) -> int:
        return self.base.vocab_size

    def encode(self, text: str) -> list[int]:
        return [self.perm[i] for i in self.base.encode(text)]

    def decode(self, ids: Sequence[int]) -> str:
        return self.base.decode([self.inverse[int(i)] for i in ids])

    def pieces(self, text: str) -> list[str]:
        return self.base.pieces(text)

    def id_to_piece(self, i: int) -> str:
        return self.base.id_to_piece(self.inverse[i])

    def state(self) -> dict[str, Any]:
        raise NotImplementedError

    def save(self, directory: Path, name: str) -> None:
        raise NotImplementedError


def _permutation(n: int) -> list[int]:
    """Specials moved: EOS (3) -> 0, PAD (0) -> n - 1, BOS (2) -> 5, UNK (1) -> 4; the rest
    reversed into the free places."""
    perm = [-1] * n
    for old, new in {3: 0, 0: n - 1, 2: 5, 1: 4}.items():
        perm[old] = new
    free = iter(sorted(set(range(n)) - set(perm), reverse=True))
    return [p if p >= 0 else next(free) for p in perm]


def _permuted_run(run_dir: Path) -> tuple[Any, Translator, Translator]:
    run = load_run(run_dir, device="cpu")
    tok = run.tgt_tok
    assert run.src_tok is tok  # the toy runs share one vocabulary
    perm = _permutation(tok.vocab_size)
    ptok = Permuted(tok, perm)
    index = torch.tensor([ptok.inverse[i] for i in range(tok.vocab_size)])  # new row <- old
    state = {}
    for key, value in run.model.state_dict().items():
        named = "embed" in key or "output" in key
        rows = named and value.dim() >= 1 and value.size(0) == tok.vocab_size
        state[key] = value.index_select(0, index) if rows else value
    model = build_model(run.cfg, src_vocab=tok.vocab_size, tgt_vocab=tok.vocab_size,
                        pad_id=ptok.pad_id)  # fmt: skip
    model.load_state_dict(state)
    model.eval()
    search = replace(run.cfg.search, ban_unk=True)
    plain = Translator(run.model, tok, tok, search)
    return run, plain, Translator(model, ptok, ptok, search)


@pytest.mark.parametrize("which", ["tf_run", "toy_run"])
@pytest.mark.parametrize("beam", [1, 3])
def test_a_permuted_run_decodes_the_same_text_and_scores(which, beam, request):
    run, plain, permuted = _permuted_run(request.getfixturevalue(which))
    assert permuted.tgt_tok.eos_id == 0 and permuted.tgt_tok.pad_id != 0
    a = plain.with_search(beam=beam, nbest=beam).translate(SOURCES)
    b = permuted.with_search(beam=beam, nbest=beam).translate(SOURCES)
    for hyps_a, hyps_b in zip(a, b, strict=True):
        assert [plain.tgt_tok.decode(h.tokens) for h in hyps_a] == [
            permuted.tgt_tok.decode(h.tokens) for h in hyps_b
        ]
        assert [h.score for h in hyps_a] == pytest.approx([h.score for h in hyps_b], abs=1e-4)
        assert [h.finished for h in hyps_a] == [h.finished for h in hyps_b]


def test_a_permuted_run_scores_references_the_same(tf_run):
    run, plain, permuted = _permuted_run(tf_run)
    refs = ["1974-04-09", "2001-05-12", "1988-03-03", "2000-01-01"]
    scores = []
    for t in (plain, permuted):
        tok = t.tgt_tok
        scores.append(score_sequences(
            t.model, tok.encode_batch(SOURCES), tok.encode_batch(refs),
            length_penalty=LengthPenalty(0.6), collate=t.collate, **target_ids(tok.search_ids()),
        ))  # fmt: skip
    assert [s.log_prob for s in scores[0]] == pytest.approx([s.log_prob for s in scores[1]],
                                                           abs=1e-4)  # fmt: skip


def test_a_permuted_run_samples_the_same_text(tf_run):  # top-k 1: the draw is order-free
    _, plain, permuted = _permuted_run(tf_run)
    texts = []
    for t in (plain, permuted):
        g = torch.Generator().manual_seed(3)
        ids = t.sample_ids(t.tgt_tok.encode_batch(SOURCES), max_new=12, top_k=1, generator=g)
        texts.append([t.tgt_tok.decode(x) for x in ids])
    assert texts[0] == texts[1]
