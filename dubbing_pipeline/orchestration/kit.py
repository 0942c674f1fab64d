"""The stage kit: how every stage declares a cached step and reports it to Dagster.

A *step* is one unit of work whose result is worth keeping: a whole stage (``audio_stems``) or
one fan-out item (a transcript chunk, a batch's line). The kit owns everything around the
work itself, so a stage's own code is only what it computes:

* the **cache key**: a content hash of the step's name and its declared inputs (the upstream
  keys, which chain back to the source file's sha256; the provider's fingerprint; the
  settings and code version that change the result);
* the **step cache**: a hit returns the stored record without running anything; a miss runs
  the step in a private scratch directory, stores its artifacts, then writes ``record.json``
  last (a record that exists is complete, so a step killed half way is simply redone);
* **timing**, **error classification** (:func:`classified`) and **materialisation
  metadata** (:func:`stage_output`).

Usage, in a stage module::

    result = run_step(storage, "stems", inputs={"upstream": ..., "provider": ...},
                      compute=lambda step: {...record fields...})
    return stage_output(result.record, upstream={"source_video": source_video},
                        code_version=CODE_VERSION, seconds=result.seconds, cached=result.cached,
                        media_seconds=..., ...)

The compute function receives a :class:`Step`: its key, a scratch folder, ``local(uri)`` to
read media from storage and ``put(name, path)`` to store an artifact under the step's key.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypedDict, TypeVar, overload

import dagster as dg

from dubbing_pipeline.common.hashing import cache_key
from dubbing_pipeline.errors import DubbingError, InternalError, classify
from dubbing_pipeline.freshness import recipe
from dubbing_pipeline.orchestration.cache import ARTIFACTS, StepCache, scratch
from dubbing_pipeline.orchestration.partitions import video_language, videos
from dubbing_pipeline.orchestration.placement import gpu_op_tags, gpu_pool
from dubbing_pipeline.orchestration.resources import StorageResource
from dubbing_pipeline.records import JsonObject, Record, StageRecord
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.stages import STEPS, scope
from dubbing_pipeline.storage import MediaStorage

RETRIED = ("provider_failure", "resources_exhausted")
# a step whose provider failed (or ran out of memory) is tried twice more; other failures are final
RETRY = dg.RetryPolicy(max_retries=2, delay=2.0, backoff=dg.Backoff.EXPONENTIAL)


@contextmanager
def classified(stage: str) -> Iterator[None]:
    """Turn any exception into a ``dg.Failure`` with a one-line, sanitised, classified message.

    Provider failures and exhausted resources may be retried; every other class is final. An
    exception that is neither a :class:`DubbingError` nor a known failure is one of our own
    bugs: an ``internal`` error, not retried, whose traceback stays in the run's log.
    """
    try:
        yield
    except dg.Failure:
        raise
    except Exception as exc:
        err = classify(exc)
        raise dg.Failure(
            description=f"{stage}: {err.one_line()}",
            metadata={"error_code": err.code, "error_stage": stage, "error": err.message},
            allow_retries=err.code in RETRIED,
        ) from (exc if not isinstance(exc, DubbingError) else None)


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


@dataclass
class Step:
    """A step being computed: where its artifacts go and where its inputs come from."""

    name: str
    key: str
    storage: MediaStorage
    cache: StepCache
    tmp: Path
    artifacts: dict[str, int] = field(default_factory=dict)

    @contextmanager
    def local(self, uri: str) -> Iterator[Path]:
        """A local path for a media URI of the storage (downloaded into the scratch folder if remote)."""
        with self.storage.open_local(self.storage.key_of(uri), self.tmp) as path:
            yield Path(path)

    def put(self, name: str, path: str | Path) -> str:
        """Store an artifact of this step; returns its URI. The record names it with its size, so
        a later hit checks it is still there as written."""
        self.artifacts[name] = Path(path).stat().st_size
        return self.cache.put_artifact(self.key, name, path)


T = TypeVar("T")
R = TypeVar("R", bound=StageRecord)
Out = TypeVar("Out", bound=JsonObject | StageRecord)

Metadata = dict[str, dg.MetadataValue[Any]]
"""A materialisation's metadata, by name."""


@dataclass
class StepResult(Generic[T]):
    """A step's record, whether it came from the cache, and how long the step took here."""

    record: T
    cached: bool
    seconds: float


def model_op(fn: Callable[..., Any], settings: Settings, *, stage: str, placement: str) -> dg.OpDefinition:
    """The fan-out op that runs a model: retried on provider failures, on the GPU pool where
    ``settings`` put the ``placement`` stage's provider on a GPU (production), nowhere special else."""
    return dg.op(
        name=fn.__name__,
        retry_policy=RETRY,
        tags={"stage": stage, **gpu_op_tags(settings, placement)},
        pool=gpu_pool(settings, placement),
    )(fn)


def step_key(name: str, inputs: Mapping[str, Any], recipe: str = "") -> str:
    """The cache key of step ``name``: its declared inputs and its stage's recipe digest
    (``freshness.stage_digest``: settings rows, model content, library and tool versions)."""
    return cache_key(name, **dict(inputs), recipe=recipe)


def stage_of_step(name: str) -> str:
    """The stage whose recipe keys step ``name`` (``stages.STEPS``); an unknown step is our bug."""
    try:
        return STEPS[name]
    except KeyError:
        raise InternalError(f"step {name!r} belongs to no stage (add it to stages.STEPS)") from None


@overload
def run_step(
    where: StorageResource,
    name: str,
    *,
    inputs: Mapping[str, Any],
    compute: Callable[[Step], Mapping[str, Any]],
) -> StepResult[JsonObject]: ...


@overload
def run_step(
    where: StorageResource,
    name: str,
    *,
    inputs: Mapping[str, Any],
    compute: Callable[[Step], Mapping[str, Any]],
    record: type[R],
) -> StepResult[R]: ...


def run_step(
    where: StorageResource,
    name: str,
    *,
    inputs: Mapping[str, Any],
    compute: Callable[[Step], Mapping[str, Any]],
    record: type[StageRecord] | None = None,
) -> StepResult[Any]:
    """The cached result of step ``name`` for ``inputs``, computing it on a miss.

    ``compute`` returns the record's fields; the kit adds ``cache_key`` first and writes the
    record after every artifact the step stored. The key also names the recipe of the step's
    stage (``freshness``), so a changed model, library, tool or setting is a miss. With
    ``record`` (the step's :class:`StageRecord` type) the result is that typed record, checked
    before it is stored and when it is read back.
    """
    timer = Timer()
    storage = where.get()
    key = step_key(name, inputs, where.recipe_digest(stage_of_step(name)))
    cache = StepCache(storage, name)
    hit = cache.get(key)
    if hit is not None:
        return StepResult(hit if record is None else record.from_json(hit), True, timer.seconds)
    with scratch(name, where.work_dir or None) as tmp:
        step = Step(name, key, storage, cache, tmp)
        fields = compute(step)
    if record is None:
        stored = cache.put(key, {"cache_key": key, **fields, ARTIFACTS: step.artifacts})
        return StepResult(stored, False, timer.seconds)
    typed = record.model_validate({"cache_key": key, **fields, ARTIFACTS: step.artifacts})
    cache.put(key, typed.to_json())
    return StepResult(typed, False, timer.seconds)


def preview_table(
    columns: Sequence[tuple[str, Callable[[Mapping[str, Any]], Any], bool]],
    items: Sequence[Mapping[str, Any]],
    limit: int = 40,
) -> str:
    """A markdown table of the first ``limit`` items for the UI: ``(header, cell, right-aligned)``
    per column; ``|`` in cells is escaped, and a last row counts what was left out."""
    head = "| " + " | ".join(name for name, _, _ in columns) + " |"
    rule = "|" + "|".join("---:" if right else "---" for _, _, right in columns) + "|"
    rows = [head, rule]
    for item in items[:limit]:
        rows.append("| " + " | ".join(str(cell(item)).replace("|", "\\|") for _, cell, _ in columns) + " |")
    if len(items) > limit:
        rows.append("| " + " | ".join(["…"] * (len(columns) - 1)) + f" | {len(items) - limit} more |")
    return "\n".join(rows)


def stage_metadata(
    *,
    seconds: float,
    media_seconds: float,
    cached: bool,
    cache_key: str,
    provider: Mapping[str, Any] | None = None,
    counts: Mapping[str, int | float] | None = None,
    preview: str | None = None,
    extra: Mapping[str, dg.MetadataValue[Any]] | None = None,
) -> Metadata:
    """Materialisation metadata every stage carries."""
    meta: Metadata = {
        "seconds": dg.MetadataValue.float(round(seconds, 3)),
        "real_time_factor": dg.MetadataValue.float(
            round(seconds / media_seconds, 4) if media_seconds else 0.0
        ),
        "cached": dg.MetadataValue.bool(cached),
        "cache_key": dg.MetadataValue.text(cache_key),
    }
    if provider:
        meta["provider"] = dg.MetadataValue.text(str(provider.get("name", "")))
        meta["model"] = dg.MetadataValue.text(str(provider.get("model", "")))
        meta["provider_config"] = dg.MetadataValue.json(dict(provider))
    for name, count in (counts or {}).items():
        meta[name] = dg.MetadataValue.int(count) if isinstance(count, int) else dg.MetadataValue.float(count)
    if preview:
        meta["preview"] = dg.MetadataValue.md(preview)
    for name, value in (extra or {}).items():
        meta[name] = value
    return meta


DATA_VERSION_TAG = "dagster/data_version"
"""The tag Dagster stores a materialisation's (or observation's) data version under; indexed, so
the catalog and ``up_to_date`` read the latest one per partition in one query."""
UPSTREAM_KEYS = "upstream_cache_keys"


OBSERVE_ROUNDS = 10


def observe_until_stable(
    instance: dg.DagsterInstance, stored: Callable[[], dg.AssetObservation], rounds: int = OBSERVE_ROUNDS
) -> str:
    """Record the observation of what is stored now (``stored()`` reads it), and again while it
    changed in between: read, observe, read again until the stored version is the one just
    observed. Of several writers at once, the last observation recorded is therefore that of what
    is stored (each checks after its own observation), not of whichever reported last. Returns the
    data version observed last."""
    observed = ""
    for _ in range(rounds):
        event = stored()
        version = str(event.tags[DATA_VERSION_TAG])
        if version == observed:
            break
        instance.report_runless_asset_event(event)
        observed = version
    return observed


def lineage_digest(upstream_keys: Mapping[str, str]) -> str:
    """A short digest of which parent records (by cache key) an output was made from.

    ``name<TAB>key`` lines in name order (asset names and hex keys hold neither tab nor newline);
    cheap on purpose: the catalog computes one per partition and asset on every tick.
    """
    return lineage_of_lines([f"{name}\t{key}" for name, key in sorted(upstream_keys.items())])


def lineage_of_lines(lines: Sequence[str]) -> str:
    """:func:`lineage_digest` of ``name<TAB>key`` lines already in name order (the catalog's hot path)."""
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Version:
    """A stage output's data version: its cache key, its lineage digest and the code that made it.

    Written as ``<cache_key>.<lineage>.<code_version>``, so the catalog can judge every partition of
    an asset from one indexed query of the latest data versions (``catalog.Freshness``).
    """

    key: str
    lineage: str
    code: str

    def __str__(self) -> str:
        return f"{self.key}.{self.lineage}.{self.code}"

    @classmethod
    def parse(cls, text: str | None) -> Version | None:
        parts = (text or "").split(".", 2)
        return cls(*parts) if len(parts) == 3 and all(parts[:2]) else None


def stage_output(
    record: Out,
    *,
    upstream: Mapping[str, Mapping[str, Any] | Record],
    code_version: str,
    seconds: float,
    cached: bool,
    media_seconds: float,
    provider: Mapping[str, Any] | None = None,
    counts: Mapping[str, int | float] | None = None,
    preview: str | None = None,
    extra: Mapping[str, dg.MetadataValue[Any]] | None = None,
) -> dg.Output[Out]:
    """The asset's output: its record plus the metadata every stage carries.

    ``upstream`` is every parent asset's record this output was made from (by asset name; the
    root names the source object version it was made from). Their cache keys are shown as
    ``upstream_cache_keys`` and digested into the data version (:class:`Version`), the lineage
    the catalog judges freshness by: a partition is fresh when its parents' latest cache keys are
    the ones it was made from, and ``code_version`` is the asset's current one.
    """
    lineage = {name: str(parent["cache_key"]) for name, parent in sorted(upstream.items())}
    if not record.get("cache_key") or not all(lineage.values()):
        raise InternalError(
            "a stage output without a cache key (its own, or a parent's) breaks the key chain"
        )
    version = Version(str(record["cache_key"]), lineage_digest(lineage), code_version)
    return dg.Output(
        record,
        data_version=dg.DataVersion(str(version)),
        metadata=stage_metadata(
            seconds=seconds,
            media_seconds=media_seconds,
            cached=cached,
            cache_key=str(record["cache_key"]),
            provider=provider,
            counts=counts,
            preview=preview,
            extra={UPSTREAM_KEYS: dg.MetadataValue.json(lineage), **(extra or {})},
        ),
    )


GROUPS = {"video": "source_half", "pair": "target_half"}


def stage_asset(
    fn: Callable[..., Any],
    *,
    kinds: set[str],
    description: str,
    settings: Settings | None = None,
    placement: str | None = None,
    graph: bool = False,
    **extra: Any,
) -> dg.AssetsDefinition:
    """The asset of the stage ``fn`` is named after: its compute function (or, with ``graph``, the
    composition of its fan-out ops), declared once. Partitions, group and code version come from
    the stage tables (``stages``, ``freshness``); ``placement`` puts its op on the GPU pool where
    ``settings`` run that provider on a GPU. ``extra``: further ``dg.asset`` arguments (checks, deps)."""
    name = fn.__name__
    declared = _Declared(
        name=name,
        partitions_def=videos if scope(name) == "video" else video_language,
        code_version=recipe(name).code[0],
        group_name=GROUPS[scope(name)],
        kinds=kinds,
        description=description,
    )
    if graph:
        return _built(dg.graph_asset(**declared, **extra)(fn))
    if placement is None:
        return _built(dg.asset(**declared, **extra)(fn))
    chosen = settings or Settings()
    tags, pool = gpu_op_tags(chosen, placement), gpu_pool(chosen, placement)
    return _built(dg.asset(**declared, op_tags=tags, pool=pool, **extra)(fn))


class _Declared(TypedDict):
    """What the stage tables declare of a stage's asset (``dg.asset`` arguments)."""

    name: str
    partitions_def: dg.PartitionsDefinition[Any]
    code_version: str
    group_name: str
    kinds: set[str]
    description: str


def _built(asset: object) -> dg.AssetsDefinition:
    """The asset a decorator made (``dg.asset``'s overloads type it loosely)."""
    if not isinstance(asset, dg.AssetsDefinition):
        raise InternalError(f"a stage declaration made {type(asset).__name__}, not an asset")
    return asset
