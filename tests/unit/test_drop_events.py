"""The drop queue's message parser: every envelope it reads, every defect it names."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from drop_messages import (
    SECONDS,
    direct,
    eventbridge,
    eventbridge_event,
    poison,
    s3_record,
    s3_test_event,
    sns,
)

from dubbing_pipeline.orchestration.drop_events import ObjectCreated, ParsedMessage, PoisonKind, parse_message
from dubbing_pipeline.orchestration.sensors import (
    Looked,
    Notification,
    QueueMessage,
    parse_notification,
    settled,
    sort_messages,
)

BUCKET = "drops"


# --- the shapes it reads ------------------------------------------------------------------------


def test_a_direct_notification_decodes_its_key() -> None:
    parsed = parse_message(direct(BUCKET, "in/Show/Épisode 2 + extra.mov", '"abc-12"'), BUCKET)
    assert parsed == ParsedMessage(
        via="s3", created=(ObjectCreated("in/Show/Épisode 2 + extra.mov", "abc-12", SECONDS),)
    )
    assert parsed.reason == ""


def test_sns_raw_delivery_is_the_notification_itself() -> None:
    body = direct(BUCKET, "in/a b.mp4", "e1")
    assert parse_message(body, BUCKET).created == (ObjectCreated("in/a b.mp4", "e1", SECONDS),)


def test_an_sns_envelope_is_opened() -> None:
    parsed = parse_message(sns(direct(BUCKET, "in/a b.mp4", "e1")), BUCKET)
    assert parsed == ParsedMessage(via="sns", created=(ObjectCreated("in/a b.mp4", "e1", SECONDS),))


def test_eventbridge_keys_are_taken_as_they_are() -> None:
    parsed = parse_message(eventbridge(BUCKET, "in/2023-08-08T14:03:40 a+b.mp4", "e2-3"), BUCKET)
    assert parsed == ParsedMessage(
        via="eventbridge", created=(ObjectCreated("in/2023-08-08T14:03:40 a+b.mp4", "e2-3", 1767323045),)
    )


def test_eventbridge_through_sns() -> None:
    parsed = parse_message(sns(eventbridge(BUCKET, "in/x.mp4", "e")), BUCKET)
    assert (parsed.via, parsed.created) == ("sns", (ObjectCreated("in/x.mp4", "e", 1767323045),))


def test_several_records_and_the_version_fallbacks() -> None:
    one = s3_record(BUCKET, "in/one.mp4", "")  # no ETag: the sequencer
    s3 = one["s3"]
    assert isinstance(s3, dict)
    two = {
        **s3_record(BUCKET, "in/two.mp4", ""),
        "s3": {**s3, "object": {"key": "in/two.mp4", "versionId": "v9"}},
    }
    gone = s3_record(BUCKET, "in/old.mp4", "e", event="ObjectRemoved:Delete")
    parsed = parse_message(json.dumps({"Records": [one, gone, two]}), BUCKET)
    assert [(c.key, c.version) for c in parsed.created] == [
        ("in/one.mp4", "0062E99A88DC407460"),
        ("in/two.mp4", "v9"),
    ]
    no_etag = eventbridge_event(BUCKET, "in/x.mp4", "")
    assert parse_message(json.dumps(no_etag), BUCKET).created[0].version == "IYV3p45BhbcHv2J0"


def test_eventbridge_as_moto_writes_it_and_a_null_version_id() -> None:
    event = eventbridge_event(BUCKET, "in/x.mp4", "")
    detail = event["detail"]
    assert isinstance(detail, dict)
    moto_like = {"key": "in/x.mp4", "eTag": "abc", "version-id": "null", "sequencer": "617f"}
    body = json.dumps({**event, "detail": {**detail, "object": moto_like}})
    assert parse_message(body, BUCKET).created[0].version == "abc"  # moto spells it eTag
    no_etag = {**moto_like, "eTag": ""}
    body = json.dumps({**event, "detail": {**detail, "object": no_etag}})
    assert parse_message(body, BUCKET).created[0].version == "617f"  # "null" names no version


def test_a_time_without_a_zone_is_utc() -> None:
    record = s3_record(BUCKET, "in/x.mp4", "e", time="2026-01-02T03:04:05")
    assert parse_message(json.dumps({"Records": [record]}), BUCKET).created[0].modified == SECONDS


# --- what announces nothing to run ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "ignored"),
    [
        (s3_test_event(BUCKET), "an s3:TestEvent"),
        (sns(s3_test_event(BUCKET)), "an s3:TestEvent"),
        (
            json.dumps({"Records": [s3_record(BUCKET, "in/x.mp4", "e", event="ObjectRemoved:Delete")]}),
            "no ObjectCreated record",
        ),
        (json.dumps({"Records": []}), "no records"),
        (
            json.dumps(eventbridge_event(BUCKET, "in/x.mp4", "e", detail_type="Object Deleted")),
            "an EventBridge 'Object Deleted' event",
        ),
        (
            json.dumps({"Type": "SubscriptionConfirmation", "TopicArn": "arn", "SubscribeURL": "https://x"}),
            "an SNS subscription confirmation (confirm it with its SubscribeURL)",
        ),
    ],
)
def test_what_announces_nothing(body: str, ignored: str) -> None:
    parsed = parse_message(body, BUCKET)
    assert (parsed.created, parsed.ignored, parsed.poison) == ((), ignored, None)


# --- every defect, named ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(PoisonKind))
@pytest.mark.parametrize("n", [1, 2])
def test_every_poison_kind_is_named(kind: PoisonKind, n: int) -> None:
    parsed = parse_message(poison(kind, BUCKET, n), BUCKET)
    assert parsed.poison == kind and not parsed.created
    assert parsed.reason.startswith(f"{kind}: ") and len(parsed.reason) < 200


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "not_json: the body is not JSON: ''"),
        ("null", "not_an_object: the body is a JSON null"),
        ("[1, 2]", "not_an_object: the body is a JSON list"),
        ("3.5", "not_an_object: the body is a JSON number"),
        ('"text"', "not_an_object: the body is a JSON string"),
        ('{"Records": null}', "records_not_a_list: Records is a JSON null"),
        ('{"Records": [1]}', "record_not_an_object: Records[0] is a JSON number"),
        (
            '{"Records": [{"eventSource": "aws:sqs"}]}',
            "unknown_shape: Records[0].eventSource is 'aws:sqs', not aws:s3",
        ),
        (
            '{"Records": [{"s3": {"object": {"key": "k"}}}]}',
            "missing_bucket_or_key: Records[0] has no s3.bucket.name",
        ),
        (
            '{"Records": [{"s3": {"bucket": {"name": "drops"}, "object": {"key": ""}}}]}',
            "missing_bucket_or_key: Records[0] has no s3.object.key",
        ),
        (
            '{"Records": [{"s3": {"bucket": {"name": "drops"}, "object": {"key": "k"}}}]}',
            "unknown_shape: Records[0] has no eventName",
        ),
        (sns("not json"), "sns_message_not_json: the SNS Message is not JSON: 'not json'"),
        (
            json.dumps({"Type": "Notification", "TopicArn": "arn"}),
            "sns_message_not_json: the SNS Message is missing",
        ),
        (
            json.dumps({"Type": "Notification", "Message": {"Records": []}}),
            "sns_message_not_json: the SNS Message is a JSON object, not JSON text",
        ),
        (sns("[1]"), "not_an_object: the SNS Message is a JSON list"),
        (
            json.dumps({"source": "aws.s3", "detail": []}),
            "eventbridge_missing_key: the EventBridge event has no detail",
        ),
        (
            json.dumps({"source": "aws.s3", "detail": {}}),
            "missing_bucket_or_key: the EventBridge event has no detail.bucket.name",
        ),
        (
            json.dumps({**eventbridge_event(BUCKET, "k.mp4", "e"), "time": 5}),
            "bad_event_time: time is a JSON number",
        ),
        (
            direct("other", "in/x.mp4", "e"),
            "other_bucket: Records[0] is about bucket 'other', not the drop bucket 'drops'",
        ),
        (
            eventbridge("other", "in/x.mp4", "e"),
            "other_bucket: the EventBridge event is about bucket 'other', not the drop bucket 'drops'",
        ),
        ("{}", "unknown_shape: the body is a JSON object with keys none"),
    ],
)
def test_the_reasons_say_what_is_wrong(body: str, reason: str) -> None:
    assert parse_message(body, BUCKET).reason == reason


def test_an_envelope_inside_an_envelope_is_not_opened() -> None:
    reason = parse_message(sns(sns(s3_test_event(BUCKET))), BUCKET).reason
    assert reason.startswith("unknown_shape: the SNS Message is a JSON object with keys Message, MessageId")


def test_one_bad_record_makes_the_whole_message_malformed() -> None:
    good = s3_record(BUCKET, "in/good.mp4", "e")
    parsed = parse_message(json.dumps({"Records": [good, {**good, "eventTime": "soon"}]}), BUCKET)
    assert parsed.poison is PoisonKind.BAD_EVENT_TIME and parsed.created == ()
    assert parsed.detail == "Records[1].eventTime is 'soon'"


def test_a_long_defect_is_clipped_in_its_reason() -> None:
    reason = parse_message("x" * 10_000, BUCKET).reason
    assert reason == "not_json: the body is not JSON: '" + "x" * 60 + "…'"


# --- the sensor's view: videos under the drop prefix ---------------------------------------------


def test_the_sensor_keeps_videos_under_its_prefix() -> None:
    body = json.dumps(
        {
            "Records": [
                s3_record(BUCKET, k, "e") for k in ("in/a b.MOV", "in/notes.txt", "out/x.mp4", "in/dir/")
            ]
        }
    )
    note = parse_notification(body, BUCKET, "in/", (".mov", ".mp4"))
    assert [(d.key, d.relative_key, d.source_uri, d.run_key) for d in note.drops] == [
        ("in/a b.MOV", "a b.MOV", "s3://drops/in/a b.MOV", "in/a b.MOV@e")
    ]
    assert parse_notification(sns(body), BUCKET, "in/", (".mov",)).drops == note.drops
    assert parse_notification(body, BUCKET, "in/", (".mkv",)) == Notification()
    bad = parse_notification(poison(PoisonKind.OTHER_BUCKET, BUCKET, 1), BUCKET, "in/", (".mp4",))
    assert bad.poison.startswith("other_bucket: ") and bad.drops == ()


def _message(n: int, body: str) -> QueueMessage:
    return QueueMessage(id=f"m{n}", receipt=f"r{n}", body=body, receives=n)


def test_each_message_is_sorted_on_its_own() -> None:
    def note(key: str) -> Notification:
        return parse_notification(direct(BUCKET, key, "e"), BUCKET, "in/", (".mp4",))

    keys = ["in/ok.mp4", "in/gone.mp4", "in/locked.mp4", "in/typo.mp4"]
    notes = [note(k) for k in keys]
    drops = [n.drops[0] for n in notes]
    looked = {
        drops[0].run_key: Looked(drops[0]),
        drops[1].run_key: Looked(drops[1], gone=True),
        drops[2].run_key: Looked(drops[2], error="HEAD s3://drops/in/locked.mp4 failed: AccessDenied"),
        drops[3].run_key: Looked(replace(drops[3], refused="bad_input: not a language code: 'spanish'")),
    }
    bad = parse_notification("[]", BUCKET, "in/", (".mp4",))
    found = [(_message(i + 1, ""), n) for i, n in enumerate([*notes, note("in/notes.txt"), bad])]
    tick = sort_messages(found, looked)
    assert tick.pending == [("r1", "in/ok.mp4@e")]  # waits for its run
    assert tick.done == ["r2", "r4", "r5"]  # gone, refused, not a video: nothing to run
    assert tick.poison == ["r6"]  # released for the dead-letter queue
    assert tick.warnings == [
        "drop queue: message m3 waits for a retry: HEAD s3://drops/in/locked.mp4 failed: AccessDenied",
        "drop queue: message m6 (receive 6) left for the dead-letter queue: "
        "not_an_object: the body is a JSON list",
    ]


def test_a_message_is_deleted_once_all_its_runs_ran() -> None:
    pending = [("r1", "a@1"), ("r1", "b@1"), ("r2", "c@1")]
    assert settled(pending, {"a@1", "c@1"}) == ["r2"]
    assert settled(pending, {"a@1", "b@1", "c@1", "d@1"}) == ["r1", "r2"]
    assert settled([], {"a@1"}) == []
