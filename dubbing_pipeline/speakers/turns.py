"""A diarization pipeline's speaker turns as a chunk's local speakers (the pyannote engine's last step).

Pure (numpy and the project's own linkage): the engine that finds the turns imports torch, this
module does not, so the assignment is tested without it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dubbing_pipeline.speakers.base import ChunkDiarization
from dubbing_pipeline.speakers.clustering import complete_linkage, first_appearance, unit

Turn = tuple[float, float, int]
"""A speaker turn: ``(start, end, speaker)`` in absolute seconds."""


def _speaker_of(span: tuple[float, float], turns: Sequence[Turn]) -> int:
    """The pipeline speaker overlapping ``span`` most (ties: the lowest), else the nearest turn's."""
    s, e = float(span[0]), float(span[1])
    overlap: dict[int, float] = {}
    for ts, te, who in turns:
        amount = min(e, te) - max(s, ts)
        if amount > 0:
            overlap[who] = overlap.get(who, 0.0) + amount
    if overlap:
        return max(sorted(overlap), key=lambda w: overlap[w])
    middle = (s + e) / 2
    return min(turns, key=lambda t: max(t[0] - middle, middle - t[1], 0.0))[2]


def _merged(embs: np.ndarray, merge_threshold: float) -> list[int]:
    """Complete linkage of the used pipeline speakers that have an embedding; the others keep
    labels of their own, after the merged ones."""
    valid = [i for i, row in enumerate(embs) if np.any(row)]
    merged = list(range(embs.shape[0]))
    if len(valid) >= 2:
        sub = complete_linkage(embs[valid], merge_threshold)
        for position, label in zip(valid, sub, strict=True):
            merged[position] = label
        extra = max(sub) + 1
        for position in range(embs.shape[0]):
            if position not in valid:
                merged[position] = extra
                extra += 1
    return merged


def assign_turns(
    spans: Sequence[tuple[float, float]], turns: Sequence[Turn], centroids: np.ndarray, merge_threshold: float
) -> ChunkDiarization:
    """Spans → pipeline speakers by overlap (nearest turn if none), then the complete-linkage merge."""
    n = len(spans)
    dim = centroids.shape[1] if centroids.ndim == 2 else 0
    if not turns:
        return ChunkDiarization([0] * n, np.zeros((1 if n else 0, dim)))
    picked = [_speaker_of(span, turns) for span in spans]
    used = sorted(set(picked))
    embs = unit(centroids[used]) if dim else np.zeros((len(used), 0))
    merged = _merged(embs, merge_threshold)
    labels = first_appearance([merged[used.index(p)] for p in picked])
    out = np.zeros((max(labels) + 1, dim))
    for speaker in range(out.shape[0]):
        rows = [embs[used.index(p)] for p, lab in zip(picked, labels, strict=True) if lab == speaker]
        rows = [r for r in rows if np.any(r)]
        if rows:
            out[speaker] = unit(np.mean(rows, axis=0))
    return ChunkDiarization(labels, out)
