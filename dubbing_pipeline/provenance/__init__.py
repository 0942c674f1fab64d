"""Provenance and safety: the C2PA manifest, the audio watermark, the visible label and the
toxicity screen of translated lines."""
