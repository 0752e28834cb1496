"""One predictor per task: what a loaded run offers for decoding (see base.py)."""
