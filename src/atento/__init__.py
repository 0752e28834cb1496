"""atento: attention-based sequence models you can train, decode, inspect and serve."""

__version__ = "0.1.0"
