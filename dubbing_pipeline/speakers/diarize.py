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
   on the labelled set of real recordings in :mod:`dubbing_pipeline.speakers.labelled_set`
   (``python -m dubbing_pipeline.speakers.labelled_set``). Why ``w``: the windows of one long
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

``PyannoteDiarizer`` (production, GPU) runs a local pyannote.audio 3.1
``speaker-diarization`` pipeline on the chunk, maps spans to its speakers by overlap and
uses the pipeline's own centroid embeddings, then applies the same complete-linkage merge.
"""

from __future__ import annotations

import copy
import os
import threading
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from dubbing_pipeline.errors import (
    ConfigurationError,
    ModelMissingError,
    ProviderError,
    require_dir,
    require_torch_device,
)
from dubbing_pipeline.freshness import recipe
from dubbing_pipeline.hashing import sha256_file
from dubbing_pipeline.offline import keep_hub_offline
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.speakers.clustering import complete_linkage, first_appearance, speaker_embedding, unit
from dubbing_pipeline.speakers.embedders import SpeakerEmbedder, make_embedder

SAMPLE_RATE = 16000
CODE_VERSION = recipe("speakers").code[1]
SPLIT_SEEDS = 32  # first seeds tried per split (spans, in order)


@dataclass
class ChunkDiarization:
    """Local speakers of one chunk.

    ``labels[i]`` is the local speaker (``0..k-1``, numbered by first appearance) of the
    i-th input span; ``embeddings`` is the ``(k, d)`` matrix of unit speaker embeddings;
    ``span_embeddings`` (``(n, d)``, optional) holds one unit embedding per span.
    """

    labels: list[int]
    embeddings: np.ndarray
    span_embeddings: np.ndarray | None = field(default=None)

    @property
    def num_speakers(self) -> int:
        return int(self.embeddings.shape[0])


class Diarizer(ABC):
    name: str = ""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Provider, models and parameters, for cache keys."""

    @abstractmethod
    def diarize(
        self, audio16k: np.ndarray, spans: Sequence[tuple[float, float]], offset: float
    ) -> ChunkDiarization:
        """Speakers of ``spans`` (absolute seconds) in ``audio16k``, which starts at ``offset``."""


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


def _relabel(labels: Sequence[int]) -> list[int]:
    return first_appearance(list(labels))


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

    def describe(self) -> dict[str, Any]:
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
            "code": CODE_VERSION,
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
        audio = np.ascontiguousarray(audio16k, dtype=np.float32).reshape(-1)
        n = len(spans)
        dim = int(self.embedder.dim)
        if n == 0:
            return ChunkDiarization([], np.zeros((0, dim)), np.zeros((0, dim)))
        durations = [max(0.0, float(e) - float(s)) for s, e in spans]
        raw = np.zeros((n, dim))
        windows: list[np.ndarray] = [np.zeros((0, dim))] * n
        long_ids: list[int] = []
        usable = np.zeros(n, dtype=bool)
        for i, (s, e) in enumerate(spans):
            piece = _slice(audio, float(s), float(e), offset)
            if piece.shape[0] < SAMPLE_RATE // 50:  # under 20 ms of audio: nothing to embed
                continue
            usable[i] = True
            if piece.shape[0] >= self.min_span * SAMPLE_RATE:
                windows[i] = _window_embeddings(self.embedder, piece)
                raw[i] = unit(windows[i].mean(axis=0))
                long_ids.append(i)
            else:
                raw[i] = unit(np.asarray(self.embedder.embed(piece), dtype=np.float64))
        if not usable.any():
            raise ProviderError("diarization: none of the spans lies inside the chunk audio")

        if len(long_ids) >= 2:
            centre = np.concatenate([windows[i] for i in long_ids], axis=0).mean(axis=0)
        else:
            centre = raw[usable].mean(axis=0) if usable.sum() >= 2 else np.zeros(dim)
        comp = unit(raw - centre) if np.any(centre) else raw.copy()
        comp_windows = [unit(w - centre) if w.shape[0] else w for w in windows]

        # first pass + speaker-level complete linkage
        if long_ids:
            clusters = self._first_pass(comp_windows, long_ids)
            cluster_embs = np.stack([speaker_embedding(comp[c], [durations[i] for i in c]) for c in clusters])
            merged = complete_linkage(cluster_embs, self.merge_threshold)
        else:  # no span long enough to cluster: one speaker
            clusters = [[i for i in range(n) if usable[i]]]
            cluster_embs = unit(comp[clusters[0]].mean(axis=0))[None, :]
            merged = [0]
        labels = [-1] * n
        for cluster, speaker in zip(clusters, merged, strict=True):
            for i in cluster:
                labels[i] = speaker

        # speakers in the compensated space, for assigning the remaining spans
        k = max(merged) + 1
        speaker_comp = np.stack(
            [
                speaker_embedding(
                    comp[[i for i in range(n) if labels[i] == s]],
                    [durations[i] for i in range(n) if labels[i] == s],
                )
                for s in range(k)
            ]
        )
        for i in range(n):
            if labels[i] >= 0:
                continue
            if usable[i] and np.any(comp[i]):
                labels[i] = int(np.argmax(speaker_comp @ comp[i]))
            else:  # no audio: the speaker of the nearest span in time
                labels[i] = self._nearest_labelled(spans, labels, i)
        labels = _relabel(labels)
        k = max(labels) + 1
        embeddings = np.stack(
            [
                speaker_embedding(
                    raw[[i for i in range(n) if labels[i] == s and usable[i]]],
                    [durations[i] for i in range(n) if labels[i] == s and usable[i]],
                )
                if any(labels[i] == s and usable[i] for i in range(n))
                else np.zeros(dim)
                for s in range(k)
            ]
        )
        return ChunkDiarization(labels, embeddings, raw)

    @staticmethod
    def _nearest_labelled(spans: Sequence[tuple[float, float]], labels: Sequence[int], i: int) -> int:
        middle = (float(spans[i][0]) + float(spans[i][1])) / 2
        best = min(
            (j for j in range(len(spans)) if labels[j] >= 0),
            key=lambda j: abs((float(spans[j][0]) + float(spans[j][1])) / 2 - middle),
            default=None,
        )
        return 0 if best is None else labels[best]


# --------------------------------------------------------------------------- pyannote


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def _pyannote_checkpoint_globals() -> Any:
    """Allow the classes pyannote pickles into its checkpoints, and nothing else, while loading.

    Since torch 2.6 ``torch.load`` defaults to ``weights_only=True``; pyannote.audio 3.x loads its
    checkpoints through Lightning without saying otherwise, and every pyannote checkpoint (the hub's
    and ours) holds its task ``Specifications`` (with the ``Problem`` / ``Resolution`` enums) and the
    ``TorchVersion`` it was saved with, so loading failed with "Weights only load failed". Listing
    exactly these keeps the safe unpickler instead of turning it off (``weights_only=False``).
    """
    import torch
    from pyannote.audio.core.task import Problem, Resolution, Specifications  # type: ignore[import-untyped]
    from torch.torch_version import TorchVersion

    return torch.serialization.safe_globals([Specifications, Problem, Resolution, TorchVersion])


def _loadable_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the embedding checkpoint given as ``{checkpoint: path}``, not as a string.

    pyannote.audio 3.x picks the embedding loader from the *text* of a string entry: anything
    containing "pyannote" loads as a pyannote model, otherwise "speechbrain", "nvidia" and
    "wespeaker" select SpeechBrain, NeMo and ONNX loaders. Our entries are absolute paths, so the
    loader depended on the host directory: the hub layout's ``wespeaker-voxceleb-resnet34-LM/
    pytorch_model.bin`` under a directory without "pyannote" in its path went to onnxruntime
    ("INVALID_PROTOBUF ... Protobuf parsing failed"). A mapping is always loaded with
    ``Model.from_pretrained(**mapping)``, the loader the hub id selects.
    """
    out = copy.deepcopy(config)
    params = out.get("pipeline", {}).get("params", {})
    if isinstance(params.get("embedding"), str):
        params["embedding"] = {"checkpoint": params["embedding"]}
    return out


class PyannoteDiarizer(Diarizer):
    """A local pyannote.audio 3.1 ``SpeakerDiarization`` pipeline (``DUBBING_PYANNOTE_DIR``).

    The directory holds ``config.yaml`` whose ``segmentation`` / ``embedding`` entries
    point at local checkpoints; relative paths are resolved against the directory.
    Hub model ids are refused, so nothing is ever downloaded.
    """

    name = "pyannote"

    def __init__(self, settings: Settings) -> None:
        folder = Path(require_dir(settings.pyannote_dir, "pyannote diarization", "DUBBING_PYANNOTE_DIR"))
        self.config_path = folder / "config.yaml"
        if not self.config_path.is_file():
            raise ModelMissingError("pyannote diarization: config.yaml not found in DUBBING_PYANNOTE_DIR")
        self.folder = folder
        self.merge_threshold = float(settings.speaker_merge_sim)
        self.cpu_threads = max(1, int(settings.cpu_threads))
        self._config = self._resolved_config()
        self._models = self._fingerprints()
        try:
            import pyannote.audio  # noqa: F401
            import torch
        except ImportError as exc:
            raise ModelMissingError("DUBBING_DIARIZER=pyannote needs pyannote.audio 3.x installed") from exc
        self.device = require_torch_device(torch, settings.device)
        self._pipeline: Any = None
        self._lock = threading.Lock()

    def _resolved_config(self) -> dict[str, Any]:
        """``config.yaml`` with both checkpoints resolved to existing local files, or a classified error.

        Checked here, at start, rather than by pyannote at the first chunk: an unreadable file gave
        a raw ``yaml`` / ``AttributeError``, and an absent ``segmentation`` / ``embedding`` entry made
        pyannote fall back to its own hub defaults (a download, refused offline). A checkpoint entry
        may name a hub-style model directory; pyannote loads only files, so it resolves to the
        directory's ``pytorch_model.bin``. Torch checkpoints are zip archives: anything else (a
        truncated download, an HTML error page) is refused here too.
        """
        import yaml

        try:
            with open(self.config_path, encoding="utf-8") as handle:
                config = yaml.safe_load(handle)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ModelMissingError(f"pyannote diarization: config.yaml is not readable YAML: {exc}") from exc
        pipeline = config.get("pipeline") if isinstance(config, dict) else None
        params = pipeline.get("params") if isinstance(pipeline, dict) else None
        if (
            not isinstance(pipeline, dict)
            or not isinstance(pipeline.get("name"), str)
            or not isinstance(params, dict)
        ):
            raise ModelMissingError(
                "pyannote diarization: config.yaml needs pipeline.name and pipeline.params (the layout of "
                "pyannote/speaker-diarization-3.1)"
            )
        for key in ("segmentation", "embedding"):
            params[key] = str(self._local_checkpoint(key, params.get(key)))
        return dict(config)

    def _local_checkpoint(self, key: str, value: object) -> Path:
        if not isinstance(value, str) or not value:
            raise ModelMissingError(
                f"pyannote diarization: config.yaml pipeline.params.{key} must name a local checkpoint"
            )
        local = Path(value) if os.path.isabs(value) else self.folder / value
        if local.is_dir():
            local = local / "pytorch_model.bin"
        if not local.is_file():
            raise ModelMissingError(
                f"pyannote diarization: config.yaml {key} {os.path.basename(value)!r} is not a local "
                "checkpoint inside DUBBING_PYANNOTE_DIR"
            )
        if not zipfile.is_zipfile(local):
            raise ModelMissingError(
                f"pyannote diarization: {key} checkpoint {local.name!r} is not a torch checkpoint "
                "(truncated or corrupt)"
            )
        return local

    def _fingerprints(self) -> dict[str, dict[str, str]]:
        """File name and content hash of each checkpoint, for the cache key.

        By content, not size: checkpoints of one architecture have the same size whatever
        their weights, so a size-keyed cache served one model's diarization for another.
        """
        params = self._config["pipeline"]["params"]
        return {
            key: {"file": os.path.basename(params[key]), "sha256": sha256_file(params[key])[:16]}
            for key in ("segmentation", "embedding")
        }

    def _load(self) -> Any:
        with self._lock:
            if self._pipeline is None:
                import tempfile

                import torch
                import yaml
                from pyannote.audio import Pipeline

                keep_hub_offline()
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / "config.yaml"
                    path.write_text(yaml.safe_dump(_loadable_config(self._config)), encoding="utf-8")
                    try:
                        with _pyannote_checkpoint_globals():
                            pipeline = Pipeline.from_pretrained(str(path))
                    except Exception as exc:
                        raise ModelMissingError(
                            f"pyannote diarization: cannot load the pipeline: {exc}"
                        ) from exc
                if pipeline is None:
                    raise ModelMissingError("pyannote diarization: the pipeline could not be loaded")
                if self.device.type == "cpu":
                    torch.set_num_threads(self.cpu_threads)
                pipeline.to(self.device)
                self._pipeline = pipeline
            return self._pipeline

    def describe(self) -> dict[str, Any]:
        return {
            "provider": self.name,
            "pipeline": self._config.get("pipeline", {}).get("name"),
            "models": self._models,
            "params": self._config.get("params", {}),
            "merge_threshold": self.merge_threshold,
            "versions": {"pyannote.audio": _version("pyannote.audio"), "torch": _version("torch")},
            "code": CODE_VERSION,
        }

    def diarize(
        self, audio16k: np.ndarray, spans: Sequence[tuple[float, float]], offset: float
    ) -> ChunkDiarization:
        if not spans:
            return ChunkDiarization([], np.zeros((0, 0)))
        turns, centroids = self.speaker_turns(audio16k, offset)
        return self.assign(spans, turns, centroids, self.merge_threshold)

    def speaker_turns(
        self, audio16k: np.ndarray, offset: float
    ) -> tuple[list[tuple[float, float, int]], np.ndarray]:
        """The pipeline's turns ``(start, end, speaker)`` in absolute seconds, and its centroids.

        ``centroids[speaker]`` is the pipeline's embedding of that speaker (a zero row where
        pyannote found more speakers in the turns than clusters). Turns are clipped to the audio:
        pyannote pads the last 10 s window with zeros and reconstructs frames up to that window's
        end, so a turn could end (or lie wholly) up to a window past the chunk.
        """
        import torch

        pipeline = self._load()
        audio = np.ascontiguousarray(audio16k, dtype=np.float32).reshape(-1)
        waveform = torch.from_numpy(audio)[None, :]
        try:
            annotation, centroids = pipeline(
                {"waveform": waveform, "sample_rate": SAMPLE_RATE, "uri": "chunk"}, return_embeddings=True
            )
        except Exception as exc:
            raise ProviderError(f"pyannote diarization failed: {exc}") from exc
        names = list(annotation.labels())
        duration = audio.shape[0] / SAMPLE_RATE
        turns = [
            (float(seg.start) + offset, min(float(seg.end), duration) + offset, names.index(label))
            for seg, _, label in annotation.itertracks(yield_label=True)
            if float(seg.start) < duration
        ]
        matrix = np.asarray(
            centroids if centroids is not None else np.zeros((len(names), 0)), dtype=np.float64
        )
        return turns, matrix

    @staticmethod
    def assign(
        spans: Sequence[tuple[float, float]],
        turns: Sequence[tuple[float, float, int]],
        centroids: np.ndarray,
        merge_threshold: float,
    ) -> ChunkDiarization:
        """Spans → pipeline speakers by overlap (nearest turn if none), then the complete-linkage merge."""
        n = len(spans)
        dim = centroids.shape[1] if centroids.ndim == 2 else 0
        if not turns:
            return ChunkDiarization([0] * n, np.zeros((1 if n else 0, dim)))
        picked: list[int] = []
        for s, e in spans:
            overlap: dict[int, float] = {}
            for ts, te, who in turns:
                amount = min(float(e), te) - max(float(s), ts)
                if amount > 0:
                    overlap[who] = overlap.get(who, 0.0) + amount
            if overlap:
                picked.append(max(sorted(overlap), key=lambda w: overlap[w]))
            else:
                middle = (float(s) + float(e)) / 2
                nearest = min(turns, key=lambda t: max(t[0] - middle, middle - t[1], 0.0))
                picked.append(nearest[2])
        used = sorted(set(picked))
        embs = unit(centroids[used]) if dim else np.zeros((len(used), 0))
        valid = [i for i, row in enumerate(embs) if np.any(row)]
        merged = list(range(len(used)))
        if len(valid) >= 2:
            sub = complete_linkage(embs[valid], merge_threshold)
            for position, label in zip(valid, sub, strict=True):
                merged[position] = label
            # speakers without an embedding keep their own label, after the merged ones
            extra = max(sub) + 1
            for position in range(len(used)):
                if position not in valid:
                    merged[position] = extra
                    extra += 1
        local = [merged[used.index(p)] for p in picked]
        labels = _relabel(local)
        k = max(labels) + 1
        out = np.zeros((k, dim))
        for speaker in range(k):
            rows = [embs[used.index(p)] for p, lab in zip(picked, labels, strict=True) if lab == speaker]
            rows = [r for r in rows if np.any(r)]
            if rows:
                out[speaker] = unit(np.mean(rows, axis=0))
        return ChunkDiarization(labels, out)


# --------------------------------------------------------------------------- factory

_DIARIZERS: dict[tuple[Any, ...], Diarizer] = {}
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
            diarizer: Diarizer = PyannoteDiarizer(settings)
        elif kind in ("voicefilter", "resemblyzer"):
            diarizer = EmbeddingDiarizer(make_embedder(settings), settings.speaker_merge_sim)
        else:
            raise ConfigurationError(
                f"unknown diarizer {kind!r} (DUBBING_DIARIZER): use voicefilter, resemblyzer or pyannote"
            )
        _DIARIZERS[key] = diarizer
        return diarizer
