"""The one place figures are set up (headless Agg backend) and written as PNG files."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402, F401  (re-exported for the plotting modules)


def save_figure(fig, path: str | Path, *, metadata: dict[str, str] | None = None) -> Path:
    """Lay out `fig`, write it to `path` (folders created) as a PNG, close it; returns the path."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata=metadata)
    plt.close(fig)
    return path
