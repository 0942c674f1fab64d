"""A dub that fails a blocking check is not done, for anyone who asks; accepting it is explicit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dubbing_pipeline import cli
from dubbing_pipeline.cli import dub
from dubbing_pipeline.dubbed_video.asset import accepted_checks, blocking_checks
from dubbing_pipeline.freshness import stage_codes
from dubbing_pipeline.orchestration.fresh import BLOCKED, FRESH, STALE, Freshness, StageGraph
from dubbing_pipeline.orchestration.kit import DATA_VERSION_TAG, Version, lineage_digest
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.stages import ACCEPT_TAG


def quality(**failed: bool) -> dict[str, Any]:
    names = ("intelligibility", "timing", "failed_lines", "watermark")
    return {"checks": {name: {"passed": not failed.get(name, False)} for name in names}}


def test_only_error_checks_block_and_an_accepted_one_is_recorded() -> None:
    q = quality(timing=True)  # a warning: never blocks
    assert blocking_checks(q, []) == [] and q["accepted"] == [] and q["blocking"] == []
    q = quality(watermark=True, failed_lines=True)
    assert blocking_checks(q, accepted_checks({ACCEPT_TAG: "watermark,timing,bogus"})) == ["failed_lines"]
    assert q["accepted"] == ["watermark"] and q["blocking"] == ["failed_lines"]
    assert accepted_checks({}) == []


def test_a_blocked_dub_is_never_fresh(tmp_path: Path) -> None:
    codes = stage_codes(Settings(model_cache=str(tmp_path / "models")))
    graph = StageGraph(codes)
    with dg.DagsterInstance.ephemeral() as instance:

        def materialise(code: str) -> None:
            version = Version("k1", lineage_digest({}), code)
            instance.report_runless_asset_event(
                dg.AssetMaterialization("lip_sync", partition="es|v", tags={DATA_VERSION_TAG: str(version)})
            )

        materialise(codes["lip_sync"])
        assert Freshness(instance, graph).version(dg.AssetKey("lip_sync"), "es|v") is not None
        materialise(codes["lip_sync"] + BLOCKED)
        status = Freshness(instance, graph, ["es|v"]).status(dg.AssetKey("lip_sync"), "es|v")
        assert status.state == STALE and "blocking quality check" in status.reason
        assert status.state != FRESH


def test_the_cli_exits_13_names_the_check_and_records_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The code around a finished run (the run itself is a stand-in here): a blocked record is
    copied out for inspection, the exit code is 13 with the check's name, no done record."""
    from dubbing_pipeline.orchestration import runner, up_to_date

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DUBBING_MODEL_CACHE", str(tmp_path / "models"))
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not decoded here")
    media = tmp_path / "home" / "media"
    files = {name: tmp_path / name for name in ("v.mp4", "a.srt", "a.vtt", "r.json", "p.html")}
    for path in files.values():
        path.write_text("x")
    record = {
        "outputs": {"video": files["v.mp4"].as_uri(), "srt": files["a.srt"].as_uri(),
                    "vtt": files["a.vtt"].as_uri()},
        "report_uri": files["r.json"].as_uri(), "review_uri": files["p.html"].as_uri(),
        "video_name": "clip.es.mp4", "blocked": ["watermark"],
    }  # fmt: skip
    tags_seen: list[dict[str, str] | None] = []

    def run_job(*args: Any, tags: dict[str, str] | None = None, **kwargs: Any) -> Any:
        tags_seen.append(tags)
        return runner.RunOutcome(True, "r", {})

    monkeypatch.setattr(dub, "run_job", run_job)
    monkeypatch.setattr(up_to_date.Work, "is_done", lambda self, language: language is None)
    monkeypatch.setattr(dub, "load_asset_record", lambda storage, asset, key: {
        "source_video": {"info": {"streams": ["video"]}}}.get(asset, record))  # fmt: skip
    monkeypatch.setattr(dub, "require_video", lambda info: None)
    monkeypatch.setattr(dub, "unspoken", lambda settings, lang: None)
    monkeypatch.setattr(dub, "copy_outputs", lambda storage, rec, dest, lang: dest / "clip.es.mp4")
    monkeypatch.setattr(up_to_date, "report_up_to_date", lambda *a: True)
    code = cli.main(
        ["dub", str(video), "--to", "es", "--out", str(tmp_path / "out"), "--accept", "failed_lines"]
    )
    err = capsys.readouterr().err
    assert code == 13 and "watermark" in err and "--accept watermark" in err, err
    assert tags_seen and tags_seen[-1] is not None and tags_seen[-1][ACCEPT_TAG] == "failed_lines"
    assert not (media / "done" / "clip" / "es.json").exists()
