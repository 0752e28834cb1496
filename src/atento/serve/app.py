"""The FastAPI app: POST /v1/translate, /v1/sample, /v1/classify and /v1/attention, GET /health,
GET /v1/models, the page at /. Each route dispatches to the runs' predictors
(`atento.predictors`): a route serves every run whose task offers its operation.

Errors are JSON, `{"error": {"status": 422, "message": "...", "item": "texts[3]"}}`, naming the
offending item: malformed JSON and wrong fields 422, too many sentences / characters / bytes
413, a full queue 429, a request that outlives `timeout_s` 504. Bad input never causes a 500.
"""

from __future__ import annotations

import asyncio
import math
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from atento.api import Model, Translation
from atento.errors import AtentoError
from atento.options import OptionError, SampleOptions, SearchOptions, ViewOptions
from atento.serve.batcher import Batcher, QueueFull
from atento.serve.limits import BodyLimit

STATIC = Path(__file__).parent / "static"


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


def _error(status: int, message: str, item: str | None = None) -> JSONResponse:
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


def _item(loc: tuple) -> str:
    parts = [str(p) for p in loc if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def _translation_json(t: Translation, *, attention: bool) -> dict:
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


def create_app(models: list[Model], limits: Limits | None = None) -> FastAPI:
    """The app over loaded `models`; one batcher per model. A route's default run is the first
    that offers its operation; a run that offers none of the routes' is refused."""
    if not models:
        raise AtentoError("serve needs at least one run directory")
    for m in models:
        if not any(m.predictor.offers(op) for op in SERVED):
            raise AtentoError(f"{m.run.path} is a {m.task} run: no route serves it "
                              f"(serve offers translate, sample, classify, attention)")  # fmt: skip
    limits = limits or Limits()
    by_name = {m.name: m for m in models}
    batchers: dict[str, Batcher] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for m in models:
            batchers[m.name] = Batcher(
                max_batch_tokens=limits.max_batch_tokens, max_wait_s=limits.max_wait_ms / 1000,
                max_queue=limits.max_queue, batching=limits.batching, name=f"batcher-{m.name}",
            )  # fmt: skip
        yield
        for b in batchers.values():
            b.close()
        batchers.clear()

    app = FastAPI(
        title="atento",
        description="Translation with attention maps and beam-search traces.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    _error_handlers(app)

    def pick(name: str | None, operation: str, what: str) -> Model:
        """The run `name` (default: the first that offers `operation`), which must offer it."""
        if name is not None and name not in by_name:
            raise ApiError(422, f"unknown model {name!r} (loaded: {', '.join(by_name)})", "model")
        offering = [m for m in models if m.predictor.offers(operation)]
        if name is None and not offering:
            raise ApiError(422, f"no {what} run is served (loaded: {', '.join(by_name)})",
                           "model")  # fmt: skip
        model = by_name[name] if name is not None else offering[0]
        try:
            model.predictor.require(operation, command=what)
        except AtentoError as exc:
            raise ApiError(422, str(exc), "model") from None
        return model

    async def call(fn, *, item: str = "body"):
        """`fn()` on a worker thread within the time limit; option errors name their field."""
        try:
            return await asyncio.wait_for(run_in_threadpool(fn), limits.timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(504, f"the request took longer than {limits.timeout_s:g} s") from None
        except OptionError as exc:
            raise ApiError(422, exc.spelled(), exc.field) from None
        except AtentoError as exc:
            raise ApiError(422, str(exc), item) from None

    @app.get("/health", summary="liveness and queue length")
    async def health() -> dict:
        return {
            "status": "ok",
            "models": list(by_name),
            "queued": sum(b.queued for b in batchers.values()),
            "batches": sum(b.batches for b in batchers.values()),
            "sentences": sum(b.sentences for b in batchers.values()),
        }

    @app.get("/v1/models", summary="the loaded runs: architecture, sizes, checkpoint step")
    async def list_models() -> dict:
        return {"models": [m.info() for m in models], "limits": limits.__dict__}

    @app.post("/v1/translate", summary="translate one or more sentences (or continue prompts)")
    async def translate(req: TranslateRequest) -> dict:
        texts = _texts(req, limits)
        model = pick(req.model, "translate", "translate")
        p = model.predictor
        translator = await call(lambda: p.translator(
            SearchOptions(beam=req.beam, alpha=req.alpha, nbest=req.nbest),
            ViewOptions(req.attention, req.layer, req.head),
        ))  # fmt: skip
        if req.beam is not None and req.beam > limits.max_beam:
            raise ApiError(422, f"beam {req.beam} is above the limit {limits.max_beam}", "beam")
        if req.trace and len(texts) != 1:
            raise ApiError(422, "a trace is for one sentence at a time", "trace")
        sources = await call(lambda: p.encode(texts, name="texts"), item="texts")
        sources = [sources[i] for i in range(len(texts))]
        if req.attention:
            _check_attention_size(translator, sources, limits)
        body: dict = {"model": model.name, "beam": translator.search.beam,
                      "alpha": translator.search.alpha}  # fmt: skip
        if req.trace:
            p.require("trace", command="trace")
            body["trace"] = await call(
                lambda: model.search_trace(texts[0], beam=req.beam, alpha=req.alpha)
            )
        try:
            future = batchers[model.name].submit(translator, sources)
        except QueueFull as exc:
            raise ApiError(429, f"{exc}; retry later", "queue") from None
        try:
            results = await asyncio.wait_for(asyncio.wrap_future(future), limits.timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(504, f"the request took longer than {limits.timeout_s:g} s") from None
        translations = model.wrap(texts, results)
        body["translations"] = [_translation_json(t, attention=req.attention) for t in translations]
        return body

    @app.post("/v1/sample", summary="continue a prompt (language models, KV-cached) or sample "
              "translations of a source")  # fmt: skip
    async def sample(req: SampleRequest) -> dict:
        model = pick(req.model, "sample", "language-model")
        _within(len(req.prompt), limits.max_chars, "characters", "prompt")
        _within(req.max_new, limits.max_new_tokens, "max_new", "max_new")
        _within(req.num, limits.max_samples, "num", "num")
        p = model.predictor
        options = SampleOptions(max_new=req.max_new, temperature=req.temperature,
                                top_k=req.top_k, top_p=req.top_p, seed=req.seed, num=req.num,
                                keep_last=req.keep_last)  # fmt: skip
        rows = await call(lambda: p.sample([req.prompt], options), item="prompt")
        return {"model": model.name, "prompt": req.prompt, "samples": [p.decode(r) for r in rows]}

    @app.post("/v1/classify", summary="label sentences with a classification run")
    async def classify(req: ClassifyRequest) -> dict:
        model = pick(req.model, "classify", "classification")
        if not req.texts:
            raise ApiError(422, "'texts' is empty", "texts")
        _within(len(req.texts), limits.max_sentences, "sentences", "texts")
        for i, text in enumerate(req.texts):
            if not text.strip():
                raise ApiError(422, "empty sentence", f"texts[{i}]")
            _within(len(text), limits.max_chars, "characters", f"texts[{i}]")
        labels = await call(lambda: model.classify(req.texts), item="texts")
        return {"model": model.name, "labels": [
            {"label": x.label, "probability": x.probability, "probabilities": x.probabilities}
            for x in labels
        ]}  # fmt: skip

    @app.post("/v1/attention", summary="self-attention over a text (language models, encoders)")
    async def self_attention(req: AttentionRequest) -> dict:
        model = pick(req.model, "self_attention", "self-attention")
        if not req.text.strip():
            raise ApiError(422, "empty text", "text")
        _within(len(req.text), limits.max_chars, "characters", "text")
        weights, rows, cols = await call(
            lambda: model.self_attention(req.text, layer=req.layer, head=req.head), item="text"
        )
        if weights.numel() > limits.max_attention_cells:
            raise ApiError(413, f"{weights.numel()} weights; at most "
                           f"{limits.max_attention_cells}", "text")  # fmt: skip
        return {
            "model": model.name, "rows": rows, "cols": cols,
            "weights": [[round(w, 4) for w in row] for row in weights.tolist()],
        }  # fmt: skip

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.item)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), request.url.path)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        if first.get("type") == "missing" and tuple(first.get("loc", ())) == ("body",):
            return _error(422, "empty body: send a JSON object with 'text' or 'texts'", "body")
        if first.get("type") == "json_invalid":
            detail = first.get("ctx", {}).get("error", "")
            return _error(422, f"malformed JSON: {detail}".rstrip(": "), "body")
        return _error(422, first.get("msg", "invalid request"), _item(first.get("loc", ())))


def _within(value: int, limit: int, what: str, item: str) -> None:
    if value > limit:
        raise ApiError(413, f"{value} {what}; at most {limit}", item)


def _texts(req: TranslateRequest, limits: Limits) -> list[str]:
    """The request's sentences, checked: one of text / texts, none empty, within the limits."""
    if (req.text is None) == (req.texts is None):
        raise ApiError(422, "give either 'text' or 'texts'", "text")
    texts = [req.text] if req.text is not None else req.texts
    item = "text" if req.text is not None else "texts"
    if not texts:
        raise ApiError(422, "'texts' is empty", "texts")
    if len(texts) > limits.max_sentences:
        raise ApiError(
            413, f"{len(texts)} sentences; at most {limits.max_sentences} per request", item
        )
    for i, s in enumerate(texts):
        name = item if req.text is not None else f"texts[{i}]"
        if not s.strip():
            raise ApiError(422, "empty sentence", name)
        if len(s) > limits.max_chars:
            raise ApiError(
                413, f"{len(s)} characters; at most {limits.max_chars} per sentence", name
            )
    return texts


def _check_attention_size(translator, sources: list[list[int]], limits: Limits) -> None:
    """413 when the attention of these sources' n-best could exceed the response limit."""
    s = translator.search
    cells = 0
    for ids in sources:
        n = len(ids) + 1
        cells += s.nbest * (math.ceil(s.max_len_a * (n - 1) + s.max_len_b) + 1) * n
    if cells > limits.max_attention_cells:
        raise ApiError(
            413,
            f"attention for these sentences could hold {cells} weights; at most "
            f"{limits.max_attention_cells} per request (send fewer or shorter sentences)",
            "attention",
        )
