"""Sampling as a search strategy over step_fn: scripted distributions worked out by hand."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from atento.search.sampling import sample_search

EOS, PAD, BOS = 3, 0, 2


@dataclass
class Rows:
    """A state that only knows which original row each of its rows is (select keeps track)."""

    rows: torch.Tensor

    def select(self, index: torch.Tensor) -> Rows:
        return Rows(self.rows[index])


def scripted(table: dict[int, list[float]]):
    """step_fn whose row r always gives the distribution table[r] (probabilities over V=6)."""
    calls = []

    def step(last_ids, state: Rows):
        calls.append((last_ids.tolist(), state.rows.tolist()))
        probs = torch.tensor([table[int(r)] for r in state.rows])
        return probs.log(), state, None

    return step, calls


def test_a_row_that_draws_eos_is_finished_and_dropped():
    # row 0 can only draw EOS; row 1 only token 5; temperature 1, every draw forced
    step, calls = scripted({0: [0, 0, 0, 1, 0, 0], 1: [0, 0, 0, 0, 0, 1]})
    g = torch.Generator().manual_seed(0)
    out = sample_search(step, Rows(torch.tensor([0, 1])), start_ids=torch.tensor([BOS, BOS]),
                        max_len=4, eos_id=EOS, generator=g)  # fmt: skip
    assert out == [[EOS], [5, 5, 5, 5]]  # EOS kept as the last token; the other runs to max_len
    assert [rows for _, rows in calls] == [[0, 1], [1], [1], [1]]  # row 0 dropped after EOS
    assert calls[0][0] == [BOS, BOS] and calls[1][0] == [5]  # each row is fed its last draw


def test_without_eos_every_row_gets_max_len_tokens_and_banned_ids_are_never_drawn():
    # PAD and BOS carry 0.9 of the mass; banned, the rest decides: tokens 4 and 5 only
    table = {0: [0.45, 0.0, 0.45, 0.0, 0.05, 0.05]}
    step, _ = scripted(table)
    out = sample_search(step, Rows(torch.tensor([0, 0, 0])), start_ids=torch.tensor([1, 1, 1]),
                        max_len=20, banned=(PAD, BOS),
                        generator=torch.Generator().manual_seed(3))  # fmt: skip
    assert all(len(r) == 20 for r in out)
    drawn = {t for r in out for t in r}
    assert drawn <= {4, 5} and drawn == {4, 5}  # both still drawn: renormalised 1/2 each


def test_greedy_and_top_k_one_pick_the_argmax():
    step, _ = scripted({0: [0.1, 0.1, 0.1, 0.1, 0.2, 0.4]})
    for kw in (dict(temperature=0), dict(top_k=1), dict(top_p=0.3)):
        out = sample_search(
            step,
            Rows(torch.tensor([0])),
            start_ids=torch.tensor([1]),
            max_len=5,
            generator=torch.Generator().manual_seed(1),
            **kw,
        )
        assert out == [[5] * 5], kw


def test_on_step_sees_each_steps_tokens_of_the_live_rows():
    step, _ = scripted({0: [0, 0, 0, 1, 0, 0], 1: [0, 0, 0, 0, 1, 0]})
    seen = []
    sample_search(step, Rows(torch.tensor([0, 1])), start_ids=torch.tensor([BOS, BOS]), max_len=3,
                  eos_id=EOS, on_step=seen.append)  # fmt: skip
    assert seen == [[EOS, 4], [4], [4]]
