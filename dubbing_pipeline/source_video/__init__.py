"""The source video: probe, validate, hash, and its full-band audio."""
