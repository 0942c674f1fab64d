"""Shared plumbing under every stage: audio and media I/O, hashes, identifiers, numeric pinning and
the no-network guard."""
