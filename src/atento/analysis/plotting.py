"""The one place figures are set up (headless Agg backend) and written as PNG files."""

from __future__ import annotations

from pathlib import Path

import matplotlib

from atento.errors import AtentoError
from atento.outputs import output_path

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402, F401  (re-exported for the plotting modules)


def save_figure(fig, path: str | Path, *, metadata: dict[str, str] | None = None) -> Path:
    """Lay out `fig`, write it to `path` (folders created, `atento.outputs.output_path`) as a
    PNG (or the format of its suffix), close it; returns the path. A path that cannot be
    written, or a format matplotlib does not know, is an AtentoError."""
    try:
        fig.tight_layout()
        path = output_path(path)
        try:
            fig.savefig(path, dpi=110, metadata=metadata)
        except OSError as exc:
            raise AtentoError(f"{path}: cannot write ({exc.strerror or exc})") from None
        except ValueError as exc:  # "Format 'x' is not supported (supported formats: ...)"
            raise AtentoError(f"{path}: {str(exc).splitlines()[0]}") from None
    finally:
        plt.close(fig)
    return path
