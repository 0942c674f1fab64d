"""Production orchestration against real components: moto's S3 server, a real PostgreSQL server,
dagster-k8s' own job construction and the Kubernetes OpenAPI schemas (``kubernetes-validate``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from dubbing_pipeline.audio_stems.asset import audio_stems
from dubbing_pipeline.common.ids import is_safe_key_part
from dubbing_pipeline.definitions import resources_for, source_half_job
from dubbing_pipeline.orchestration import sensors as sen
from dubbing_pipeline.orchestration.placement import gpu_op_tags, gpu_pool
from dubbing_pipeline.orchestration.registry import registry_key
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.source_video.asset import source_video
from dubbing_pipeline.storage import make_storage
from dubbing_pipeline.tooling.devservers import find_bin_dir, postgres_server

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
K8S_VERSION = "1.30.0"
GPU_OPS = {"audio_stems", "transcribe_chunk", "diarize_chunk", "synthesize_batch"}
TIMINGS: dict[str, float] = {}


def make_video(path: Path, freq: int = 440, seconds: float = 1.0) -> Path:
    """A tiny real video: ffmpeg's test pattern and a sine tone."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size=64x48:rate=10:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency={freq}:duration={seconds}", "-c:v", "libx264",
         "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def videos_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    d = tmp_path_factory.mktemp("videos")
    make_video(d / "v1.mp4", 440)
    make_video(d / "v2.mp4", 660)
    make_video(d / "v3.mp4", 880)
    return d


def apply_partition_adds(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    """What the sensor daemon does with a tick's dynamic partition requests."""
    for req in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))


# --- 1. the S3 drop sensor ---------------------------------------------------------------------


def _tick(sensor: Any, instance: dg.DagsterInstance, cursor: str | None, defs: dg.Definitions) -> Any:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    start = time.perf_counter()
    result = sensor(context)
    TIMINGS[f"s3_tick_{sum(k.startswith('s3_tick') for k in TIMINGS) + 1}"] = time.perf_counter() - start
    return result


def _wait_for_fresh_second() -> None:
    while time.time() % 1.0 > 0.05:
        time.sleep(0.01)


def test_s3_drops_one_run_per_object_version(moto_s3: str, videos_dir: Path, instance: Any) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    s3.create_bucket(Bucket="prod-drops")
    s3.create_bucket(Bucket="prod-media")
    settings = replace(
        Settings(),
        storage_url="s3://prod-media/pipeline",
        s3_endpoint_url=moto_s3,
        drop_bucket="prod-drops",
        drop_prefix="incoming/",
        target_languages="es",
    )
    from dubbing_pipeline.definitions import build_definitions

    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("s3_drop_sensor")
    storage = make_storage(settings.storage_url, s3_endpoint_url=moto_s3)
    body1 = (videos_dir / "v1.mp4").read_bytes()

    # nothing yet
    assert not _tick(sensor, instance, None, defs).run_requests

    # two objects in the same second, with a tick between them; one with its own languages
    for _attempt in range(5):
        _wait_for_fresh_second()
        s3.put_object(Bucket="prod-drops", Key="incoming/talk.mp4", Body=body1)
        first = _tick(sensor, instance, None, defs)
        s3.put_object(
            Bucket="prod-drops", Key="incoming/Show/Épisode 2.MOV", Body=(videos_dir / "v2.mp4").read_bytes(),
            Metadata={"languages": "es,DE"},
        )  # fmt: skip
        heads = [
            s3.head_object(Bucket="prod-drops", Key=k)
            for k in ("incoming/talk.mp4", "incoming/Show/Épisode 2.MOV")
        ]
        if int(heads[0]["LastModified"].timestamp()) == int(heads[1]["LastModified"].timestamp()):
            break
        s3.delete_object(Bucket="prod-drops", Key="incoming/Show/Épisode 2.MOV")  # retry within one second
    else:
        pytest.fail("could not drop two objects within one second")
    s3.put_object(Bucket="prod-drops", Key="incoming/notes.txt", Body=b"not a video")
    assert [r.partition_key for r in first.run_requests] == ["talk"]
    apply_partition_adds(instance, first)

    second = _tick(sensor, instance, first.cursor, defs)
    assert [r.partition_key for r in second.run_requests] == ["show-episode-2"], "same-second drop missed"
    assert second.run_requests[0].tags[sen.LANGUAGES_TAG] == "es,de"
    # one batched request per partitions definition, in the same tick
    adds = {r.partitions_def_name: list(r.partition_keys) for r in second.dynamic_partitions_requests}
    assert adds == {"videos": ["show-episode-2"], "languages": ["de"]}
    apply_partition_adds(instance, second)

    # a path-traversal key maps to a safe id; three new objects → one batch
    for key in ("incoming/../../etc/passwd.mp4", "incoming/a/b.webm", "incoming/c.m4v"):
        s3.put_object(Bucket="prod-drops", Key=key, Body=body1)
    third = _tick(sensor, instance, second.cursor, defs)
    ids = sorted(r.partition_key for r in third.run_requests)
    assert ids == ["a-b", "c", "etc-passwd"]
    assert all(is_safe_key_part(i) for i in ids)
    assert [sorted(r.partition_keys) for r in third.dynamic_partitions_requests] == [ids]
    apply_partition_adds(instance, third)

    # nothing new → nothing requested
    quiet = _tick(sensor, instance, third.cursor, defs)
    assert not quiet.run_requests and quiet.skip_reason is not None

    # re-upload with new content: exactly one new request, same partition, new run_key
    s3.put_object(Bucket="prod-drops", Key="incoming/talk.mp4", Body=(videos_dir / "v3.mp4").read_bytes())
    fourth = _tick(sensor, instance, third.cursor, defs)
    assert [r.partition_key for r in fourth.run_requests] == ["talk"]
    request = fourth.run_requests[0]
    assert request.run_key != first.run_requests[0].run_key
    assert not fourth.dynamic_partitions_requests  # the partition exists already
    assert storage.get_json(registry_key("talk"))["source_uri"] == "s3://prod-drops/incoming/talk.mp4"

    # launch it as the daemon would: the run materialises source_video through S3 media storage
    start = time.perf_counter()
    result = dg.materialize(
        [source_video],
        partition_key="talk",
        instance=instance,
        resources=resources_for(settings),
        tags={**request.tags, "dagster/run_key": request.run_key},
    )
    TIMINGS["source_video_run_s3"] = time.perf_counter() - start
    assert result.success
    record = result.output_for_node("source_video")
    assert record["media_uri"].startswith("s3://prod-media/pipeline/")
    assert record["duration"] == pytest.approx(1.0, abs=0.15)
    assert storage.exists(storage.key_of(record["audio_uri"]))

    # the same bytes uploaded again: a duplicate never runs
    s3.put_object(Bucket="prod-drops", Key="incoming/talk.mp4", Body=(videos_dir / "v3.mp4").read_bytes())
    fifth = _tick(sensor, instance, fourth.cursor, defs)
    assert not getattr(fifth, "run_requests", None)

    # exactly one request per object version over the whole session
    all_keys = [r.run_key for t in (first, second, third, fourth) for r in t.run_requests]
    assert len(all_keys) == len(set(all_keys)) == 6

    # the source half succeeded → the chain sensor asks for one dub run per language
    run = instance.get_run_by_id(result.run_id)
    success = instance.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS).records
    chain = defs.resolve_sensor_def("dub_after_source_half")
    context = dg.build_run_status_sensor_context(
        sensor_name=chain.name,
        dagster_event=success[0].event_log_entry.dagster_event,
        dagster_instance=instance,
        dagster_run=run,
    )
    dubs = list(chain(context))  # type: ignore[operator]
    assert [r.partition_key for r in dubs] == ["es|talk"]
    # another trigger (the catalog) asked for es|talk since the run ended: the chain does not ask again
    instance.create_run_for_job(
        defs.resolve_job_def("dub"), tags={"dagster/partition": "es|talk"}, status=dg.DagsterRunStatus.STARTED
    )
    again = list(chain(context))  # type: ignore[operator]
    assert len(again) == 1 and isinstance(again[0], dg.SkipReason), again
    print("\ntimings:", json.dumps({k: round(v, 3) for k, v in TIMINGS.items()}))


def _queue_depth(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def _record_run(instance: dg.DagsterInstance, run_key: str) -> None:
    """What the daemon does with a run request: a run with its run key (a tiny real run)."""

    @dg.asset
    def recorded() -> int:
        return 1

    assert dg.materialize([recorded], instance=instance, tags={sen.RUN_KEY_TAG: run_key}).success


def test_a_large_bucket_is_listed_a_slice_a_tick(moto_s3: str, instance: Any) -> None:
    """Listing mode with a budget that allows one page a tick: the listing goes on after the last
    key listed, a lap spans ticks, and each new object is asked for once, in the tick that lists it."""
    from concurrent.futures import ThreadPoolExecutor

    import boto3

    from dubbing_pipeline.definitions import build_definitions

    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    s3.create_bucket(Bucket="big-drops")
    s3.create_bucket(Bucket="big-media")
    put = lambda key: s3.put_object(Bucket="big-drops", Key=key, Body=key.encode())  # noqa: E731
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, [f"in/a{i:04d}.mp4" for i in range(1500)]))
    handled, _ = sen.select_new(
        sen.list_s3_drops(s3, "big-drops", "in/", (".mp4",)), sen.DropCursor(), 3600, 2000
    )
    assert len(handled) == 1500
    cursor = sen.select_new(handled, sen.DropCursor(), 3600, 2000)[1]
    settings = replace(
        Settings(), storage_url="s3://big-media/p", s3_endpoint_url=moto_s3, drop_bucket="big-drops",
        drop_prefix="in/", target_languages="es", drop_list_budget_s=0.0,
    )  # fmt: skip
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("s3_drop_sensor")
    put("in/a0005x.mp4")  # in the first page
    put("in/z-late.mp4")  # in the second
    raw, asked = cursor.dump(), []
    for _ in range(3):
        result = _tick(sensor, instance, raw, defs)
        asked.append(sorted(r.partition_key for r in result.run_requests or []))
        apply_partition_adds(instance, result)
        raw = result.cursor
        assert sen.DropCursor.parse(raw).after in ("", "in/a0998.mp4")
    assert asked == [["a0005x"], ["z-late"], []]  # the third tick starts a new lap: nothing new


def test_s3_event_queue_mode(moto_s3: str, videos_dir: Path, instance: Any) -> None:
    """S3 event notifications → SQS (moto) → the sensor: a tick costs O(new objects); a message is
    deleted only once its run is recorded; a redelivered message asks again harmlessly."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=moto_s3, region_name="us-east-1")
    queue = sqs.create_queue(QueueName="drops")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket="q-drops")
    s3.create_bucket(Bucket="q-media")
    s3.put_bucket_notification_configuration(
        Bucket="q-drops",
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    settings = replace(
        Settings(), storage_url="s3://q-media/p", s3_endpoint_url=moto_s3, drop_bucket="q-drops",
        drop_prefix="in/", drop_queue_url=queue, target_languages="es",
    )  # fmt: skip
    from dubbing_pipeline.definitions import build_definitions

    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("s3_drop_sensor")
    assert "queue mode" in (sensor.description or "")
    # moto's test event first, then a video with its languages, a typo'd one, a text file, a
    # video outside the prefix
    body = (videos_dir / "v1.mp4").read_bytes()
    s3.put_object(Bucket="q-drops", Key="in/My Talk.mp4", Body=body, Metadata={"languages": "es,de"})
    s3.put_object(Bucket="q-drops", Key="in/typo.mp4", Body=body, Metadata={"languages": "spanish"})
    s3.put_object(Bucket="q-drops", Key="in/notes.txt", Body=b"x")
    s3.put_object(Bucket="q-drops", Key="elsewhere/x.mp4", Body=body)
    assert _queue_depth(sqs, queue) == 5

    first = _tick(sensor, instance, None, defs)
    assert [(r.partition_key, r.tags[sen.LANGUAGES_TAG]) for r in first.run_requests] == [
        ("my-talk", "es,de")
    ]
    assert [e.partition for e in first.asset_events] == ["typo"]
    # everything that needed no run is gone; the video's message waits until its run is recorded
    assert _queue_depth(sqs, queue) == 1
    apply_partition_adds(instance, first)
    second = _tick(sensor, instance, first.cursor, defs)
    assert not second.run_requests and _queue_depth(sqs, queue) == 1, "deleted before the run was recorded"

    # the tick's requests were lost and the message came back: it asks again, with the same run key
    [(receipt, _)] = sen.QueueCursor.parse(second.cursor).pending
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=receipt, VisibilityTimeout=0)
    third = _tick(sensor, instance, second.cursor, defs)
    assert [r.run_key for r in third.run_requests] == [first.run_requests[0].run_key]

    _record_run(instance, first.run_requests[0].run_key)
    fourth = _tick(sensor, instance, third.cursor, defs)
    assert not fourth.run_requests and _queue_depth(sqs, queue) == 0
    assert sen.QueueCursor.parse(fourth.cursor).pending == []

    # a re-upload of other bytes is a new version: one new request
    s3.put_object(Bucket="q-drops", Key="in/My Talk.mp4", Body=(videos_dir / "v2.mp4").read_bytes())
    fifth = _tick(sensor, instance, fourth.cursor, defs)
    assert [r.partition_key for r in fifth.run_requests] == ["my-talk"]
    assert fifth.run_requests[0].run_key != first.run_requests[0].run_key


def test_parse_notification_decodes_keys_and_ignores_what_is_not_a_new_video() -> None:
    record = {
        "eventName": "ObjectCreated:CompleteMultipartUpload", "eventTime": "2026-01-02T03:04:05.678Z",
        "s3": {"bucket": {"name": "b"}, "object": {"key": "in/Show/%C3%89p+2.mov", "eTag": "abc-12"}},
    }  # fmt: skip
    [drop] = sen.parse_notification(json.dumps({"Records": [record]}), "b", "in/", (".mov",)).drops
    assert (drop.key, drop.version, drop.relative_key) == ("in/Show/Ép 2.mov", "abc-12", "Show/Ép 2.mov")
    assert drop.modified == 1767323045
    removed = {**record, "eventName": "ObjectRemoved:Delete"}
    elsewhere = {**record, "s3": {**record["s3"], "object": {"key": "out/x.mov", "eTag": "e"}}}
    for body in (
        '{"Event": "s3:TestEvent"}',
        json.dumps({"Records": [removed]}),
        json.dumps({"Records": [elsewhere]}),
    ):
        assert sen.parse_notification(body, "b", "in/", (".mov",)) == sen.Notification()
    # malformed: named, never a run (tests/unit/test_drop_events.py has every kind)
    assert sen.parse_notification("not json", "b", "in/", (".mov",)).poison.startswith("not_json: ")
    other = sen.parse_notification(json.dumps({"Records": [record]}), "other", "in/", (".mov",))
    assert other.poison.startswith("other_bucket: ") and not other.drops


def _drop(key: str, etag: str, second: int) -> sen.Drop:
    return sen.Drop(key, etag, second, f"s3://b/{key}", key)


def test_select_new_same_second_and_limit() -> None:
    cursor = sen.DropCursor()
    batch, cursor = sen.select_new(
        [_drop("a", "1", 10), _drop("b", "1", 10), _drop("c", "1", 11)], cursor, 60, limit=2
    )
    assert [d.key for d in batch] == ["a", "b"] and cursor.newest == 10
    # c arrived at 11, d at 10 after the tick (same second as a and b): both are picked up
    listing = [_drop("a", "1", 10), _drop("b", "1", 10), _drop("c", "1", 11), _drop("d", "1", 10)]
    batch, cursor = sen.select_new(listing, cursor, 60)
    assert [d.key for d in batch] == ["d", "c"] and cursor.newest == 11 and len(cursor.seen) == 4
    batch, _ = sen.select_new(
        [_drop("c", "1", 11), _drop("c", "2", 11)], sen.DropCursor.parse(cursor.dump()), 60
    )
    assert [d.run_key for d in batch] == ["c@2"]  # new content in the same second


def test_a_late_multipart_upload_is_not_missed() -> None:
    """S3 stamps a multipart upload with the time it *started*: a long upload that completes after
    short ones is listed with a LastModified older than anything handled since. (A cursor of the
    newest second alone skipped it forever.)"""
    cursor = sen.DropCursor()
    batch, cursor = sen.select_new(
        [_drop("short1.mp4", "s1", 1000), _drop("short2.mp4", "s2", 1600)], cursor, 3600
    )
    assert len(batch) == 2 and cursor.newest == 1600
    # the big upload started at 1010 and completed now: it appears with LastModified 1010
    listing = [
        _drop("short1.mp4", "s1", 1000),
        _drop("big.mp4", "b-5", 1010),
        _drop("short2.mp4", "s2", 1600),
    ]
    batch, cursor = sen.select_new(listing, cursor, 3600)
    assert [d.key for d in batch] == ["big.mp4"]
    # and never again
    assert sen.select_new(listing, sen.DropCursor.parse(cursor.dump()), 3600)[0] == []


def test_the_drop_cursor_stays_bounded_by_its_window() -> None:
    cursor = sen.DropCursor()
    for hour in range(48):  # two days of a drop every minute
        listing = [_drop(f"h{hour}-{m}.mp4", "e", hour * 3600 + m * 60) for m in range(60)]
        batch, cursor = sen.select_new(listing, cursor, 3600)
        assert len(batch) == 60
        cursor = sen.DropCursor.parse(cursor.dump())
    assert len(cursor.seen) <= 61 and min(cursor.seen.values()) >= cursor.newest - 3600
    # objects older than the window are not listed as new, even when never seen
    assert sen.select_new([_drop("old.mp4", "o", cursor.newest - 7200)], cursor, 3600)[0] == []


def test_inbox_sensor(tmp_path: Path, videos_dir: Path, instance: Any) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    settings = replace(
        Settings(), storage_url=str(tmp_path / "media"), inbox_dir=str(inbox), target_languages="es"
    )
    sensor = sen.build_inbox_sensor(settings, source_half_job, settle_seconds=0)
    shutil.copy(videos_dir / "v1.mp4", inbox / "sub" / "My Talk.mp4")
    (inbox / "sub" / "My Talk.mp4.json").write_text(json.dumps({"languages": ["fr", "es"]}))
    (inbox / "readme.txt").write_text("ignored")
    first = sensor(dg.build_sensor_context(instance=instance))
    assert [(r.partition_key, r.tags[sen.LANGUAGES_TAG]) for r in first.run_requests] == [
        ("sub-my-talk", "fr,es")
    ]
    assert first.run_requests[0].run_key.startswith("sub/My Talk.mp4@")
    # touched (new mtime), same content: nothing; new content: one request
    os.utime(inbox / "sub" / "My Talk.mp4", (time.time() + 5, time.time() + 5))
    second = sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert not second.run_requests
    shutil.copy(videos_dir / "v2.mp4", inbox / "sub" / "My Talk.mp4")
    third = sensor(dg.build_sensor_context(instance=instance, cursor=second.cursor))
    assert [r.partition_key for r in third.run_requests] == ["sub-my-talk"]
    assert third.run_requests[0].run_key != first.run_requests[0].run_key
    # a sidecar naming a language that is not a code: refused on its own partition, no run,
    # not the default languages instead; the other new file goes on
    shutil.copy(videos_dir / "v3.mp4", inbox / "typo.mp4")
    (inbox / "typo.mp4.json").write_text(json.dumps({"languages": ["spanish"]}))
    shutil.copy(videos_dir / "v1.mp4", inbox / "fine.mp4")
    fourth = sensor(dg.build_sensor_context(instance=instance, cursor=third.cursor))
    assert [r.partition_key for r in fourth.run_requests] == ["fine"]
    [refused] = fourth.asset_events
    assert refused.partition == "typo" and refused.metadata["error_code"].value == "bad_input"
    assert "not a language code: 'spanish'" in refused.metadata["error"].value
    adds = [list(r.partition_keys) for r in fourth.dynamic_partitions_requests]
    assert adds[0] == ["fine", "typo"]
    fifth = sensor(dg.build_sensor_context(instance=instance, cursor=fourth.cursor))
    assert not fifth.run_requests and not fifth.asset_events  # refused once, not every tick


# --- 5. spot preemption: a re-run over S3 storage is served from the cache ----------------------


def test_rerun_over_s3_hits_the_step_cache(moto_s3: str, videos_dir: Path, instance: Any) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    s3.create_bucket(Bucket="cache-media")
    s3.upload_file(str(videos_dir / "v2.mp4"), "cache-media", "uploads/clip.mp4")
    settings = replace(Settings(), storage_url="s3://cache-media/pipeline", s3_endpoint_url=moto_s3)
    storage = make_storage(settings.storage_url, s3_endpoint_url=moto_s3)
    from dubbing_pipeline.orchestration.registry import register_video

    register_video(storage, "clip", "s3://cache-media/uploads/clip.mp4")
    instance.add_dynamic_partitions("videos", ["clip"])
    resources = resources_for(settings)
    t0 = time.perf_counter()
    first = dg.materialize(
        [source_video, audio_stems], partition_key="clip", instance=instance, resources=resources
    )
    t1 = time.perf_counter()
    assert first.success
    # the step pod was preempted after the stems were stored: the retry (same inputs) reads them back
    again = dg.materialize(
        [source_video, audio_stems], partition_key="clip", instance=instance, resources=resources,
        selection=[audio_stems],
    )  # fmt: skip
    t2 = time.perf_counter()
    assert again.success
    meta = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in again.get_asset_materialization_events()
    }
    assert meta["audio_stems"]["cached"].value is True
    assert (
        first.output_for_node("audio_stems")["vocals_uri"]
        == again.output_for_node("audio_stems")["vocals_uri"]
    )
    assert again.output_for_node("audio_stems")["vocals_uri"].startswith("s3://cache-media/pipeline/")
    TIMINGS["stems_first_s"], TIMINGS["stems_cached_s"] = t1 - t0, t2 - t1
    print(f"\nstems first run {t1 - t0:.2f}s, cached re-run {t2 - t1:.2f}s")


# --- 4. the production instance on a real PostgreSQL server -------------------------------------


@pytest.fixture(scope="module")
def pg() -> Iterator[Any]:
    if find_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries (initdb) not installed: apt-get install postgresql")
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
    with postgres_server() as server:
        yield server


def _pg_env(monkeypatch: pytest.MonkeyPatch, server: Any) -> None:
    monkeypatch.setenv("DAGSTER_PG_HOST", server.host)
    monkeypatch.setenv("DAGSTER_PG_PORT", str(server.port))
    monkeypatch.setenv("DAGSTER_PG_USER", server.user)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "unused-trust-auth")
    monkeypatch.setenv("DAGSTER_PG_DB", server.db_name)
    monkeypatch.setenv("DAGSTER_K8S_NAMESPACE", "dubbing")


def test_production_instance_yaml_is_valid(pg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster_k8s import K8sRunLauncher

    _pg_env(monkeypatch, pg)
    config, _ = dagster_instance_config(str(ROOT / "dagster_home" / "production"))
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert config["storage"]["postgres"]["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    assert config["run_retries"] == {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False}
    assert config["run_monitoring"]["max_resume_run_attempts"] >= 1
    assert config["concurrency"]["pools"]["default_limit"] >= 1
    launcher = process_config(K8sRunLauncher.config_type(), config["run_launcher"]["config"])
    assert launcher.success, launcher.errors
    assert launcher.value["run_k8s_config"]["pod_spec_config"]["node_selector"] == {"dubbing.io/pool": "cpu"}
    # the sqlite default is untouched
    default = yaml.safe_load((ROOT / "dagster_home" / "dagster.yaml").read_text())
    assert "storage" not in default and "run_launcher" not in default


def test_postgres_storage_round_trip(pg: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    _pg_env(monkeypatch, pg)
    config = yaml.safe_load((ROOT / "dagster_home" / "production" / "dagster.yaml").read_text())
    config.pop("run_launcher")  # K8sRunLauncher needs a cluster; storage is what is tested here
    # resuming a run needs a launcher that can (K8sRunLauncher); the default one cannot
    config["run_monitoring"]["max_resume_run_attempts"] = 0
    home = tmp_path / "prod_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        keys = [f"vid{i:05d}" for i in range(2000)]
        start = time.perf_counter()
        instance.add_dynamic_partitions("videos", keys)
        TIMINGS["pg_add_2000_partitions"] = time.perf_counter() - start
        instance.add_dynamic_partitions("languages", ["es", "de"])
        assert instance.has_dynamic_partition("videos", "vid01999")
        assert len(instance.get_dynamic_partitions("videos")) == 2000

        @dg.asset(partitions_def=dg.DynamicPartitionsDefinition(name="videos"), code_version="t1")
        def probe(context) -> dg.MaterializeResult:  # type: ignore[no-untyped-def]
            return dg.MaterializeResult(data_version=dg.DataVersion(f"dv-{context.partition_key}"))

        result = dg.materialize([probe], partition_key="vid00042", instance=instance, tags={"dubbing/x": "1"})
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and run.tags["dubbing/x"] == "1" and run.status == dg.DagsterRunStatus.SUCCESS
        events = instance.all_logs(result.run_id)
        assert any(
            e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.RUN_SUCCESS for e in events
        )
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("probe"), asset_partitions=["vid00042"]), limit=1
        ).records
        assert records[0].asset_materialization.tags["dagster/data_version"] == "dv-vid00042"
        # the run-key check the drop sensor makes is an indexed tag query on Postgres
        assert instance.get_run_records(dg.RunsFilter(tags={"dubbing/x": "1"}), limit=1)
    finally:
        instance.dispose()
    print(f"\npostgres: 2000 partitions added in {TIMINGS['pg_add_2000_partitions']:.3f}s")


# --- 3. Kubernetes: pod specs, manifests, Helm values -------------------------------------------


PROD_GPU = replace(
    Settings(),
    deployment="production",
    device="cuda",
    separator="demucs",
    diarizer="pyannote",
    tts="en=piper,es=chatterbox",
)


def _step_job(tags: dict[str, str], *, launcher_defaults: dict[str, Any] | None = None) -> Any:
    """The V1Job dagster-k8s' k8s_job_executor would create for a step with these op tags."""
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        UserDefinedDagsterK8sConfig,
        construct_dagster_k8s_job,
        get_user_defined_k8s_config,
    )

    # the run launcher's run_k8s_config reaches step pods, then the op tags merge over it
    context = K8sContainerContext(
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(launcher_defaults or {})
    ).merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(tags)))
    config = DagsterK8sJobConfig(
        job_image="registry.example/dubbing-pipeline:0.1.0",
        dagster_home="/opt/dagster/dagster_home",
        instance_config_map="dagster-instance",
    )
    return construct_dagster_k8s_job(
        config,
        ["dagster", "api", "execute_step"],
        "dagster-step-abc123",
        user_defined_k8s_config=context.run_k8s_config,
    )


def _validate(doc: dict[str, Any]) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate (Kubernetes JSON schemas, offline)"
    )

    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def _as_dict(obj: Any) -> dict[str, Any]:
    from kubernetes.client import ApiClient

    data: dict[str, Any] = ApiClient().sanitize_for_serialization(obj)
    return data


def test_gpu_steps_get_gpu_pod_specs_cpu_steps_do_not() -> None:
    launcher = yaml.safe_load((ROOT / "dagster_home" / "production" / "dagster.yaml").read_text())
    defaults = launcher["run_launcher"]["config"]["run_k8s_config"]
    for stage in ("stems", "transcript", "speakers", "speech"):
        tags = gpu_op_tags(PROD_GPU, stage)
        assert gpu_pool(PROD_GPU, stage) == "gpu"
        job = _step_job(tags, launcher_defaults=defaults)
        pod = job.spec.template.spec
        assert pod.node_selector == {"dubbing.io/pool": "gpu"}
        assert [(t.key, t.operator, t.effect) for t in pod.tolerations] == [
            ("nvidia.com/gpu", "Exists", "NoSchedule")
        ]
        assert pod.containers[0].resources.limits == {"nvidia.com/gpu": "1"}
        _validate(_as_dict(job))
    # CPU steps: no tags, no pool → the CPU pool from the run launcher, no GPU, no tolerations
    cpu_settings = [Settings(), replace(PROD_GPU, device="cpu"), replace(PROD_GPU, separator="spleeter")]
    for settings in cpu_settings:
        assert gpu_op_tags(settings, "stems") == {} and gpu_pool(settings, "stems") is None
    job = _step_job({"stage": "mix"}, launcher_defaults=defaults)
    pod = job.spec.template.spec
    assert pod.node_selector == {"dubbing.io/pool": "cpu"}
    assert not pod.tolerations
    assert not (pod.containers[0].resources and pod.containers[0].resources.limits)
    _validate(_as_dict(job))


def _op_placement(env: dict[str, str]) -> dict[str, Any]:
    code = (
        "import json, dagster as dg\n"
        "from dubbing_pipeline.definitions import defs\n"
        "out = {}\n"
        "for name in ('source_half', 'dub'):\n"
        "    job = defs.resolve_job_def(name)\n"
        "    for node in job.graph.iterate_op_defs():\n"
        "        out[node.name] = {'tags': dict(node.tags), 'pool': node.pool}\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    placement: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return placement


def test_production_ops_carry_placement_and_embedded_does_not(tmp_path: Path) -> None:
    base = {"DAGSTER_HOME": str(tmp_path), "DUBBING_STORAGE_URL": str(tmp_path / "media")}
    production = _op_placement(
        {**base, "DUBBING_DEPLOYMENT": "production", "DUBBING_DEVICE": "cuda", "DUBBING_SEPARATOR": "demucs",
         "DUBBING_DIARIZER": "pyannote", "DUBBING_TTS": "chatterbox"}
    )  # fmt: skip
    embedded = _op_placement(base)
    for name, info in production.items():
        has_gpu = "dagster-k8s/config" in info["tags"]
        assert has_gpu == (name in GPU_OPS), name
        assert (info["pool"] == "gpu") == (name in GPU_OPS), name
        if has_gpu:
            pod = _step_job({"dagster-k8s/config": info["tags"]["dagster-k8s/config"]}).spec.template.spec
            assert pod.containers[0].resources.limits == {"nvidia.com/gpu": "1"}
    assert set(production) >= GPU_OPS
    assert all("dagster-k8s/config" not in i["tags"] and i["pool"] is None for i in embedded.values())


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "values.yaml":
            continue
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_manifests_validate_against_kubernetes_schemas() -> None:
    kinds = set()
    for name, doc in _manifests():
        _validate(doc)
        kinds.add((name, doc["kind"]))
    expected = {
        ("vllm.yaml", "Deployment"),
        ("vllm.yaml", "Service"),
        ("models-pvc.yaml", "PersistentVolumeClaim"),
        ("config.yaml", "ConfigMap"),
    }
    assert expected <= kinds
    vllm = next(d for n, d in _manifests() if d["kind"] == "Deployment")
    container = vllm["spec"]["template"]["spec"]["containers"][0]
    assert any(a.startswith("--served-model-name=") for a in container["args"])
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert vllm["spec"]["template"]["spec"]["nodeSelector"] == {"dubbing.io/pool": "gpu"}
    claims = [v["persistentVolumeClaim"]["claimName"] for v in vllm["spec"]["template"]["spec"]["volumes"] if
              "persistentVolumeClaim" in v]  # fmt: skip
    assert claims == ["dubbing-models"]


def test_helm_values() -> None:
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagsterDaemon"]["runRetries"] == {
        "enabled": True,
        "maxRetries": 2,
        "retryOnAssetOrOpFailure": False,
    }
    assert values["dagsterDaemon"]["runMonitoring"]["maxResumeRunAttempts"] >= 1
    assert values["concurrency"]["pools"]["defaultLimit"] >= 1
    assert (
        values["postgresql"]["enabled"] is False
        and values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    )
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "dubbing_pipeline.definitions"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    run_cfg = launcher["runK8sConfig"]
    # the pod fragments the chart passes through are valid Kubernetes objects
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "values-check"},
        "spec": {
            "nodeSelector": run_cfg["podSpecConfig"]["nodeSelector"],
            "volumes": launcher["volumes"],
            "containers": [
                {
                    "name": "run",
                    "image": "x",
                    "volumeMounts": launcher["volumeMounts"],
                    **run_cfg["containerConfig"],
                }
            ],
        },
    }
    _validate(pod)
    dockerfile = (K8S / "Dockerfile").read_text()
    assert "nvidia/cuda" in dockerfile and '".[gpu]"' in dockerfile
    assert "PYTHONPATH=/opt/latentsync" in dockerfile and "LATENTSYNC_COMMIT=" in dockerfile
