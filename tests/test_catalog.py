"""The catalog schedules judged against real Dagster runs (stand-in assets of the real graph).

Every materialization here is written by a real run through the stage kit, never by hand, so the
catalog reads what production writes. Runs are interleaved over several videos and languages:
the first bug this file guards against judged a partition by its parent's latest record of *any*
partition.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dubbing_pipeline import stages
from dubbing_pipeline.definitions import build_definitions, source_half_job
from dubbing_pipeline.orchestration import catalog as cat
from dubbing_pipeline.orchestration import sensors as sen
from dubbing_pipeline.orchestration.registry import register_video
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.storage import make_storage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from standins import StandIns

SOURCE, TARGET = stages.SOURCE_HALF, stages.TARGET_HALF


@pytest.fixture(scope="module")
def graph() -> Any:
    return build_definitions(Settings()).resolve_asset_graph()


def _register(storage: Any, instance: dg.DagsterInstance, vids: str, langs: list[str]) -> None:
    for vid in vids:
        register_video(storage, vid, f"file:///videos/{vid}.mp4", fingerprint=f"fp-{vid}")
    instance.add_dynamic_partitions("videos", list(vids))
    instance.add_dynamic_partitions("languages", langs)


def _states(fresh: cat.Freshness, key: str, pks: list[str]) -> dict[str, str]:
    return {pk: fresh.status(dg.AssetKey(key), pk).state for pk in pks}


def test_freshness_follows_each_partitions_own_key_chain(tmp_path: Path, instance: Any, graph: Any) -> None:
    storage = make_storage(str(tmp_path / "media"))
    _register(storage, instance, "abc", ["es", "de"])
    si = StandIns(graph, storage, tmp_path / "io")
    # interleaved real runs: a's source, b's source, then a's dub (b's source is the latest
    # source record of *any* partition when es|a runs) …
    si.materialise(instance, SOURCE, "a")
    si.materialise(instance, SOURCE, "b")
    si.materialise(instance, TARGET, "es|a")
    si.materialise(instance, SOURCE, "c")
    si.materialise(instance, TARGET, "de|b")
    si.materialise(instance, TARGET, "es|b")
    si.materialise(instance, TARGET, "de|a")
    pairs = ["es|a", "de|a", "es|b", "de|b", "es|c"]
    fresh = cat.Freshness(instance, graph)
    assert _states(fresh, "dubbed_video", pairs) == {
        "es|a": "fresh", "de|a": "fresh", "es|b": "fresh", "de|b": "fresh", "es|c": "missing",
    }  # fmt: skip
    assert _states(fresh, "speakers", ["a", "b", "c"]) == dict.fromkeys("abc", "fresh")

    # b's source half re-made with the same data (every step a cache hit): nothing goes stale
    si.materialise(instance, SOURCE, "b")
    assert _states(cat.Freshness(instance, graph), "dubbed_video", pairs[:4]) == dict.fromkeys(
        pairs[:4], "fresh"
    )

    # a's transcript changed: a's dubs are stale, b's are not; the reason names the chain
    si.salt[("transcript", "a")] = "2"
    si.materialise(instance, SOURCE, "a")
    fresh = cat.Freshness(instance, graph)
    assert _states(fresh, "dubbed_video", pairs[:4]) == {
        "es|a": "stale", "de|a": "stale", "es|b": "fresh", "de|b": "fresh",
    }  # fmt: skip
    assert _states(fresh, "speakers", ["a", "b"]) == {"a": "fresh", "b": "fresh"}  # re-made in that run
    reason = fresh.status(dg.AssetKey("translation"), "es|a").reason
    assert reason == "translation: made from other edits, speakers, transcript data"
    assert fresh.status(dg.AssetKey("dubbed_video"), "es|a").reason.startswith("dubbed_video: upstream")
    si.materialise(instance, TARGET, "es|a")
    assert _states(cat.Freshness(instance, graph), "dubbed_video", ["es|a", "de|a"]) == {
        "es|a": "fresh", "de|a": "stale",
    }  # fmt: skip

    # a new code version of one target stage makes every pair of it stale, and only it and below
    bumped = {"dub_mix": "mix-bumped"}
    newer = StandIns(graph, storage, tmp_path / "io", code_versions=bumped)
    fresh = cat.Freshness(instance, newer.assets_graph())
    reason = fresh.status(dg.AssetKey("dub_mix"), "es|b").reason
    assert reason.startswith("dub_mix: code version mix-2+") and reason.endswith(" → mix-bumped")
    assert fresh.status(dg.AssetKey("dubbed_speech"), "es|b").state == "fresh"
    assert fresh.status(dg.AssetKey("dubbed_video"), "es|b").state == "stale"


def test_a_record_without_lineage_is_stale_not_fresh(tmp_path: Path, instance: Any, graph: Any) -> None:
    """A materialization made before data versions carried the key chain is re-made, not trusted."""
    storage = make_storage(str(tmp_path / "media"))
    _register(storage, instance, "a", ["es"])
    StandIns(graph, storage, tmp_path / "io").materialise(instance, SOURCE, "a")
    instance.report_runless_asset_event(
        dg.AssetMaterialization("transcript", partition="a", tags={"dagster/data_version": "sha-only"})
    )
    fresh = cat.Freshness(instance, graph)
    assert fresh.status(dg.AssetKey("audio_stems"), "a").state == "fresh"
    assert fresh.status(dg.AssetKey("transcript"), "a").reason.endswith(
        "its data version carries no key chain"
    )


# --- the catalog sensor ---------------------------------------------------------------------------------


def _make_video(path: Path, freq: int = 440) -> Path:
    """A placeholder source file: the catalog only reads its size and mtime."""
    path.write_bytes(f"video {freq}".encode() * 10)
    return path


class SensorTicks:
    """Ticks of the catalog sensor as the daemon runs them: each from the cursor the previous left."""

    def __init__(self, defs: dg.Definitions, instance: Any) -> None:
        self.defs, self.instance, self.cursor = defs, instance, None

    def __call__(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """One tick: its source-half requests and its dub requests, by partition."""
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor, definitions=self.defs)
        data = self.defs.resolve_sensor_def(cat.CATALOG_SENSOR).evaluate_tick(context)
        self.cursor = data.cursor
        requests = data.run_requests or []
        by_job = (
            {r.partition_key: r for r in requests if r.job_name == job} for job in ("source_half", "dub")
        )
        return next(by_job), next(by_job)


def test_catalog_schedules_request_exactly_missing_and_stale(
    tmp_path: Path, instance: Any, graph: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = tmp_path / "sources"
    sources.mkdir()
    for name in "abcde":
        _make_video(sources / f"{name}.mp4")
    catalog_file = tmp_path / "catalog.yaml"
    entries = "".join(f"  - source: {(sources / f'{n}.mp4').as_uri()}\n" for n in "abcde")
    refused = (
        f"  - source: {(sources / 'a.mp4').as_uri()}\n    id: b\n"  # an id already used
        f"  - source: {(sources / 'f.mp4').as_uri()}\n    id: f\n    languages: [spanish]\n"  # not a code
        "  - id: nothing\n"  # no source
        f"  - source: {(sources / 'gone.mp4').as_uri()}\n"  # no such file
    )
    catalog_file.write_text("languages: [es]\nvideos:\n" + entries + refused)
    settings = replace(
        Settings(),
        storage_url=str(tmp_path / "media"),
        catalog_url=str(catalog_file),
    )
    defs = build_definitions(settings)
    storage = make_storage(settings.storage_url)
    si = StandIns(graph, storage, tmp_path / "io")
    plans: list[cat.CatalogPlan] = []
    real_plan = cat.plan_catalog

    def counting_plan(*args: Any, **kwargs: Any) -> cat.CatalogPlan:
        plans.append(real_plan(*args, **kwargs))
        return plans[-1]

    monkeypatch.setattr(cat, "plan_catalog", counting_plan)
    tick = SensorTicks(defs, instance)

    # a fresh catalog: every video registered, partitions added, every source half requested;
    # the bad entries are refused one by one, with a classified reason, and the rest goes on
    source, dub = tick()
    assert len(plans) == 1, "one plan per tick, for both jobs"
    assert sorted(source) == list("abcde") and not dub
    assert sorted(plans[0].refused) == sorted(
        ["videos[5] (b)", "videos[6] (f)", "videos[7] (nothing)", "gone"]
    )
    assert plans[0].refused["videos[5] (b)"] == "bad_input: video id 'b' already used by videos[1]"
    assert "not a language code: 'spanish'" in plans[0].refused["videos[6] (f)"]
    assert plans[0].refused["gone"].startswith("bad_input: source not found")
    assert sorted(instance.get_dynamic_partitions("videos")) == list("abcde")
    assert source["a"].tags[sen.LANGUAGES_TAG] == "es"

    for vid in "abce":
        si.materialise(instance, SOURCE, vid)
    for vid in "abe":
        si.materialise(instance, TARGET, f"es|{vid}")
    # b: its source half re-made with other data → es|b stale
    si.salt[("audio_stems", "b")] = "2"
    si.materialise(instance, SOURCE, "b")
    # e: the source object itself changed since its source half was made
    shutil.copy(_make_video(tmp_path / "other.mp4", 660), sources / "e.mp4")
    os.utime(sources / "e.mp4", (time.time() + 10, time.time() + 10))

    # German for the whole catalog: one edit
    catalog_file.write_text(catalog_file.read_text().replace("languages: [es]", "languages: [es, de]"))
    source, dub = tick()
    assert len(plans) == 2
    assert sorted(source) == ["d", "e"]
    assert source["d"].tags[sen.LANGUAGES_TAG] == "es,de"
    assert source["e"].tags["dubbing/reason"].startswith("source changed")
    assert sorted(dub) == sorted(["es|b", "es|c", "de|a", "de|b", "de|c"])
    assert "made from other" in dub["es|b"].tags["dubbing/reason"]
    assert "never materialised" in dub["es|c"].tags["dubbing/reason"]
    assert instance.has_dynamic_partition("languages", "de")
    # stable run keys: the same state asks with the same keys
    source2, dub2 = tick()
    assert {k: r.run_key for k, r in dub.items()} == {k: r.run_key for k, r in dub2.items()}
    assert {k: r.run_key for k, r in source.items()} == {k: r.run_key for k, r in source2.items()}

    # after the requested work is done (real runs, the registry says which source version), nothing
    for vid in "de":
        si.materialise(instance, SOURCE, vid)
    for pk in ["es|b", "es|c", "de|a", "de|b", "de|c", "es|d", "de|d", "es|e", "de|e"]:
        si.materialise(instance, TARGET, pk)
    source, dub = tick()
    assert not source and not dub
    assert all(s.state == "fresh" for s in plans[-1].statuses.values()) and len(plans[-1].statuses) == 15


def test_catalog_skips_partitions_with_a_run_in_flight(tmp_path: Path, instance: Any, graph: Any) -> None:
    source_file = _make_video(tmp_path / "a.mp4")
    storage = make_storage(str(tmp_path / "media"))
    catalog = cat.Catalog([cat.CatalogVideo("a", source_file.as_uri(), ("es",))])
    fps = lambda uris: {u: cat._local_fingerprint(u[len("file://") :]) for u in uris}  # noqa: E731
    plan = cat.plan_catalog(instance, graph, catalog, storage, fps)
    assert [r.partition_key for r in plan.source_requests] == ["a"]
    instance.create_run_for_job(
        build_definitions(Settings()).resolve_job_def(source_half_job.name),
        tags={"dagster/partition": "a"},
        status=dg.DagsterRunStatus.STARTED,
    )
    plan = cat.plan_catalog(instance, graph, catalog, storage, fps)
    assert not plan.source_requests and plan.skipped == {"a": "source_half run in flight"}


def test_parse_catalog_refuses_bad_entries_and_bad_defaults() -> None:
    text = "languages: [es]\nvideos:\n  - s3://b/x.mp4\n"
    text += "  - {source: s3://b/y.mp4, languages: 'es,xx_YY'}\n  - 42\n"
    catalog = cat.parse_catalog(text)
    assert [(v.video_id, v.languages) for v in catalog.videos] == [("x", ("es",)), ("y", ("es", "xx-yy"))]
    assert list(catalog.refused) == ["videos[2]"]
    with pytest.raises(cat.ConfigurationError, match="catalog 'languages': not a language code: 'english'"):
        cat.parse_catalog("languages: [english]\nvideos: []\n")


def test_a_pair_the_chain_sensor_is_about_to_dub_is_not_asked_twice(
    tmp_path: Path, instance: Any, graph: Any
) -> None:
    """A schedule and a sensor share no run keys: while ``dub_after_source_half`` has yet to launch
    the dubs of a source half that just succeeded, the catalog leaves those pairs to it."""
    source_file = _make_video(tmp_path / "a.mp4")
    storage = make_storage(str(tmp_path / "media"))
    catalog = cat.Catalog([cat.CatalogVideo("a", source_file.as_uri(), ("es", "de"))])
    fps = lambda uris: {u: cat._local_fingerprint(u[len("file://") :]) for u in uris}  # noqa: E731
    cat.plan_catalog(instance, graph, catalog, storage, fps)  # registers a
    si = StandIns(graph, storage, tmp_path / "io")
    si.materialise(instance, SOURCE, "a")
    jobs = build_definitions(Settings())
    # an older source run of the same video, dubbed long ago by the chain: the newest run is the one to follow
    old = instance.create_run_for_job(
        jobs.resolve_job_def("source_half"),
        tags={"dagster/partition": "a", sen.LANGUAGES_TAG: "es,de"},
        status=dg.DagsterRunStatus.SUCCESS,
    )
    for pk in ("es|a", "de|a"):
        instance.create_run_for_job(
            jobs.resolve_job_def("dub"),
            tags={"dagster/partition": pk, sen.SOURCE_RUN_TAG: old.run_id},
            status=dg.DagsterRunStatus.SUCCESS,
        )
    source_run = instance.create_run_for_job(
        jobs.resolve_job_def("source_half"),
        tags={"dagster/partition": "a", sen.LANGUAGES_TAG: "es,de"},
        status=dg.DagsterRunStatus.SUCCESS,
    )
    running = instance.create_run_for_job(
        jobs.resolve_job_def("source_half"),
        tags={"dagster/partition": "a"},
        status=dg.DagsterRunStatus.STARTED,
    )
    plan = cat.plan_catalog(instance, graph, catalog, storage, fps)  # source half written, run not ended
    assert not plan.dub_requests and plan.skipped["es|a"] == "source_half run in flight"
    instance.delete_run(running.run_id)
    plan = cat.plan_catalog(instance, graph, catalog, storage, fps)
    assert not plan.dub_requests
    assert set(plan.skipped) == {"es|a", "de|a"} and "chain sensor" in plan.skipped["es|a"]
    # the chain sensor launched es|a (and it finished without materialising): the catalog asks for es|a again,
    # de|a is still the chain's
    instance.create_run_for_job(
        jobs.resolve_job_def("dub"),
        tags={"dagster/partition": "es|a", sen.SOURCE_RUN_TAG: source_run.run_id},
        status=dg.DagsterRunStatus.FAILURE,
    )
    plan = cat.plan_catalog(instance, graph, catalog, storage, fps)
    assert [r.partition_key for r in plan.dub_requests] == ["es|a"] and list(plan.skipped) == ["de|a"]


def test_only_partitions_whose_run_changed_since_the_first_read_are_read_again(instance: Any) -> None:
    """The race the second read of data versions closes (a run ends between the first read and the
    runs' read) is read again only where a run's status changed since the first read."""
    jobs = build_definitions(Settings())
    instance.create_run_for_job(
        jobs.resolve_job_def("dub"), tags={"dagster/partition": "es|a"}, status=dg.DagsterRunStatus.SUCCESS
    )
    instance.create_run_for_job(
        jobs.resolve_job_def("source_half"),
        tags={"dagster/partition": "b"},
        status=dg.DagsterRunStatus.FAILURE,
    )
    now = time.time()
    wanted = {"es|a", "de|a", "b", "c"}
    assert cat._ended_since(instance, ["source_half", "dub"], wanted, now - 60) == {"es|a", "b"}
    assert cat._ended_since(instance, ["source_half", "dub"], wanted, now + 60) == set()
    assert cat._ended_since(instance, ["dub"], {"de|a"}, now - 60) == set()


def test_the_index_is_sharded_and_a_change_rewrites_only_its_shard(tmp_path: Path) -> None:
    storage = make_storage(str(tmp_path / "media"))
    old = {f"v{i}": [f"s3://b/v{i}.mp4", "fp"] for i in range(600)}
    storage.put_json(cat.LEGACY_INDEX_KEY, old)  # an index as an earlier version stored it
    index = cat.read_index(storage)
    assert index == old
    index["v7"] = ["s3://b/v7-new.mp4", "fp2"]
    cat.write_index(storage, index, ["v7"])  # the legacy object is replaced by every shard, once
    assert not storage.exists(cat.LEGACY_INDEX_KEY)
    shards = storage.keys_in(cat.INDEX_PREFIX)
    assert len(shards) == len({cat.index_shard(v) for v in old}) and cat.read_index(storage) == index
    before = {k: storage.get_bytes(k) for k in shards}
    index["v9"] = ["s3://b/v9-new.mp4", "fp3"]
    cat.write_index(storage, index, ["v9"])
    after = {k: storage.get_bytes(k) for k in storage.keys_in(cat.INDEX_PREFIX)}
    assert [k for k in after if after[k] != before[k]] == [f"{cat.INDEX_PREFIX}/{cat.index_shard('v9')}.json"]
    assert cat.read_index(storage) == index


def test_a_json_catalog_is_read_as_json_and_means_what_its_yaml_means() -> None:
    as_json = '{"languages": ["es"], "videos": [{"id": "x", "source": "s3://b/x.mp4", "languages": ["de"]}]}'
    as_yaml = "languages: [es]\nvideos:\n  - {id: x, source: 's3://b/x.mp4', languages: [de]}\n"
    assert cat.parse_catalog(as_json).videos == cat.parse_catalog(as_yaml).videos
    assert [v.languages for v in cat.parse_catalog(as_json).videos] == [("de",)]
    flow = "{languages: [es], videos: [{id: y, source: 's3://b/y.mp4'}]}"  # YAML, not JSON: still read
    assert [v.video_id for v in cat.parse_catalog(flow).videos] == ["y"]
