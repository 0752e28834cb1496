"""What the server's routes take and give: the request models, the limits, the error form.

Errors are JSON, `{"error": {"status": 422, "message": "...", "item": "texts[3]"}}`, naming the
offending item: malformed JSON and wrong fields 422, too many sentences / characters / bytes
413, a full queue 429, a request that outlives `timeout_s` 504. Bad input never causes a 500.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from atento.predictors.outputs import Translation


@dataclass(frozen=True)
class Limits:
    """What one request may ask for, and how requests are batched."""

    max_sentences: int = 32  # per request (413 beyond)
    max_chars: int = 1000  # per sentence (413 beyond)
    max_body_bytes: int = 256_000  # per request body (413 beyond)
    max_beam: int = 16  # 422 beyond
    max_queue: int = 256  # sentences waiting per model (429 beyond)
    max_attention_cells: int = 200_000  # weights one response may carry (413 beyond)
    timeout_s: float = 30.0  # per request (504 beyond)
    max_batch_tokens: int = 2048  # source tokens decoded in one batch
    max_wait_ms: float = 5.0  # how long the oldest request waits for company
    max_new_tokens: int = 1000  # per sample request (413 beyond)
    max_samples: int = 8  # per sample request (413 beyond)
    batching: bool = True  # False: one request at a time


class ApiError(Exception):
    def __init__(self, status: int, message: str, item: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.item = status, message, item


def error_body(status: int, message: str, item: str | None = None) -> JSONResponse:
    body = {"error": {"status": status, "message": message, "item": item}}
    return JSONResponse(body, status_code=status)


class TranslateRequest(BaseModel):
    """One sentence (`text`) or several (`texts`); unset settings take the run's defaults."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, description="one source sentence")
    texts: list[str] | None = Field(None, description="several source sentences")
    model: str | None = Field(None, description="which loaded run (default: the first)")
    beam: int | None = Field(None, ge=1, description="beam width K (1 = greedy)")
    alpha: float | None = Field(None, ge=0, description="length normalisation score/Ty^alpha")
    nbest: int | None = Field(None, ge=1, description="hypotheses per sentence (<= beam)")
    attention: bool = Field(False, description="return each hypothesis's attention matrix")
    layer: int | None = Field(None, description="Transformer decoder layer (-1 = last)")
    head: int | None = Field(None, ge=0, description="Transformer head (default: mean)")
    trace: bool = Field(False, description="return the beam search's steps (one sentence)")


class SampleRequest(BaseModel):
    """A prompt for a language-model run, and how to sample its continuation."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field("", description="text to continue (empty: start from a line break)")
    model: str | None = Field(None, description="which loaded run (default: the first lm run)")
    max_new: int = Field(200, ge=1, description="new tokens per sample")
    temperature: float = Field(1.0, ge=0, description="0 = greedy")
    top_k: int = Field(0, ge=0, description="sample among the k most likely (0: all)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus: the smallest set of mass p")
    seed: int = Field(1, description="the same seed gives the same text")
    num: int = Field(1, ge=1, description="samples, decoded as one batch")
    keep_last: bool = Field(False, description="a prompt beyond the context: keep its end")


class AttentionRequest(BaseModel):
    """Self-attention over a text, for runs without a decoder to follow (language models)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(..., description="the text (a prompt)")
    model: str | None = Field(None, description="which loaded run (default: the first lm run)")
    layer: int | None = Field(None, description="layer (-1 = last)")
    head: int | None = Field(None, ge=0, description="head (default: mean)")


class ClassifyRequest(BaseModel):
    """Sentences for a classification run."""

    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(..., description="sentences to label")
    model: str | None = Field(None, description="which loaded run (default: the first classifier)")


SERVED = ("translate", "sample", "classify", "self_attention")  # what the routes offer


def item_name(loc: tuple) -> str:
    parts = [str(p) for p in loc if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def translation_json(t: Translation, *, attention: bool) -> dict:
    def output(o) -> dict:
        d = {
            "text": o.text, "pieces": o.pieces, "score": o.score, "log_prob": o.log_prob,
            "token_log_probs": o.token_log_probs, "finished": o.finished,
        }  # fmt: skip
        if attention and o.attention is not None:
            d["attention"] = [[round(w, 4) for w in row] for row in o.attention.tolist()]
            d["attention_rows"] = o.attention_rows
        return d

    return {
        "source": t.source,
        "source_pieces": t.source_pieces,
        "text": t.text,
        "score": t.score,
        "nbest": [output(o) for o in t.nbest],
    }
