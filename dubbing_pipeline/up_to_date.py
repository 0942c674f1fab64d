"""An unchanged re-run of ``dub``, told from the records without starting model code.

After a dub succeeds, the CLI stores ``done/<video>/<language>.json`` with a *fingerprint* of
everything the dub was made from:

* the source file's SHA-256 and where the registry says the video lives;
* the settings table (every row, secrets hashed with the rest, never stored in clear);
* the files named by path-valued settings (size and modification time of a file, of each entry
  of a directory: a glossary, signing credentials, a model directory);
* the code: a digest of the package's own source files (``*.py``, ``*.json``), so any change of
  code, even one that forgot its ``code_version``, runs the stages again;
* the partition's edits and feedback files;
* the Dagster data version of the latest materialisation of every stage of the source half
  (``video``) and of the target half (``video × language``): a run, a wipe or a ``delete`` from
  anywhere (UI, sensor, backfill) changes them.

When ``dub`` is asked again and the fingerprint is equal, and the finished files are still in
storage, no stage runs: the CLI records one small ``up_to_date`` Dagster run (so the UI shows that
the dub was asked for, and why nothing was done) and copies the outputs. Anything else runs the
jobs as usual, where every stage's own cache still decides what is redone. The fingerprint is
conservative: it can send an unchanged dub to the jobs (which then hit every cache), never a
changed one past them.
"""

import functools
import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from dubbing_pipeline.hashing import canonical_json, sha256_bytes
from dubbing_pipeline.ids import dub_file_key
from dubbing_pipeline.settings import Settings, rows

SCHEMA = "dubbing_pipeline.done/1"
DATA_VERSION_TAG = "dagster/data_version"
PACKAGE = Path(__file__).resolve().parent


def done_key(video_id: str, language: str) -> str:
    return dub_file_key("done", video_id, language)


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 over the package's source files (relative path and bytes, sorted by path)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in PACKAGE.rglob("*") if p.suffix in (".py", ".json") and p.is_file()):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _stat(path: Path) -> list[Any]:
    st = path.stat()
    return [path.name, st.st_size, st.st_mtime_ns]


def path_state(value: object) -> list[Any] | None:
    """What a path-valued setting points at: a file's size and mtime, a directory's entries'."""
    if not isinstance(value, str) or not value or "://" in value:
        return None
    path = Path(value)
    try:
        if path.is_file():
            return _stat(path)
        if path.is_dir():
            return [_stat(p) for p in sorted(path.iterdir())]
    except OSError:
        return None
    return None


INPUT_FILES = (
    "DUBBING_GLOSSARY", "DUBBING_C2PA_CERT", "DUBBING_C2PA_KEY", "DUBBING_DEMUCS_REPO",
    "DUBBING_WHISPER_MODEL_DIR", "DUBBING_PYANNOTE_DIR", "DUBBING_TTS_MODEL_DIR", "DUBBING_LATENTSYNC_DIR",
    "DUBBING_MUSETALK_DIR",
)  # fmt: skip
"""The settings that name files a dub is made from (not the storage or scratch folders it writes)."""


def settings_state(settings: Settings) -> dict[str, Any]:
    """Every row of the settings table, and what its input files are (hashed into the fingerprint,
    never stored); without a signing certificate, the local signer's folder."""
    values = {row.name: getattr(settings, row.name) for row in rows()}
    paths = {row.name: path_state(values[row.name]) for row in rows() if row.metadata["env"] in INPUT_FILES}
    if not settings.c2pa_cert:
        paths["local_signer"] = path_state(str(Path(settings.model_cache) / "c2pa" / "local"))
    return {"values": values, "paths": paths}


def latest_versions(
    instance: dg.DagsterInstance, assets: Iterable[str], partition: str
) -> dict[str, str | None]:
    """The data version of each asset's latest materialisation of ``partition`` (None: none)."""
    out: dict[str, str | None] = {}
    for asset in assets:
        tags = instance.event_log_storage.get_latest_tags_by_partition(
            dg.AssetKey(asset), dg.DagsterEventType.ASSET_MATERIALIZATION, [DATA_VERSION_TAG], [partition]
        )
        out[asset] = tags.get(partition, {}).get(DATA_VERSION_TAG)
    return out


def _stored(storage: Any, key: str) -> str | None:
    """The SHA-256 of a stored file (None: not stored)."""
    return sha256_bytes(storage.get_bytes(key)) if storage.exists(key) else None


def fingerprint(
    instance: dg.DagsterInstance,
    storage: Any,
    settings: Settings,
    *,
    source_sha256: str,
    registered: str,
    video_id: str,
    language: str,
) -> str:
    """The fingerprint of one dub as it would be made now (see the module's doc)."""
    from dubbing_pipeline.edits import edits_key
    from dubbing_pipeline.feedback import feedback_key
    from dubbing_pipeline.orchestration.partitions import video_language_key
    from dubbing_pipeline.stages import SOURCE_HALF, TARGET_HALF

    partition = str(video_language_key(video_id, language))
    state = {
        "schema": SCHEMA,
        "source": [source_sha256, registered],
        "settings": settings_state(settings),
        "code": code_digest(),
        "edits": _stored(storage, edits_key(video_id, language)),
        "feedback": _stored(storage, feedback_key(video_id, language)),
        "source_half": latest_versions(instance, SOURCE_HALF, video_id),
        "target_half": latest_versions(instance, TARGET_HALF, partition),
    }
    return sha256_bytes(canonical_json(state).encode())


def record_done(storage: Any, video_id: str, language: str, fp: str, outputs: Sequence[str]) -> None:
    """After a successful dub: what it was made from, and the outputs it left in storage."""
    storage.put_json(
        done_key(video_id, language), {"schema": SCHEMA, "fingerprint": fp, "outputs": list(outputs)}
    )


def is_done(storage: Any, video_id: str, language: str, fp: str) -> bool:
    """Whether the stored dub was made from exactly this fingerprint and its outputs are all there."""
    key = done_key(video_id, language)
    if not storage.exists(key):
        return False
    done = storage.get_json(key)
    if done.get("schema") != SCHEMA or done.get("fingerprint") != fp:
        return False
    return all(storage.exists(storage.key_of(uri)) for uri in done.get("outputs", []))


def forget(storage: Any, video_id: str, language: str) -> None:
    """Drop the record (a failed or deleted dub): the next ``dub`` runs the jobs."""
    key = done_key(video_id, language)
    if storage.exists(key):
        storage.delete(key)


@dg.op(tags={"stage": "up_to_date"})
def confirm_up_to_date(context: dg.OpExecutionContext) -> None:
    """Says, in the run's log, that the dub was asked for and found unchanged."""
    tags = context.run.tags
    context.log.info(
        f"{tags.get('dubbing/partitions', '')}: unchanged since the last dub "
        f"(fingerprint {tags.get('dubbing/fingerprint', '')[:12]}): no stage ran"
    )


@dg.job(
    description="A `dub` that found nothing changed: the source file, settings, code, edits, feedback "
    "and every stage's latest data version are those of the last dub (dubbing_pipeline.up_to_date)."
)
def up_to_date() -> None:
    confirm_up_to_date()


def report_up_to_date(
    instance: dg.DagsterInstance, video_id: str, partitions: Sequence[str], fp: str
) -> bool:
    """Record the ``up_to_date`` run in the instance; whether it succeeded."""
    result = up_to_date.execute_in_process(
        instance=instance,
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        tags={
            "dubbing/video": video_id,
            "dubbing/partitions": ",".join(partitions),
            "dubbing/fingerprint": fp,
        },
        raise_on_error=False,
    )
    return bool(result.success)


__all__ = [
    "code_digest",
    "fingerprint",
    "forget",
    "is_done",
    "record_done",
    "report_up_to_date",
    "up_to_date",
]
