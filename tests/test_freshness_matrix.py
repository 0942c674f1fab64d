"""When is a dub redone? The real demo (embedded default), one change at a time.

For each change of the table the next ``dub`` either is up to date (no stage runs) or re-runs
exactly the stages the change reaches: the first affected stage is computed again, nothing before
it is (the source half's run is skipped when the change is in the target half), and the audio of
the finished dub equals the first dub's (a fresh home's with the same settings) where the change
does not touch what is heard. After every change the dub after it is up to date again, and the
catalog (``tests/freshness_probe.py``: ``Freshness`` over the definitions' graph, in the same
environment) gives the same answer as the CLI wherever it can see the change (what it cannot see,
and why, is the table "When is a dub redone?" in docs/architecture.md).

The changes accumulate: each row starts from the state the row before left.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pytest
from test_dub import ROOT, decode

from dubbing_pipeline.demo import DEMO_VIDEO
from dubbing_pipeline.stages import SOURCE_HALF, STAGES, TARGET_HALF, before

UNCHANGED = "unchanged since the last dub, not run:"


def cli(home: Path, *args: str, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own, with the environment of the row (its storage root too)."""
    return subprocess.run(
        [sys.executable, "-m", "dubbing_pipeline.cli", *args], env=environment(home, extra),
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip


def environment(home: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DUBBING_STORAGE_URL"}
    return {**env, "DAGSTER_HOME": str(home), **extra}


@dataclass
class World:
    tmp: Path
    home: Path
    out: Path
    src: Path
    env: dict[str, str]
    baseline: np.ndarray | None = None
    log: list[str] = field(default_factory=list)

    @property
    def media(self) -> Path:
        return Path(self.env.get("DUBBING_STORAGE_URL") or self.home / "media")

    def dub(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return cli(
            self.home, "dub", str(self.src), "--to", "es", "--out", str(self.out), *extra, extra=self.env
        )

    def audio(self) -> np.ndarray:
        return decode(self.out / "demo" / "es" / "demo.es.mp4", 16000, 1)

    def done_outputs(self) -> list[str]:
        return sorted(json.loads((self.media / "done" / "demo" / "es.json").read_text())["outputs"])


@dataclass(frozen=True)
class Row:
    change: str
    apply: Callable[[World], None]
    first: (
        str | None
    )  # None: up to date; "": the dub runs, every step a cache hit; else the first stage redone
    why: str
    same_audio: bool = True
    catalog_sees: bool = True
    stale_from: str | None = None  # the first stage the catalog marks stale, when not ``first``


def materialised(home: Path, since: float) -> dict[str, bool]:
    """Each stage materialised by the runs created after ``since``, and whether it came from its cache."""
    found: dict[str, bool] = {}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_run_records(dg.RunsFilter(created_after=_utc(since)))
        for run in runs:
            records = instance.get_records_for_run(
                run.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
            ).records
            for record in records:
                mat = record.event_log_entry.asset_materialization
                assert mat is not None
                name = mat.asset_key.to_user_string()
                cached = mat.metadata.get("cached")
                found[name] = bool(cached.value) if cached is not None else False
    return found


def _utc(seconds: float) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def catalog_view(home: Path, env: dict[str, str]) -> dict[str, str]:
    """Each stage of the demo's Spanish dub as the catalog judges it, in the row's environment."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "freshness_probe.py"), "demo", "es"],
        env=environment(home, env), capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    view: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return view


# --- the changes ------------------------------------------------------------------------------------


def _write_glossary(world: World, term: str) -> None:
    (world.tmp / "glossary.json").write_text(json.dumps({"es": {term: term}}), encoding="utf-8")


def _replace_in_place(path: Path, offset: int, data: bytes) -> None:
    """Overwrite bytes in place (as ``cp`` over an existing file does), keeping size and mtime."""
    st = path.stat()
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def _on_path(world: World, name: str, script: str) -> None:
    bin_dir = world.tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / name).write_text(script, encoding="utf-8")
    (bin_dir / name).chmod(0o755)
    world.env["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def _python_path(world: World) -> Path:
    site = world.tmp / "site"
    site.mkdir(exist_ok=True)
    world.env["PYTHONPATH"] = str(site)
    return site


def library_version(world: World) -> None:
    dist = _python_path(world) / "c2pa_python-99.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: c2pa-python\nVersion: 99.0\n", encoding="utf-8"
    )


def code_version(world: World) -> None:
    (_python_path(world) / "sitecustomize.py").write_text(
        "from dataclasses import replace\n"
        "import dubbing_pipeline.freshness as f\n"
        "f.RECIPES = {**f.RECIPES, 'dub_mix': replace(f.RECIPES['dub_mix'], code=('mix-next',))}\n",
        encoding="utf-8",
    )


def truncate_output(world: World) -> None:
    video = next(k for k in world.done_outputs() if k.endswith(".mp4"))
    path = world.media / video
    path.write_bytes(path.read_bytes()[:-4096])


def delete_output(world: World) -> None:
    (world.media / next(k for k in world.done_outputs() if k.endswith("review.html"))).unlink()


def wipe_materialisation(world: World) -> None:
    with dg.DagsterInstance.from_config(str(world.home)) as instance:
        instance.wipe_assets([dg.AssetKey("dub_mix")])


def feedback(world: World) -> None:
    proc = cli(
        world.home, "feedback", "demo", "--to", "es", "--line", "s0001", "--note", "too fast", extra=world.env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def edit(world: World) -> None:
    proc = cli(
        world.home,
        "edit",
        "demo",
        "--to",
        "es",
        "--line",
        "s0001",
        "--text",
        "Hola, soy yo.",
        extra=world.env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


ROWS = (
    Row("nothing", lambda w: None, None, "every stage is fresh and every output stored"),
    Row("a setting no stage reads (DUBBING_CATALOG_INTERVAL_S)",
        lambda w: w.env.update(DUBBING_CATALOG_INTERVAL_S="300"), None, "no stage's recipe names the row"),
    Row("a settings row (DUBBING_LABEL_SECONDS)", lambda w: w.env.update(DUBBING_LABEL_SECONDS="3"),
        "dubbed_video", "dubbed_video's recipe reads it (the label is off: nothing heard changes)"),
    Row("a library version (c2pa-python's metadata says 99.0)", library_version, "dubbed_video",
        "dubbed_video's recipe names the distribution"),
    Row("a tool version (another apertium first on PATH)",
        lambda w: _on_path(w, "apertium", '#!/bin/sh\n# another build\nexec /usr/bin/apertium "$@"\n'),
        "translation", "translation's recipe names the tool (by content: apertium reports no version)"),
    Row("a file inside a nested model folder, replaced in place (same size and mtime)",
        lambda w: _replace_in_place(w.tmp / "whisper" / "extra" / "notes.bin", 0, b"changed!"), "transcript",
        "the model directory is read by content, every file, recursively"),
    Row("the package's code (dub_mix's code version bumped)", code_version, "dub_mix",
        "the code version is part of the recipe"),
    Row("the glossary file (a term the demo does not use)", lambda w: _write_glossary(w, "Quuxle"),
        "translation", "the file the row names is read by content"),
    Row("the signing credentials (a new local signer)",
        lambda w: shutil.rmtree(w.tmp / "models" / "c2pa" / "local"), "dubbed_video",
        "the signer's files are part of dubbed_video's recipe"),
    Row("the source replaced at the same path (same size and mtime)",
        lambda w: _replace_in_place(w.src, 12, b"\x00\x00\x02\x01"), "source_video",
        "the source is known by content (its stat stamp includes ctime and inode)", catalog_sees=False),
    Row("a stored output truncated (the dubbed MP4)", truncate_output, "dubbed_video",
        "every output is recorded with its size; the mux cache checks its artifact", catalog_sees=False),
    Row("a stored output deleted (review.html)", delete_output, "",
        "the dub runs, every step hits its cache, the page is written again", catalog_sees=False),
    Row("a materialisation wiped from the instance (dub_mix)", wipe_materialisation, "",
        "dub_mix is missing: the dub runs, every step hits its cache"),
    Row("a feedback note", feedback, "", "feedback is an observed source of dubbed_video (its review page)"),
    Row("an edit (one line's text)", edit, "dubbed_speech",
        "edits are an observed source of translation: it is made again from its cached machine translation, "
        "and the edited line is spoken", same_audio=False, stale_from="translation"),
    Row("a switch of storage root (DUBBING_STORAGE_URL)",
        lambda w: w.env.update(DUBBING_STORAGE_URL=str(w.tmp / "media2")), "source_video",
        "nothing is stored there: everything is made again, as in a fresh home (the edit stayed behind)",
        catalog_sees=False),
)  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    tmp = tmp_path_factory.mktemp("fresh")
    home, out = tmp / "home", tmp / "out"
    src = tmp / "src" / "demo.mp4"
    src.parent.mkdir()
    shutil.copyfile(DEMO_VIDEO, src)
    whisper = tmp / "whisper"
    (whisper / "extra").mkdir(parents=True)
    from dubbing_pipeline.settings import Settings
    from dubbing_pipeline.transcript.model_dir import packaged_whisper_base_dir

    packaged = packaged_whisper_base_dir(Settings.from_env().model_cache)
    for part in packaged.iterdir():
        (whisper / part.name).symlink_to(part)
    (whisper / "extra" / "notes.bin").write_bytes(b"original" * 64)
    world = World(tmp, home, out, src, {"DUBBING_MODEL_CACHE": str(tmp / "models"),
                                        "DUBBING_WHISPER_MODEL_DIR": str(whisper),
                                        "DUBBING_GLOSSARY": str(tmp / "glossary.json")})  # fmt: skip
    _write_glossary(world, "Zorblax")
    first = world.dub()
    assert first.returncode == 0, first.stderr[-3000:]
    world.baseline = world.audio()
    return world


def test_when_is_a_dub_redone(world: World) -> None:
    for row in ROWS:
        row.apply(world)
        view = catalog_view(world.home, world.env)
        since = time.time()
        proc = world.dub()
        assert proc.returncode == 0, (row.change, proc.stderr[-3000:])
        made = materialised(world.home, since - 1)
        redone = {stage for stage, cached in made.items() if stage in STAGES and not cached}
        world.log.append(f"{row.change}: {'up to date' if not made else sorted(redone) or 'cache hits'}")
        if row.first is None:
            assert UNCHANGED in proc.stderr and "es|demo" in proc.stderr, row.change
            assert not made, (row.change, made)
        else:
            assert made, (row.change, proc.stderr[-2000:])
            assert not redone & set(before(row.first) if row.first else ()), (row.change, redone)
            if row.first:
                assert row.first in redone, (row.change, redone)
            else:
                assert not redone, (row.change, redone)
            if row.first in TARGET_HALF or not row.first:
                assert not set(SOURCE_HALF) & set(made), (row.change, made)  # its run was skipped
        if row.catalog_sees:  # the catalog's answer is the CLI's
            stale = {stage for stage, state in view.items() if state != "fresh"}
            assert bool(stale) == (row.first is not None), (row.change, view)
            if row.first:
                first_stale = row.stale_from or row.first
                assert first_stale in stale and not stale & set(before(first_stale)), (row.change, view)
        if row.same_audio:
            assert world.baseline is not None and np.array_equal(world.audio(), world.baseline), row.change
        again = world.dub()  # and now it is done: one answer, whoever asks
        assert again.returncode == 0 and UNCHANGED in again.stderr, (row.change, again.stderr[-2000:])
        assert set(catalog_view(world.home, world.env).values()) == {"fresh"} or not row.catalog_sees, (
            row.change
        )
    print("\n".join(world.log))


def test_two_files_of_one_name_are_two_dubs(world: World) -> None:
    """``dub a/intro.mp4 b/intro.mp4`` writes two dubs with two ids."""
    for folder in ("a", "b"):
        (world.tmp / folder).mkdir()
        shutil.copyfile(DEMO_VIDEO, world.tmp / folder / "intro.mp4")
    out = world.tmp / "intros"
    proc = cli(world.home, "dub", str(world.tmp / "a" / "intro.mp4"), str(world.tmp / "b" / "intro.mp4"),
               "--to", "es", "--out", str(out), extra=world.env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    ids = sorted(p.name for p in out.iterdir())
    assert len(ids) == 2 and ids[0] == "intro" and ids[1].startswith("intro-"), ids
    for vid in ids:
        assert (out / vid / "es" / f"{vid}.es.mp4").is_file()
