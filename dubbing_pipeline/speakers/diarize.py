"""Speaker diarization of one chunk: which local speaker said each transcript span.

Two providers share one contract (:class:`Diarizer`): the input is the chunk's 16 kHz
audio plus the absolute time spans of the transcript segments inside it; the output
gives every span a local speaker (``0..k-1``, never ``-1``) and one unit embedding per
local speaker, which the ``speakers`` asset matches across chunks. Inside a chunk the
final speaker-level rule is always the same: complete linkage on cosine similarity,
two speakers merge only if every pairwise similarity exceeds ``merge_threshold``
(``DUBBING_SPEAKER_MERGE_SIM``, 0.78).

``EmbeddingDiarizer`` (CPU default) works from a :class:`SpeakerEmbedder` alone:

1. Every span of at least ``min_span`` seconds (0.8 s, one embedder window) is cut into
   0.8 s windows every 0.4 s and embedded; a span's embedding is the unit mean of its
   windows. Shorter spans are embedded whole (the embedder repeats them to one window)
   but are left out of clustering and assigned at the end.
2. Channel compensation: the mean window embedding of the chunk is subtracted from every
   vector (then re-normalised). On telephone audio the bundled d-vector model puts most
   of its length into a component every voice of the recording shares: on the pyannote
   sample the raw cosine between spans of the *same* speaker averages 0.81 and between
   the two *different* speakers 0.77 (ranges overlap completely; the two speakers'
   centroids are 0.93 apart-similar), so no fixed threshold on raw cosines can separate
   them, and complete linkage at 0.78 on raw span embeddings finds 5 "speakers"
   (46 % segment accuracy, DER 48 %).
3. First pass, *span-consistent bisection* (each span has one speaker, so the spans
   are the grouping a speaker split must respect). The compensated windows of the spans
   with at least ``min_windows`` (2) windows are centred and projected on their first
   ``components`` (16) principal axes. Each axis is weighted by how span-consistent it
   is: its one-way ANOVA ratio ``F_j`` (variance between span means over variance of
   windows within a span) gives the weight ``sqrt(max(F_j - 1, 0))``, so axes that only
   follow phonetic content or noise (``F_j <= 1``) drop out; this is a within-span
   variance normalisation that needs no labels. The spans' mean directions in that space
   are split in two by weighted spherical 2-means (every span up to 32 tried as the first seed;
   the split with the highest score wins). The split is kept only if its *split score* reaches
   a threshold: the score is the between-side sum of squares of the windows over the
   within-span mean square (unweighted projections), an F-like ratio of "two speakers" against
   "one speaker plus span-to-span variation". Each side is then split again the same way
   (re-centred on its own windows) up to ``max_speakers``.

   The threshold is ``(split_score + split_per_window * w**2) * (1 + split_growth * depth)``
   (3.4, 0.05, 0.25), ``w`` being the mean number of windows per span. Both terms were fitted
   on the labelled set of real recordings in :mod:`dubbing_pipeline.tooling.labelled_set`
   (``python -m dubbing_pipeline.tooling.labelled_set``). Why ``w``: the windows of one long
   span agree with each other far better than two sentences of one voice do, so the score of a
   split between sentences grows with span length. One LibriVox reader's five sentences
   (11 windows per span) scored 8.0, while the demo's two callers (4.2 windows per span)
   score 4.5 and the alsa prompts of one voice (2 windows per span) 3.4. No flat threshold,
   and no threshold linear in ``w``, keeps all three right; the former flat 3.8 split the
   reader (and every reader-and-second-voice dialogue) into one speaker too many. On the
   14-clip set: speaker count right 8 -> 13, mean DER 0.148 -> 0.030 (the one left wrong is
   the alsa prompts under a music bed the pipeline would first have removed). Why ``depth``:
   a side is a set the previous split already chose to be alike, so the best 2-means split of
   it scores higher by chance alone. Spans with a single window follow the side whose mean
   window is closest.
4. Each initial cluster gets a speaker embedding (``speaker_embedding``: unit mean of
   its up to 3 longest spans of >= 1 s, compensated space) and the clusters are merged
   by complete linkage at ``merge_threshold``.
5. Short spans join the speaker whose compensated embedding is most similar.

The embeddings returned are *raw* (uncompensated) speaker embeddings, so they stay
comparable between chunks whose speaker mix differs.

``PyannoteDiarizer`` (production, GPU; ``pyannote_engine``) runs a local pyannote.audio 3.1
``speaker-diarization`` pipeline on the chunk; :func:`turns.assign_turns` maps spans to its speakers by
overlap, uses the pipeline's own centroid embeddings and applies the same complete-linkage merge.
``make_diarizer`` imports each engine (pyannote's torch, the embedders' onnxruntime) only when it is
the one asked for: the provider table imports this module whenever a stage builds any provider.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dubbing_pipeline.errors import ConfigurationError, ModelMissingError, ProviderError
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.speakers.base import (
    DIARIZER_CODE,
    SAMPLE_RATE,
    ChunkDiarization,
    Diarizer,
    SpeakerEmbedder,
)
from dubbing_pipeline.speakers.clustering import complete_linkage, first_appearance, speaker_embedding, unit

SPLIT_SEEDS = 32  # first seeds tried per split (spans, in order)


def _slice(audio: np.ndarray, start: float, end: float, offset: float) -> np.ndarray:
    a = max(0, round((start - offset) * SAMPLE_RATE))
    b = min(audio.shape[0], round((end - offset) * SAMPLE_RATE))
    return audio[a:b] if b > a else audio[:0]


def _window_embeddings(embedder: SpeakerEmbedder, audio: np.ndarray) -> np.ndarray:
    """Unit embeddings of 0.8 s windows every 0.4 s (the embedder's own when it has them)."""
    own = getattr(embedder, "window_embeddings", None)
    if callable(own):
        _, embs = own(audio)
        return np.asarray(embs, dtype=np.float64)
    size, hop = int(0.8 * SAMPLE_RATE), int(0.4 * SAMPLE_RATE)
    starts = range(0, max(1, audio.shape[0] - size + 1), hop)
    return np.stack([np.asarray(embedder.embed(audio[s : s + size]), dtype=np.float64) for s in starts])


def _least_typical(x: np.ndarray, weights: np.ndarray) -> int:
    """The unit row least like the weighted average of the rows: 2-means' default first seed."""
    return int(np.argmin(x @ unit((x * weights[:, None]).sum(axis=0))))


def _spherical_two_means(
    x: np.ndarray, weights: np.ndarray | None = None, iterations: int = 50, first: int | None = None
) -> np.ndarray:
    """Split unit rows in two (weighted cosine k-means); deterministic farthest-point initialisation.

    The first seed is ``first`` (default: the row least like the weighted average), the second
    the row least like the first.
    """
    w = np.ones(x.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    if first is None:
        first = _least_typical(x, w)
    second = int(np.argmin(x @ x[first]))
    centres = x[[first, second]].copy()
    labels = np.zeros(x.shape[0], dtype=np.int64)
    for step in range(iterations):
        new = np.argmax(x @ centres.T, axis=1)
        if step and np.array_equal(new, labels):
            break
        labels = new
        for c in (0, 1):
            if np.any(labels == c):
                centres[c] = unit((x[labels == c] * w[labels == c, None]).sum(axis=0))
    return labels


def split_score(projected: np.ndarray, owner: np.ndarray, side: np.ndarray) -> float:
    """Between-side sum of squares of the windows over their within-span mean square.

    ``projected`` holds one row per window, ``owner`` its span (``0..m-1``) and ``side``
    its side of the split. Large when the two sides are further apart than windows of
    one span are from each other; about the number of dimensions for a split of noise.
    """
    m, n = int(owner.max()) + 1, projected.shape[0]
    means = np.stack([projected[owner == j].mean(axis=0) for j in range(m)])
    within = float(((projected - means[owner]) ** 2).sum()) / max(1, n - m)
    centre = projected.mean(axis=0)
    between = sum(
        float(((projected[side == c].mean(axis=0) - centre) ** 2).sum()) * int((side == c).sum())
        for c in (0, 1)
        if np.any(side == c)
    )
    return between / within if within > 0 else 0.0


class EmbeddingDiarizer(Diarizer):
    """Diarization from a speaker embedder: span-consistent bisection, then complete linkage."""

    name = "embedding"

    def __init__(
        self,
        embedder: SpeakerEmbedder,
        merge_threshold: float = 0.78,
        *,
        min_span: float = 0.8,
        split_score: float = 3.4,
        split_growth: float = 0.25,
        split_per_window: float = 0.05,
        max_speakers: int = 8,
        components: int = 16,
        min_windows: int = 2,
    ) -> None:
        if not split_score > 0:
            raise ConfigurationError("split_score must be positive")
        if components < 1 or min_windows < 2:
            raise ConfigurationError("need components >= 1 and min_windows >= 2")
        self.embedder = embedder
        self.merge_threshold = float(merge_threshold)
        self.min_span = float(min_span)
        self.split_score = float(split_score)
        self.split_growth = float(split_growth)
        self.split_per_window = float(split_per_window)
        self.max_speakers = int(max_speakers)
        self.components = int(components)
        self.min_windows = int(min_windows)

    def describe(self) -> JsonObject:
        return {
            "provider": self.name,
            "embedder": self.embedder.describe(),
            "merge_threshold": self.merge_threshold,
            "min_span": self.min_span,
            "split_score": self.split_score,
            "split_growth": self.split_growth,
            "split_per_window": self.split_per_window,
            "max_speakers": self.max_speakers,
            "components": self.components,
            "min_windows": self.min_windows,
            "code": DIARIZER_CODE,
        }

    # -- first pass

    def split_threshold(self, depth: int, windows_per_span: float = 0.0) -> float:
        """The split score a split at ``depth`` (0 = the whole chunk) of spans averaging
        ``windows_per_span`` windows must reach."""
        base = self.split_score + self.split_per_window * windows_per_span**2
        return base * (1.0 + self.split_growth * depth)

    def _try_split(
        self, windows: list[np.ndarray], members: list[int], depth: int = 0
    ) -> tuple[list[int], list[int]] | None:
        """Split the spans ``members`` in two if the split scores at least ``split_threshold(depth)``."""
        ids = [i for i in members if windows[i].shape[0] >= self.min_windows]
        m = len(ids)
        if m < 2:
            return None
        stacked = np.concatenate([windows[i] for i in ids], axis=0)
        owner = np.concatenate([np.full(windows[i].shape[0], j) for j, i in enumerate(ids)])
        n = stacked.shape[0]
        if n - m < 2:
            return None
        centred = stacked - stacked.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        projected = centred @ vt[: min(self.components, vt.shape[0], n - m)].T
        counts = np.bincount(owner).astype(np.float64)
        means = np.stack([projected[owner == j].mean(axis=0) for j in range(m)])
        between = (counts[:, None] * means**2).sum(axis=0) / (m - 1)  # projections are centred
        within = ((projected - means[owner]) ** 2).sum(axis=0) / (n - m)
        ratio = np.divide(between, within, out=np.zeros_like(between), where=within > 1e-12)
        weighted = projected * np.sqrt(np.maximum(ratio - 1.0, 0.0))
        if not np.any(weighted):
            return None
        points = unit(np.stack([unit(weighted[owner == j]).mean(axis=0) for j in range(m)]))
        side, score = self._best_split(points, counts, projected, owner)
        if score < self.split_threshold(depth, n / m):
            return None
        left = [i for j, i in enumerate(ids) if side[j] == 0]
        right = [i for j, i in enumerate(ids) if side[j] == 1]
        rest = [i for i in members if windows[i].shape[0] < self.min_windows]
        if rest:  # spans with too few windows follow the closer side
            sides = unit(
                np.stack([np.concatenate([windows[i] for i in part]).mean(axis=0) for part in (left, right)])
            )
            for i in rest:
                (
                    right
                    if float(sides[1] @ windows[i].mean(axis=0)) > float(sides[0] @ windows[i].mean(axis=0))
                    else left
                ).append(i)
        return sorted(left), sorted(right)

    @staticmethod
    def _best_split(
        points: np.ndarray, counts: np.ndarray, projected: np.ndarray, owner: np.ndarray
    ) -> tuple[np.ndarray, float]:
        """The 2-means split of the span points with the highest split score.

        2-means from one start can stop in a poor split: on a reader interleaved with a second
        voice, the default start split the reader's own sentences (score 10.9) where the split
        by voice scores 14.9. The default start comes first, then every other span up to
        ``SPLIT_SEEDS`` as the first seed (each start once); the first best wins, so the choice is
        deterministic.
        """
        best_side = np.zeros(points.shape[0], dtype=np.int64)
        best = 0.0
        default = _least_typical(points, np.asarray(counts, dtype=np.float64))
        seeds = [default, *(k for k in range(min(points.shape[0], SPLIT_SEEDS)) if k != default)]
        for seed in seeds:
            side = _spherical_two_means(points, counts, first=seed)
            if side.min() == side.max():
                continue
            score = split_score(projected, owner, side[owner])
            if score > best:
                best, best_side = score, side
        return best_side, best

    def _first_pass(self, windows: list[np.ndarray], long_ids: list[int]) -> list[list[int]]:
        clusters: list[list[int]] = []
        pending = [(long_ids, 0)]
        while pending:
            members, depth = pending.pop(0)
            if len(clusters) + len(pending) + 1 >= self.max_speakers:
                clusters.append(members)
                continue
            halves = self._try_split(windows, members, depth) if len(members) >= 2 else None
            if halves is None:
                clusters.append(members)
            else:
                pending.extend((half, depth + 1) for half in halves)
        return clusters

    # -- main

    def diarize(
        self, audio16k: np.ndarray, spans: Sequence[tuple[float, float]], offset: float
    ) -> ChunkDiarization:
        dim = int(self.embedder.dim)
        if not spans:
            return ChunkDiarization([], np.zeros((0, dim)), np.zeros((0, dim)))
        vectors = self._embed_spans(
            np.ascontiguousarray(audio16k, dtype=np.float32).reshape(-1), spans, offset
        )
        comp, comp_windows = _compensated(vectors)
        labels, k = self._cluster(vectors, comp, comp_windows)
        labels = self._assign_rest(labels, k, vectors, comp, spans)
        return ChunkDiarization(labels, _speaker_embeddings(vectors, labels), vectors.raw)

    def _embed_spans(self, audio: np.ndarray, spans: Sequence[tuple[float, float]], offset: float) -> _Spans:
        """Step 1: every span's raw embedding; the windows of those long enough to cluster."""
        n, dim = len(spans), int(self.embedder.dim)
        vectors = _Spans(
            durations=[max(0.0, float(e) - float(s)) for s, e in spans],
            raw=np.zeros((n, dim)),
            windows=[np.zeros((0, dim))] * n,
            long_ids=[],
            usable=np.zeros(n, dtype=bool),
        )
        for i, (s, e) in enumerate(spans):
            piece = _slice(audio, float(s), float(e), offset)
            if piece.shape[0] < SAMPLE_RATE // 50:  # under 20 ms of audio: nothing to embed
                continue
            vectors.usable[i] = True
            if piece.shape[0] >= self.min_span * SAMPLE_RATE:
                vectors.windows[i] = _window_embeddings(self.embedder, piece)
                vectors.raw[i] = unit(vectors.windows[i].mean(axis=0))
                vectors.long_ids.append(i)
            else:
                vectors.raw[i] = unit(np.asarray(self.embedder.embed(piece), dtype=np.float64))
        if not vectors.usable.any():
            raise ProviderError("diarization: none of the spans lies inside the chunk audio")
        return vectors

    def _cluster(
        self, vectors: _Spans, comp: np.ndarray, comp_windows: list[np.ndarray]
    ) -> tuple[list[int], int]:
        """Steps 3-4: the long spans' speakers (first pass, then speaker-level complete linkage),
        ``-1`` for the others; and the number of speakers."""
        n = len(vectors.durations)
        if vectors.long_ids:
            clusters = self._first_pass(comp_windows, vectors.long_ids)
            cluster_embs = np.stack(
                [speaker_embedding(comp[c], [vectors.durations[i] for i in c]) for c in clusters]
            )
            merged = complete_linkage(cluster_embs, self.merge_threshold)
        else:  # no span long enough to cluster: one speaker
            clusters = [[i for i in range(n) if vectors.usable[i]]]
            merged = [0]
        labels = [-1] * n
        for cluster, speaker in zip(clusters, merged, strict=True):
            for i in cluster:
                labels[i] = speaker
        return labels, max(merged) + 1

    def _assign_rest(
        self,
        labels: list[int],
        k: int,
        vectors: _Spans,
        comp: np.ndarray,
        spans: Sequence[tuple[float, float]],
    ) -> list[int]:
        """Step 5: the spans left out join the speaker most like them (in the compensated space),
        or without audio the speaker of the nearest span in time; then numbered by first appearance."""
        n = len(labels)
        speaker_comp = np.stack(
            [
                speaker_embedding(
                    comp[[i for i in range(n) if labels[i] == s]],
                    [vectors.durations[i] for i in range(n) if labels[i] == s],
                )
                for s in range(k)
            ]
        )
        for i in range(n):
            if labels[i] >= 0:
                continue
            if vectors.usable[i] and np.any(comp[i]):
                labels[i] = int(np.argmax(speaker_comp @ comp[i]))
            else:  # no audio: the speaker of the nearest span in time
                labels[i] = self._nearest_labelled(spans, labels, i)
        return first_appearance(labels)

    @staticmethod
    def _nearest_labelled(spans: Sequence[tuple[float, float]], labels: Sequence[int], i: int) -> int:
        middle = (float(spans[i][0]) + float(spans[i][1])) / 2
        best = min(
            (j for j in range(len(spans)) if labels[j] >= 0),
            key=lambda j: abs((float(spans[j][0]) + float(spans[j][1])) / 2 - middle),
            default=None,
        )
        return 0 if best is None else labels[best]


@dataclass
class _Spans:
    """The spans of one chunk as vectors (``EmbeddingDiarizer`` step 1)."""

    durations: list[float]
    raw: np.ndarray  # (n, d) unit embedding of each span (zero: no audio)
    windows: list[np.ndarray]  # each span's window embeddings (none: shorter than min_span)
    long_ids: list[int]  # the spans with windows, the ones clustered
    usable: np.ndarray  # (n,) bool: the span has audio


def _compensated(vectors: _Spans) -> tuple[np.ndarray, list[np.ndarray]]:
    """Step 2, channel compensation: the span and window embeddings less the chunk's mean window."""
    dim = vectors.raw.shape[1]
    if len(vectors.long_ids) >= 2:
        centre = np.concatenate([vectors.windows[i] for i in vectors.long_ids], axis=0).mean(axis=0)
    else:
        usable = vectors.usable
        centre = vectors.raw[usable].mean(axis=0) if usable.sum() >= 2 else np.zeros(dim)
    comp = unit(vectors.raw - centre) if np.any(centre) else vectors.raw.copy()
    return comp, [unit(w - centre) if w.shape[0] else w for w in vectors.windows]


def _speaker_embeddings(vectors: _Spans, labels: list[int]) -> np.ndarray:
    """The returned speaker embeddings: raw (uncompensated), from each speaker's spans with audio."""
    n, dim = len(labels), vectors.raw.shape[1]
    return np.stack(
        [
            speaker_embedding(
                vectors.raw[[i for i in range(n) if labels[i] == s and vectors.usable[i]]],
                [vectors.durations[i] for i in range(n) if labels[i] == s and vectors.usable[i]],
            )
            if any(labels[i] == s and vectors.usable[i] for i in range(n))
            else np.zeros(dim)
            for s in range(max(labels) + 1)
        ]
    )


# --------------------------------------------------------------------------- factory

_DIARIZERS: dict[tuple[object, ...], Diarizer] = {}
_DIARIZERS_LOCK = threading.Lock()


def make_diarizer(settings: Settings) -> Diarizer:
    """The configured diarizer (``DUBBING_DIARIZER``), one per process and configuration."""
    kind = settings.diarizer or "voicefilter"
    key = (kind, settings.pyannote_dir, settings.device, settings.cpu_threads, settings.speaker_merge_sim)
    with _DIARIZERS_LOCK:
        found = _DIARIZERS.get(key)
        if found is not None:
            return found
        if kind == "pyannote":
            diarizer = _pyannote(settings)
        elif kind in ("voicefilter", "resemblyzer"):
            diarizer = EmbeddingDiarizer(_embedder(settings), settings.speaker_merge_sim)
        else:
            raise ConfigurationError(
                f"unknown diarizer {kind!r} (DUBBING_DIARIZER): use voicefilter, resemblyzer or pyannote"
            )
        _DIARIZERS[key] = diarizer
        return diarizer


def _embedder(settings: Settings) -> SpeakerEmbedder:
    from dubbing_pipeline.speakers import embedders  # lazy: onnx and onnxruntime engines

    return embedders.make_embedder(settings)


def _pyannote(settings: Settings) -> Diarizer:
    try:
        from dubbing_pipeline.speakers import pyannote_engine  # lazy: torch and pyannote.audio
    except ImportError as exc:
        raise ModelMissingError("DUBBING_DIARIZER=pyannote needs pyannote.audio 3.x installed") from exc
    return pyannote_engine.PyannoteDiarizer(settings)
