"""atento: attention-based sequence models you can train, decode, inspect and serve."""

from atento._version import __version__

__all__ = ["__version__", "load"]


def load(run_dir, which: str = "best", *, device: str | None = None):
    """Load a run for decoding: `atento.load("runs/x").translate([...])` (see `atento.api`)."""
    from atento.api import load as _load

    return _load(run_dir, which, device=device)
