"""Cluster speaker embeddings within a chunk and match speakers across chunks (cosine similarity)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped,unused-ignore]

FloatArray = NDArray[np.float64]


def unit(v: ArrayLike) -> FloatArray:
    """L2-normalise a vector, or each row of a matrix; zero vectors stay zero."""
    arr = np.asarray(v, dtype=np.float64)
    if arr.ndim not in (1, 2):
        raise ValueError(f"expected a vector or a matrix, got shape {arr.shape}")
    norms = np.linalg.norm(arr, axis=-1, keepdims=True)
    out: FloatArray = np.zeros_like(arr)
    np.divide(arr, norms, out=out, where=norms > 0)
    return out


def _matrix(embeddings: ArrayLike) -> FloatArray:
    arr = np.asarray(embeddings, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 0:
        return arr.reshape(0, 0)
    if arr.ndim != 2:
        raise ValueError(f"expected an (n, d) matrix, got shape {arr.shape}")
    return arr


def first_appearance(labels: Sequence[int]) -> list[int]:
    """Renumber labels 0..k-1 in order of first appearance."""
    mapping: dict[int, int] = {}
    return [mapping.setdefault(label, len(mapping)) for label in labels]


def complete_linkage(embeddings: ArrayLike, threshold: float = 0.78) -> list[int]:
    """Agglomerative complete-linkage clustering on cosine similarity.

    Two clusters merge only if every pairwise similarity between their members exceeds
    ``threshold``; each step merges the pair with the highest minimum similarity (ties: lowest
    indices). Labels are numbered 0..k-1 by first appearance.
    """
    x = unit(_matrix(embeddings))
    n = x.shape[0]
    if n == 0:
        return []
    sim = x @ x.T
    sim[np.tril_indices(n)] = -np.inf  # only pairs i < j between active clusters are candidates
    owner = list(range(n))
    while True:
        flat = int(np.argmax(sim))
        i, j = divmod(flat, n)
        if not sim[i, j] > threshold:
            break
        # Cluster j joins i (i < j): linkage to every k is the minimum of the two.
        merged = np.minimum(np.maximum(sim[i, :], sim[:, i]), np.maximum(sim[j, :], sim[:, j]))
        row_mask = np.arange(n) > i
        sim[i, row_mask] = merged[row_mask]
        sim[:i, i] = merged[:i]
        sim[j, :] = -np.inf
        sim[:, j] = -np.inf
        owner = [i if o == j else o for o in owner]
    return first_appearance(owner)


def speaker_embedding(
    embeddings: ArrayLike, durations: Sequence[float], k: int = 3, min_duration: float = 1.0
) -> FloatArray:
    """Unit mean of the unit embeddings of the ``k`` longest items lasting ``>= min_duration``.

    If no item is long enough the single longest one is used (ties: the first).
    """
    x = _matrix(embeddings)
    if x.shape[0] == 0 or x.shape[0] != len(durations):
        raise ValueError(f"need at least one embedding and one duration each: {x.shape[0]}/{len(durations)}")
    if k < 1:
        raise ValueError("k must be >= 1")
    order = sorted(range(len(durations)), key=lambda i: (-durations[i], i))
    chosen = [i for i in order if durations[i] >= min_duration][:k] or order[:1]
    return unit(unit(x[chosen]).mean(axis=0))


def match_to_global(global_embs: ArrayLike, chunk_embs: ArrayLike, threshold: float = 0.80) -> list[int]:
    """Match each chunk speaker to a global speaker index, or -1 for a new speaker.

    Hungarian assignment on cost ``1 - cosine``, padded with one "new speaker" column per
    chunk speaker at cost ``1 - threshold``; a match with similarity below ``threshold`` is new.
    """
    g = unit(_matrix(global_embs))
    c = unit(_matrix(chunk_embs))
    if c.shape[0] == 0:
        return []
    if g.shape[0] == 0:
        return [-1] * c.shape[0]
    if g.shape[1] != c.shape[1]:
        raise ValueError(f"dimension mismatch: {g.shape[1]} vs {c.shape[1]}")
    sim = c @ g.T
    cost = np.hstack([1.0 - sim, np.full((c.shape[0], c.shape[0]), 1.0 - threshold)])
    rows, cols = linear_sum_assignment(cost)
    out = [-1] * c.shape[0]
    for r, col in zip(rows.tolist(), cols.tolist(), strict=True):
        if col < g.shape[0] and sim[r, col] >= threshold:
            out[r] = col
    return out


def assign_global(
    chunk_embs_list: Sequence[ArrayLike], threshold: float = 0.80
) -> tuple[list[list[int]], FloatArray]:
    """Match the speakers of each chunk, in order, to global speakers, creating new ones.

    A global speaker's embedding is the unit mean of the unit chunk embeddings matched to it.
    Returns the global ids per chunk and the final ``(g, d)`` global embeddings.
    """
    mats = [unit(_matrix(e)) for e in chunk_embs_list]
    dims = {m.shape[1] for m in mats if m.shape[0] > 0}
    if len(dims) > 1:
        raise ValueError(f"embedding dimensions differ between chunks: {sorted(dims)}")
    d = dims.pop() if dims else (mats[0].shape[1] if mats else 0)
    sums = np.zeros((0, d))
    ids_per_chunk: list[list[int]] = []
    for mat in mats:
        matched = match_to_global(unit(sums), mat, threshold)  # unit(sum) == unit(mean)
        ids: list[int] = []
        for row, match in enumerate(matched):
            if match < 0:
                ids.append(sums.shape[0])
                sums = np.vstack([sums, mat[row : row + 1]])
            else:
                ids.append(match)
                sums[match] += mat[row]
        ids_per_chunk.append(ids)
    return ids_per_chunk, unit(sums)


def relabel_by_first_appearance(labels: Sequence[int], starts: Sequence[float]) -> list[int]:
    """Renumber speaker labels 0..k-1 by the earliest start of each; negative labels are kept."""
    if len(labels) != len(starts):
        raise ValueError(f"{len(labels)} labels but {len(starts)} starts")
    order = [i for i in sorted(range(len(labels)), key=lambda i: (starts[i], i)) if labels[i] >= 0]
    ranks = first_appearance([labels[i] for i in order])
    mapping = {labels[i]: rank for i, rank in zip(order, ranks, strict=True)}
    return [mapping.get(label, label) for label in labels]
