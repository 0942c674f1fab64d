"""An unchanged re-run of ``dub``, told from the records without starting model code.

After the source half of a video succeeds, and after each of its dubs, the CLI stores
``done/<video>.json`` and ``done/<video>/<language>.json`` with a *fingerprint* of everything it
was made from:

* the source file's SHA-256 and where the registry says the video lives;
* the settings table (every row, secrets hashed with the rest, never stored in clear);
* the files named by path-valued settings (size and modification time of a file, of each entry
  of a directory: a glossary, signing credentials, a model directory);
* the code: a digest of the package's own source files (``*.py``, ``*.json``), so any change of
  code, even one that forgot its ``code_version``, runs the stages again;
* for a dub, the partition's edits and feedback files;
* the Dagster data version of the latest materialisation of every stage of the source half
  (``video``) and of the target half (``video × language``): a run, a wipe or a ``delete`` from
  anywhere (UI, sensor, backfill) changes them.

When ``dub`` is asked again, a part whose fingerprint is equal and whose records and files are
still in storage does not run: a second language skips the source half's run, an unchanged dub
runs no stage at all. The CLI records one small ``up_to_date`` Dagster run naming what it found
unchanged (so the UI shows that the dub was asked for, and why nothing was done) and copies the
outputs. Anything else runs the jobs as usual, where every stage's own cache still decides what
is redone. The fingerprint is conservative: it can send an unchanged dub to the jobs (which then
hit every cache), never a changed one past them.
"""

import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from dubbing_pipeline.hashing import canonical_json, sha256_bytes
from dubbing_pipeline.ids import dub_file_key, join_key, sanitize_id
from dubbing_pipeline.orchestration.kit import DATA_VERSION_TAG
from dubbing_pipeline.settings import Settings, rows

SCHEMA = "dubbing_pipeline.done/1"
PACKAGE = Path(__file__).resolve().parent


def done_key(video_id: str, language: str) -> str:
    """``done/<video>/<language>.json``: what the last dub into ``language`` was made from."""
    return dub_file_key("done", video_id, language)


def source_done_key(video_id: str) -> str:
    """``done/<video>.json``: what the last source half of ``video_id`` was made from."""
    return join_key("done", sanitize_id(video_id) + ".json")


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


@dataclass(frozen=True)
class Work:
    """One ``dub`` command's view of what is already done: the source half of ``video_id``
    (``language=None``) and each of its dubs, judged by their fingerprints now."""

    instance: dg.DagsterInstance
    storage: Any
    settings: Settings
    source_sha256: str
    registered: str
    video_id: str

    def key(self, language: str | None) -> str:
        return source_done_key(self.video_id) if language is None else done_key(self.video_id, language)

    def fingerprint(self, language: str | None) -> str:
        """What the source half (``None``) or the dub into ``language`` would be made from now."""
        from dubbing_pipeline.edits import edits_key
        from dubbing_pipeline.feedback import feedback_key
        from dubbing_pipeline.orchestration.partitions import video_language_key
        from dubbing_pipeline.stages import SOURCE_HALF, TARGET_HALF

        state: dict[str, Any] = {
            "schema": SCHEMA,
            "source": [self.source_sha256, self.registered],
            "settings": settings_state(self.settings),
            "code": code_digest(),
            "source_half": latest_versions(self.instance, SOURCE_HALF, self.video_id),
        }
        if language is not None:
            partition = str(video_language_key(self.video_id, language))
            state["dub"] = {
                "language": language,
                "edits": _stored(self.storage, edits_key(self.video_id, language)),
                "feedback": _stored(self.storage, feedback_key(self.video_id, language)),
                "target_half": latest_versions(self.instance, TARGET_HALF, partition),
            }
        return sha256_bytes(canonical_json(state).encode())

    def is_done(self, language: str | None) -> bool:
        """Whether the last success was made from exactly what is here now, its outputs all stored."""
        key = self.key(language)
        if not self.storage.exists(key):
            return False
        done = self.storage.get_json(key)
        if done.get("schema") != SCHEMA or done.get("fingerprint") != self.fingerprint(language):
            return False
        return all(self.storage.exists(k) for k in done.get("outputs", []))

    def record(self, language: str | None, outputs: Sequence[str]) -> None:
        """After a success: its fingerprint (taken now, after the run) and the storage keys it left."""
        fp = self.fingerprint(language)
        self.storage.put_json(
            self.key(language), {"schema": SCHEMA, "fingerprint": fp, "outputs": list(outputs)}
        )

    def forget(self, language: str | None) -> None:
        """Drop the record (a run is starting): until it succeeds, the next ``dub`` runs the jobs."""
        if self.storage.exists(self.key(language)):
            self.storage.delete(self.key(language))


@dg.op(tags={"stage": "up_to_date"})
def confirm_up_to_date(context: dg.OpExecutionContext) -> None:
    """Says, in the run's log, that the dub was asked for and found unchanged."""
    tags = context.run.tags
    context.log.info(f"{tags.get('dubbing/partitions', '')}: unchanged since the last dub: no stage ran")


@dg.job(
    description="A `dub` that found nothing changed: the source file, settings, code, edits, feedback "
    "and every stage's latest data version are those of the last dub (dubbing_pipeline.up_to_date)."
)
def up_to_date() -> None:
    confirm_up_to_date()


def report_up_to_date(instance: dg.DagsterInstance, video_id: str, partitions: Sequence[str]) -> bool:
    """Record the ``up_to_date`` run (the partitions a ``dub`` found unchanged) in the instance."""
    result = up_to_date.execute_in_process(
        instance=instance,
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        tags={"dubbing/video": video_id, "dubbing/partitions": ",".join(partitions)},
        raise_on_error=False,
    )
    return bool(result.success)


__all__ = ["Work", "code_digest", "done_key", "report_up_to_date", "source_done_key", "up_to_date"]
