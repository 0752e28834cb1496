"""The FastAPI app: POST /v1/translate, POST /v1/sample and /v1/attention (language-model
runs), GET /health, GET /v1/models, the page at /.

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
    """The app over loaded `models` (the first is the default); one batcher per model."""
    if not models:
        raise AtentoError("serve needs at least one run directory")
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

    @app.post("/v1/translate", summary="translate one or more sentences")
    async def translate(req: TranslateRequest) -> dict:
        model, texts = _checked(req)
        try:
            translator = model.translator_for(
                beam=req.beam, alpha=req.alpha, nbest=req.nbest, attention=req.attention,
                layer=req.layer, head=req.head,
            )  # fmt: skip
        except AtentoError as exc:
            item = "model" if model.task != "translation" else _setting_item(str(exc))
            raise ApiError(422, str(exc), item) from None
        if req.attention:
            _check_attention_size(translator, model, texts)
        body: dict = {"model": model.name, "beam": translator.search.beam,
                      "alpha": translator.search.alpha}  # fmt: skip
        if req.trace:
            body["trace"] = await _with_timeout(
                run_in_threadpool(model.search_trace, texts[0], beam=req.beam, alpha=req.alpha)
            )
        sources = model.run.src_tok.encode_batch(texts)
        try:
            future = batchers[model.name].submit(translator, sources)
        except QueueFull as exc:
            raise ApiError(429, f"{exc}; retry later", "queue") from None
        wrapped = asyncio.wrap_future(future)
        results = await _with_timeout(wrapped)
        translations = model.wrap(texts, results)
        body["translations"] = [_translation_json(t, attention=req.attention) for t in translations]
        return body

    @app.post("/v1/sample", summary="continue a prompt with a language-model run (KV-cached)")
    async def sample(req: SampleRequest) -> dict:
        model = _text_model(req.model, "lm")
        if len(req.prompt) > limits.max_chars:
            raise ApiError(413, f"{len(req.prompt)} characters; at most {limits.max_chars}",
                           "prompt")  # fmt: skip
        if req.max_new > limits.max_new_tokens:
            raise ApiError(413, f"max_new {req.max_new}; at most {limits.max_new_tokens}",
                           "max_new")  # fmt: skip
        if req.num > limits.max_samples:
            raise ApiError(413, f"num {req.num}; at most {limits.max_samples}", "num")
        call = lambda: model.sample(  # noqa: E731
            [req.prompt] * req.num, max_new=req.max_new, temperature=req.temperature,
            top_k=req.top_k, top_p=req.top_p, seed=req.seed, keep_last=req.keep_last,
        )  # fmt: skip
        try:
            texts = await _with_timeout(run_in_threadpool(call))
        except AtentoError as exc:
            raise ApiError(422, str(exc), "prompt") from None
        return {"model": model.name, "prompt": req.prompt, "samples": texts}

    @app.post("/v1/attention", summary="self-attention over a text (language-model runs)")
    async def self_attention(req: AttentionRequest) -> dict:
        model = _text_model(req.model, "lm")
        if not req.text.strip():
            raise ApiError(422, "empty text", "text")
        if len(req.text) > limits.max_chars:
            raise ApiError(413, f"{len(req.text)} characters; at most {limits.max_chars}",
                           "text")  # fmt: skip
        call = lambda: model.self_attention(req.text, layer=req.layer, head=req.head)  # noqa: E731
        try:
            weights, rows, cols = await _with_timeout(run_in_threadpool(call))
        except AtentoError as exc:
            item = "layer" if "layer" in str(exc) else "head" if "head" in str(exc) else "text"
            raise ApiError(422, str(exc), item) from None
        if weights.numel() > limits.max_attention_cells:
            raise ApiError(413, f"{weights.numel()} weights; at most "
                           f"{limits.max_attention_cells}", "text")  # fmt: skip
        return {
            "model": model.name, "rows": rows, "cols": cols,
            "weights": [[round(w, 4) for w in row] for row in weights.tolist()],
        }  # fmt: skip

    def _text_model(name: str | None, task: str) -> Model:
        """The run `name` (default: the first run of `task`), which must be a `task` run."""
        if name is not None and name not in by_name:
            raise ApiError(422, f"unknown model {name!r} (loaded: {', '.join(by_name)})", "model")
        of_task = [m for m in models if m.task == task]
        model = by_name[name] if name is not None else (of_task or models)[0]
        if model.task != task:
            raise ApiError(422, f"{model.name} is a {model.task} run, not a {task} run", "model")
        return model

    async def _with_timeout(awaitable):
        try:
            return await asyncio.wait_for(awaitable, limits.timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(504, f"the request took longer than {limits.timeout_s:g} s") from None

    def _checked(req: TranslateRequest) -> tuple[Model, list[str]]:
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
        if req.model is not None and req.model not in by_name:
            raise ApiError(
                422, f"unknown model {req.model!r} (loaded: {', '.join(by_name)})", "model"
            )
        model = by_name[req.model] if req.model is not None else models[0]
        if req.beam is not None and req.beam > limits.max_beam:
            raise ApiError(422, f"beam {req.beam} is above the limit {limits.max_beam}", "beam")
        if req.trace and len(texts) != 1:
            raise ApiError(422, "a trace is for one sentence at a time", "trace")
        return model, texts

    def _check_attention_size(translator, model: Model, texts: list[str]) -> None:
        s = translator.search
        cells = 0
        for text in texts:
            n = len(model.run.src_tok.encode(text)) + 1
            cells += s.nbest * (math.ceil(s.max_len_a * (n - 1) + s.max_len_b) + 1) * n
        if cells > limits.max_attention_cells:
            raise ApiError(
                413, f"attention for these sentences could hold {cells} weights; at most "
                f"{limits.max_attention_cells} per request (send fewer or shorter sentences)",
                "attention",
            )  # fmt: skip

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _setting_item(message: str) -> str:
    for key in ("nbest", "beam", "alpha", "layer", "head", "attention"):
        if message.startswith(key) or f" {key} " in f" {message} ":
            return key
    return "body"
