"""The routes of `atento serve`: each dispatches to the runs' predictors (`atento.predictors`)
and only checks the request against the limits, transports it and formats the answer.

A route serves every run whose task offers its operation (`/v1/translate`: translate, ...);
without `model`, the first such run. An option out of range names its field as the error's
item (`OptionError.field`), so nothing here reads error messages.
"""

from __future__ import annotations

import asyncio
import math

from starlette.concurrency import run_in_threadpool

from atento.api import Model
from atento.errors import AtentoError
from atento.options import OptionError, SampleOptions, SearchOptions, ViewOptions
from atento.serve.batcher import Batcher, QueueFull
from atento.serve.schema import (
    SERVED,
    ApiError,
    AttentionRequest,
    ClassifyRequest,
    Limits,
    SampleRequest,
    TranslateRequest,
    translation_json,
)


class Service:
    """The served runs, their batchers and the limits; its methods are the routes."""

    def __init__(self, models: list[Model], limits: Limits) -> None:
        if not models:
            raise AtentoError("serve needs at least one run directory")
        for m in models:
            if not any(m.predictor.offers(op) for op in SERVED):
                raise AtentoError(
                    f"{m.run.path} is a {m.task} run: no route serves it "
                    "(serve offers translate, sample, classify, attention)"
                )
        self.models, self.limits = models, limits
        self.by_name = {m.name: m for m in models}
        self.batchers: dict[str, Batcher] = {}

    def start(self) -> None:
        lim = self.limits
        for m in self.models:
            self.batchers[m.name] = Batcher(
                max_batch_tokens=lim.max_batch_tokens, max_wait_s=lim.max_wait_ms / 1000,
                max_queue=lim.max_queue, batching=lim.batching, name=f"batcher-{m.name}",
            )  # fmt: skip

    def stop(self) -> None:
        for b in self.batchers.values():
            b.close()
        self.batchers.clear()

    def routes(self):
        return [
            ("/v1/translate", self.translate,
             "translate one or more sentences (or continue prompts)"),
            ("/v1/sample", self.sample,
             "continue a prompt (language models, KV-cached) or sample translations of a source"),
            ("/v1/classify", self.classify, "label sentences with a classification run"),
            ("/v1/attention", self.self_attention,
             "self-attention over a text (language models, encoders)"),
        ]  # fmt: skip

    # ---------------------------------------------------------------- dispatch
    def pick(self, name: str | None, operation: str, what: str) -> Model:
        """The run `name` (default: the first that offers `operation`), which must offer it."""
        if name is not None and name not in self.by_name:
            raise ApiError(422, f"unknown model {name!r} (loaded: {', '.join(self.by_name)})",
                           "model")  # fmt: skip
        offering = [m for m in self.models if m.predictor.offers(operation)]
        if name is None and not offering:
            raise ApiError(422, f"no {what} run is served (loaded: {', '.join(self.by_name)})",
                           "model")  # fmt: skip
        model = self.by_name[name] if name is not None else offering[0]
        try:
            model.predictor.require(operation, command=what)
        except AtentoError as exc:
            raise ApiError(422, str(exc), "model") from None
        return model

    async def call(self, fn, *, item: str = "body"):
        """`fn()` on a worker thread within the time limit; option errors name their field."""
        try:
            return await self.within_time(run_in_threadpool(fn))
        except OptionError as exc:
            raise ApiError(422, exc.spelled(), exc.field) from None
        except AtentoError as exc:
            raise ApiError(422, str(exc), item) from None

    async def within_time(self, awaitable):
        try:
            return await asyncio.wait_for(awaitable, self.limits.timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(
                504, f"the request took longer than {self.limits.timeout_s:g} s"
            ) from None

    # ---------------------------------------------------------------- routes
    async def health(self) -> dict:
        b = self.batchers.values()
        return {
            "status": "ok", "models": list(self.by_name), "queued": sum(x.queued for x in b),
            "batches": sum(x.batches for x in b), "sentences": sum(x.sentences for x in b),
        }  # fmt: skip

    async def list_models(self) -> dict:
        return {"models": [m.info() for m in self.models], "limits": self.limits.__dict__}

    async def translate(self, req: TranslateRequest) -> dict:
        texts = _texts(req, self.limits)
        model = self.pick(req.model, "translate", "translate")
        p = model.predictor
        translator = await self.call(lambda: p.translator(
            SearchOptions(beam=req.beam, alpha=req.alpha, nbest=req.nbest),
            ViewOptions(req.attention, req.layer, req.head),
        ))  # fmt: skip
        if req.beam is not None and req.beam > self.limits.max_beam:
            raise ApiError(422, f"beam {req.beam} is above the limit {self.limits.max_beam}",
                           "beam")  # fmt: skip
        if req.trace and len(texts) != 1:
            raise ApiError(422, "a trace is for one sentence at a time", "trace")
        encoded = await self.call(lambda: p.encode(texts, name="texts"), item="texts")
        sources = [encoded[i] for i in range(len(texts))]
        if req.attention:
            _check_attention_size(translator, sources, self.limits)
        body: dict = {"model": model.name, "beam": translator.search.beam,
                      "alpha": translator.search.alpha}  # fmt: skip
        if req.trace:
            body["trace"] = await self.call(
                lambda: model.search_trace(texts[0], beam=req.beam, alpha=req.alpha)
            )
        try:
            future = self.batchers[model.name].submit(translator, sources)
        except QueueFull as exc:
            raise ApiError(429, f"{exc}; retry later", "queue") from None
        results = await self.within_time(asyncio.wrap_future(future))
        body["translations"] = [translation_json(t, attention=req.attention)
                                for t in model.wrap(texts, results)]  # fmt: skip
        return body

    async def sample(self, req: SampleRequest) -> dict:
        model = self.pick(req.model, "sample", "language-model")
        lim = self.limits
        _within(len(req.prompt), lim.max_chars, "characters", "prompt")
        _within(req.max_new, lim.max_new_tokens, "max_new", "max_new")
        _within(req.num, lim.max_samples, "num", "num")
        p = model.predictor
        options = SampleOptions(max_new=req.max_new, temperature=req.temperature,
                                top_k=req.top_k, top_p=req.top_p, seed=req.seed, num=req.num,
                                keep_last=req.keep_last)  # fmt: skip
        rows = await self.call(lambda: p.sample([req.prompt], options), item="prompt")
        return {"model": model.name, "prompt": req.prompt, "samples": [p.decode(r) for r in rows]}

    async def classify(self, req: ClassifyRequest) -> dict:
        model = self.pick(req.model, "classify", "classification")
        if not req.texts:
            raise ApiError(422, "'texts' is empty", "texts")
        _within(len(req.texts), self.limits.max_sentences, "sentences", "texts")
        for i, text in enumerate(req.texts):
            if not text.strip():
                raise ApiError(422, "empty sentence", f"texts[{i}]")
            _within(len(text), self.limits.max_chars, "characters", f"texts[{i}]")
        labels = await self.call(lambda: model.classify(req.texts), item="texts")
        return {"model": model.name, "labels": [
            {"label": x.label, "probability": x.probability, "probabilities": x.probabilities}
            for x in labels
        ]}  # fmt: skip

    async def self_attention(self, req: AttentionRequest) -> dict:
        model = self.pick(req.model, "self_attention", "self-attention")
        if not req.text.strip():
            raise ApiError(422, "empty text", "text")
        _within(len(req.text), self.limits.max_chars, "characters", "text")
        weights, rows, cols = await self.call(
            lambda: model.self_attention(req.text, layer=req.layer, head=req.head), item="text"
        )
        cells = self.limits.max_attention_cells
        if weights.numel() > cells:
            raise ApiError(413, f"{weights.numel()} weights; at most {cells}", "text")
        return {"model": model.name, "rows": rows, "cols": cols,
                "weights": [[round(w, 4) for w in row] for row in weights.tolist()]}  # fmt: skip


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
