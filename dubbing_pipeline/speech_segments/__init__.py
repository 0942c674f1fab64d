"""Chunk planning, sentence splitting and word merging: pure functions on plain data."""
