"""What the commands share: an error as an exit code, this process's Dagster instance and media
storage, a local video registered for a run, the id a command's VIDEO names, and the heap left to
the process when the command is its whole life (``settle``)."""

from __future__ import annotations

import functools
import gc
import sys
from pathlib import Path

import dagster as dg

from dubbing_pipeline.common.ids import sanitize_id
from dubbing_pipeline.errors import BadInputError, DubbingError
from dubbing_pipeline.orchestration.registry import claim_video_id, find_video_id, register_video
from dubbing_pipeline.orchestration.resources import storage_resource
from dubbing_pipeline.orchestration.runner import ensure_dagster_home
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.storage import MediaStorage

_OWN_PROCESS = False
"""True when ``main`` is the whole life of this process (the console script, ``python -m``; set by
``run``), False when a caller imports ``main``: only then is the heap left to the process (``settle``)."""


def own_process() -> None:
    """Say that this process ends with the command (``run``): ``settle`` then freezes the heap."""
    global _OWN_PROCESS
    _OWN_PROCESS = True


def settle() -> None:
    """Take everything alive now out of the garbage collector's sight (``gc.freeze``), when this
    process ends with the command. The modules, definitions and models a command loads live until
    then, yet every full collection walks them again, and so does the interpreter's own collection
    at exit: on the demo dub about 0.5 s of the run and 1.1 s at exit, on an unchanged re-run 0.3 s
    of its 2 s. A caller that imports ``main`` (the tests) keeps its collector as it was."""
    if _OWN_PROCESS:
        gc.freeze()


def fail(err: DubbingError, stage: str | None = None) -> int:
    """Print ``err`` on one line (with the stage it failed in) and return its exit code."""
    where = f" [{stage}]" if stage else ""
    print(f"error{where}: {err.one_line()}", file=sys.stderr)
    return err.exit_code


@functools.cache
def local_instance() -> dg.DagsterInstance:
    """This process's Dagster instance (``$DAGSTER_HOME``), opened once."""
    return dg.DagsterInstance.get()


def register_local(path: str, video_id: str | None) -> tuple[Settings, MediaStorage, str]:
    """Register a local video with the instance and storage; return (settings, storage, video_id)."""
    src = Path(path)
    if not src.is_file():
        raise BadInputError(f"no such file: {src.name}")
    ensure_dagster_home()
    settings = Settings.from_env()
    storage = storage_resource(settings).get()
    uri = src.resolve().as_uri()
    vid = claim_video_id(storage, src.name, uri, video_id)  # the id rule: never another file's id
    register_video(storage, vid, uri)
    instance = local_instance()
    if not instance.has_dynamic_partition("videos", vid):
        instance.add_dynamic_partitions("videos", [vid])
    return settings, storage, vid


def definitions(settings: Settings) -> dg.Definitions:
    """The Dagster definitions a command runs its jobs from; built, then ``settle``d: the graph
    and its imports stay until the process ends."""
    from dubbing_pipeline.definitions import build_definitions  # lazy: every stage, only when running

    defs = build_definitions(settings)
    settle()
    return defs


def media_storage() -> MediaStorage:
    """The media storage of the settings, with ``$DAGSTER_HOME`` set up (the commands on one dub)."""
    ensure_dagster_home()
    return storage_resource(Settings.from_env()).get()


def resolve_video_id(video: str, explicit: str | None) -> str:
    """The id of VIDEO: ``--id``, else the id ``dub`` gave that file (the registry's id rule, read
    only: ``find_video_id``), else VIDEO itself as an id."""
    if explicit:
        return sanitize_id(explicit)
    src = Path(video)
    if not src.is_file():
        return sanitize_id(video)
    return find_video_id(media_storage(), src.name, src.resolve().as_uri())
