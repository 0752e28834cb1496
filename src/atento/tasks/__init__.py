"""Tasks: what differs between translation, captioning, language modelling, classification."""
