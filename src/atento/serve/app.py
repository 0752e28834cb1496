"""The FastAPI app: POST /v1/translate, /v1/sample, /v1/classify and /v1/attention, GET /health,
GET /v1/models, the page at /. Each route dispatches to the runs' predictors
(`atento.predictors`): a route serves every run whose task offers its operation.

Errors are JSON, `{"error": {"status": 422, "message": "...", "item": "texts[3]"}}`, naming the
offending item: malformed JSON and wrong fields 422, too many sentences / characters / bytes
413, a full queue 429, a request that outlives `timeout_s` 504. Bad input never causes a 500.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from atento.api import Model
from atento.serve.limits import BodyLimit
from atento.serve.routes import Service
from atento.serve.schema import ApiError, Limits, error_body, item_name

__all__ = ["Limits", "create_app"]

STATIC = Path(__file__).parent / "static"


def create_app(models: list[Model], limits: Limits | None = None) -> FastAPI:
    """The app over loaded `models`; one batcher per model. A route's default run is the first
    that offers its operation; a run that offers none of the routes' is refused."""
    service = Service(models, limits or Limits())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        yield
        service.stop()

    app = FastAPI(
        title="atento",
        description="Translation with attention maps and beam-search traces.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=service.limits.max_body_bytes)
    _error_handlers(app)
    app.get("/health", summary="liveness and queue length")(service.health)
    app.get("/v1/models", summary="the loaded runs: architecture, sizes, checkpoint step")(
        service.list_models
    )
    for path, handler, summary in service.routes():
        app.post(path, summary=summary)(handler)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def apierror_body(request: Request, exc: ApiError) -> JSONResponse:
        return error_body(exc.status, exc.message, exc.item)

    @app.exception_handler(HTTPException)
    async def httperror_body(request: Request, exc: HTTPException) -> JSONResponse:
        return error_body(exc.status_code, str(exc.detail), request.url.path)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        if first.get("type") == "missing" and tuple(first.get("loc", ())) == ("body",):
            return error_body(422, "empty body: send a JSON object with 'text' or 'texts'", "body")
        if first.get("type") == "json_invalid":
            detail = first.get("ctx", {}).get("error", "")
            return error_body(422, f"malformed JSON: {detail}".rstrip(": "), "body")
        return error_body(422, first.get("msg", "invalid request"), item_name(first.get("loc", ())))
