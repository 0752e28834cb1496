"""`atento serve`: an HTTP API (FastAPI) that batches requests across clients, and a page.

`create_app(models, limits)` builds the app over `atento.api.Model`s; `batcher.Batcher` groups
queued requests with the same decoding settings into one batch (a token budget and a short
maximum wait); `static/` holds the page (plain HTML/JS/CSS, no build step, works offline).
"""

from atento.serve.app import Limits, create_app

__all__ = ["Limits", "create_app"]
