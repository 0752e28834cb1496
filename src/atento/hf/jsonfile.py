"""Reading the JSON files of a Hugging Face model directory (config, tokenizer settings,
vocabularies): a JSON object, or one line naming the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from atento.errors import AtentoError


def read_json_object(path: Path, *, missing: str | None = None) -> dict[str, Any] | None:
    """The JSON object in `path`; None when the file is absent and `missing` is None, else
    AtentoError `{path}: {missing}`. Invalid JSON or another JSON type: AtentoError."""
    if not path.is_file():
        if missing is None:
            return None
        raise AtentoError(f"{path}: {missing}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AtentoError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise AtentoError(f"{path}: not a JSON object")
    return data
