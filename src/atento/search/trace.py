"""What beam search kept, finished and pruned at every step: the record behind beam trees.

`beam_search(..., trace=BeamTrace())` fills the trace as it decodes; without one the search
does no extra work (one `is None` test per step). For each sentence and step, the trace holds
the 2K candidates the search scored (best first, `-inf` ones left out), each with

- `parent`: the slot of the beam it extends, in the previous step's kept beams (0 at step 0);
- `token`, `log_prob` (accumulated) and `score` = length_penalty(log_prob, step + 1), the
  length-normalised score a finished hypothesis of that length would be ranked by;
- `status`: `kept` (continues as beam `slot` of this step), `finished` (an EOS that entered the
  sentence's finished list) or `pruned` (scored, then dropped: ranked below the K live beams,
  or an EOS outside the top K or past a full finished list).

So the kept beams of step t are the parents (slots) of step t + 1's candidates, and a path back
through `parent` spells a hypothesis.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from torch import Tensor

from atento.search.length_penalty import LengthPenalty

KEPT, FINISHED, PRUNED = "kept", "finished", "pruned"


@dataclass
class TraceCandidate:
    parent: int
    token: int
    log_prob: float
    score: float
    status: str
    slot: int | None = None  # position among this step's kept beams (status kept)


@dataclass
class TraceStep:
    step: int
    candidates: list[TraceCandidate]


@dataclass
class BeamTrace:
    """Per sentence (batch order), the steps of its search; filled by `beam_search`."""

    beam_size: int = 0
    sentences: list[list[TraceStep]] = field(default_factory=list)

    def start(self, batch_size: int, beam_size: int) -> None:
        self.beam_size = beam_size
        self.sentences = [[] for _ in range(batch_size)]

    def record(
        self,
        t: int,
        active: Tensor,
        log_prob: Tensor,
        beam: Tensor,
        token: Tensor,
        chosen: Tensor,
        finished: list[tuple[int, int]],
        penalty: LengthPenalty,
    ) -> None:
        """One step: active (A,) batch indices; log_prob, beam, token (A, 2K) candidates best
        first; chosen (A, K) positions kept; finished [(a, position)] the EOS moved to the
        finished lists."""
        done = set(finished)
        lps, beams, tokens = log_prob.tolist(), beam.tolist(), token.tolist()
        for a, b in enumerate(active.tolist()):
            slots = {pos: slot for slot, pos in enumerate(chosen[a].tolist())}
            candidates = []
            for i, lp in enumerate(lps[a]):
                if lp == float("-inf"):
                    continue
                status = FINISHED if (a, i) in done else KEPT if i in slots else PRUNED
                candidates.append(
                    TraceCandidate(
                        parent=beams[a][i], token=tokens[a][i], log_prob=lp,
                        score=float(penalty(lp, t + 1)), status=status, slot=slots.get(i),
                    )
                )  # fmt: skip
            self.sentences[b].append(TraceStep(t, candidates))

    def to_dict(self, sentence: int) -> dict:
        """Plain data (JSON-ready) for one sentence's steps."""
        return {
            "beam_size": self.beam_size,
            "steps": [asdict(s) for s in self.sentences[sentence]],
        }
