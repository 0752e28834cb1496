"""Decoding: greedy and batched beam search over a model-agnostic step function.

See `atento.search.step` for the contract a model provides (a state with `expand`, `reorder`
and `select`, and a `step_fn(last_ids, state) -> (log_probs, state, attention)`).
"""

from atento.search.beam import beam_search
from atento.search.greedy import greedy_search
from atento.search.hypothesis import Hypothesis
from atento.search.length_penalty import LengthPenalty
from atento.search.step import SearchState, StepFn

__all__ = [
    "Hypothesis",
    "LengthPenalty",
    "SearchState",
    "StepFn",
    "beam_search",
    "greedy_search",
]
