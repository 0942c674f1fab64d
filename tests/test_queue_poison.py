"""Drops that never stall: 500 messages, 30 of them malformed, through moto's real SQS server with a
dead-letter queue, consumed by the real queue-mode drop sensor.

Every well-formed drop asks for exactly one run (key + ETag) whatever carried it (S3 directly, SNS
raw or enveloped, EventBridge), however often it was delivered; every malformed message is logged
with its reason at each receive, never fails a tick, and ends in the dead-letter queue after
``maxReceiveCount`` receives (moto applies the redrive policy as SQS does).
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
from drop_messages import direct, eventbridge, poison, s3_test_event, sns

from dubbing_pipeline.definitions import build_definitions
from dubbing_pipeline.orchestration import sensors as sen
from dubbing_pipeline.orchestration.drop_events import PoisonKind
from dubbing_pipeline.settings import Settings

BUCKET = "poison-drops"
WELL_FORMED, MALFORMED, MAX_RECEIVES = 470, 30, 2
SHAPES: list[Callable[[str, str, str], str]] = [
    direct,  # S3 → SQS
    direct,  # S3 → SNS → SQS, raw message delivery: the same body
    lambda bucket, key, etag: sns(direct(bucket, key, etag)),  # S3 → SNS → SQS, enveloped
    eventbridge,  # S3 → EventBridge → SQS
]


@dataclass(frozen=True)
class Sent:
    """A message the test sends: its body, and the run key it must ask for (or its defect)."""

    body: str
    run_key: str = ""
    poison: PoisonKind | None = None


@dataclass
class Daemon:
    """What the sensor daemon does with a tick's result: adds partitions, launches each run key once."""

    instance: dg.DagsterInstance
    requested: list[str] = field(default_factory=list)

    def launch(self, result: dg.SensorResult) -> None:
        for req in result.dynamic_partitions_requests or []:
            assert isinstance(req, dg.AddDynamicPartitionsRequest)
            self.instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        keys = [r.run_key or "" for r in result.run_requests or []]
        self.requested += keys
        have = sen.already_ran(self.instance, keys)
        for key in keys:
            if key not in have:
                self.instance.create_run_for_job(launched, tags={sen.RUN_KEY_TAG: key})
                have.add(key)


@dg.op
def noop() -> None:
    """Stands for the source_half run (the sensor looks runs up by their run key only)."""


@dg.job
def launched() -> None:
    noop()


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _drops(s3: Any) -> list[Sent]:
    """470 real objects (the sensor HEADs each), announced in the four shapes in turn; keys with
    spaces, accents and a literal ``+``; some with their own languages."""
    out = []
    for n in range(WELL_FORMED):
        key = f"in/show {n // 50}/Épisode {n}+.mp4" if n % 5 == 0 else f"in/ep-{n}.mp4"
        meta = {"languages": "es,de"} if n % 7 == 0 else {}
        etag = s3.put_object(Bucket=BUCKET, Key=key, Body=f"video {n}".encode(), Metadata=meta)["ETag"]
        etag = etag.strip('"')
        out.append(Sent(SHAPES[n % len(SHAPES)](BUCKET, key, etag), run_key=f"{key}@{etag}"))
    return out


def _bursts(drops: list[Sent]) -> list[list[Sent]]:
    """The 501 first deliveries (470 drops, 30 malformed of every kind, a test event) shuffled into
    three bursts, plus 20 drops sent twice: 10 in the burst of their first delivery, 10 in a later
    burst than theirs (after their runs were launched)."""
    kinds = list(PoisonKind)
    bad = [
        Sent(poison(kinds[i % len(kinds)], BUCKET, i), poison=kinds[i % len(kinds)]) for i in range(MALFORMED)
    ]
    first = [*drops, *bad, Sent(s3_test_event(BUCKET))]
    random.Random(28).shuffle(first)
    one, two, three = first[:150], first[150:250], first[250:]
    two += [s for s in two if s.run_key][:10]
    three += [s for s in one if s.run_key][:10]
    return [one, two, three]


def _send(sqs: Any, queue: str, burst: Sequence[Sent]) -> dict[str, Sent]:
    ids: dict[str, Sent] = {}
    for start in range(0, len(burst), 10):
        part = burst[start : start + 10]
        entries = [{"Id": str(i), "MessageBody": s.body} for i, s in enumerate(part)]
        response = sqs.send_message_batch(QueueUrl=queue, Entries=entries)
        assert not response.get("Failed")
        ids.update({ok["MessageId"]: part[int(ok["Id"])] for ok in response["Successful"]})
    return ids


def _depth(sqs: Any, queue: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=names)["Attributes"]
    return sum(int(attrs[n]) for n in names)


def _queues(sqs: Any) -> tuple[str, str]:
    """The drop queue and its dead-letter queue, as docs/production.md sets them up."""
    dlq = sqs.create_queue(QueueName="poison-drops-dlq", Attributes={"MessageRetentionPeriod": "1209600"})
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq["QueueUrl"], AttributeNames=["QueueArn"])["Attributes"]
    policy = {"deadLetterTargetArn": dlq_arn["QueueArn"], "maxReceiveCount": str(MAX_RECEIVES)}
    queue = sqs.create_queue(
        QueueName="poison-drops", Attributes={"VisibilityTimeout": "300", "RedrivePolicy": json.dumps(policy)}
    )
    return queue["QueueUrl"], dlq["QueueUrl"]


def _drain(sqs: Any, queue: str) -> dict[str, str]:
    """Every message of ``queue`` by id (received, not deleted)."""
    out: dict[str, str] = {}
    while got := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=600).get(
        "Messages", []
    ):
        out.update({m["MessageId"]: m["Body"] for m in got})
    return out


@dataclass
class Ticker:
    """Evaluates the sensor as the daemon would, one tick at a time, cursor to cursor."""

    sensor: dg.SensorDefinition
    defs: dg.Definitions
    instance: dg.DagsterInstance
    log: Lines = field(default_factory=Lines)
    cursor: str | None = None
    ticks: int = 0

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor, definitions=self.defs)
        context.log.addHandler(self.log)
        result = self.sensor(context)  # a failed tick raises here
        assert isinstance(result, dg.SensorResult)
        keys = [r.run_key for r in result.run_requests or []]
        assert len(keys) == len(set(keys)) <= sen.MAX_PER_TICK, "one tick asked twice for a run key"
        self.cursor, self.ticks = result.cursor, self.ticks + 1
        return result

    @property
    def pending(self) -> list[tuple[str, str]]:
        return sen.QueueCursor.parse(self.cursor).pending


def test_500_messages_30_malformed_never_stall(moto_s3: str, tmp_path: Path, instance: Any) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=moto_s3, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    queue, dlq = _queues(sqs)
    settings = replace(
        Settings(), storage_url=str(tmp_path / "media"), s3_endpoint_url=moto_s3, drop_bucket=BUCKET,
        drop_prefix="in/", drop_queue_url=queue, target_languages="es",
    )  # fmt: skip
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("s3_drop_sensor")
    assert "queue mode" in (sensor.description or "")
    ticker, daemon = Ticker(sensor, defs, instance), Daemon(instance)
    drops = _drops(s3)
    one, two, three = _bursts(drops)
    sent = _send(sqs, queue, one)
    daemon.launch(ticker.tick())

    sent |= _send(sqs, queue, two)
    late = ticker.tick()  # the daemon is slow: its runs are launched after the next tick
    # ... meanwhile 10 of its messages' visibility timeouts pass: they are received again
    seen: dict[str, str] = {}
    for receipt, key in ticker.pending:
        seen.setdefault(key, receipt)
    redelivered = sorted(seen)[:10]
    for key in redelivered:
        sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=seen[key], VisibilityTimeout=0)

    sent |= _send(sqs, queue, three)
    after = ticker.tick()
    assert sorted(set(redelivered) & {r.run_key for r in after.run_requests}) == redelivered  # asked again
    daemon.launch(late)
    daemon.launch(after)
    while _depth(sqs, queue) or ticker.pending:  # until every message is deleted or dead-lettered
        assert ticker.ticks < 12, "the queue does not drain"
        daemon.launch(ticker.tick())

    expected = {s.run_key for s in drops}
    assert len(sent) == 521 and len(expected) == WELL_FORMED
    assert set(daemon.requested) == expected  # one run per well-formed drop, whatever carried it
    assert Counter(daemon.requested) == Counter(expected) + Counter(redelivered)  # only the lost ones twice
    runs = instance.get_run_records(dg.RunsFilter(job_name="launched"))
    assert sorted(r.dagster_run.tags[sen.RUN_KEY_TAG] for r in runs) == sorted(expected)

    bad = {mid: s for mid, s in sent.items() if s.poison is not None}
    assert len(bad) == MALFORMED and {s.poison for s in bad.values()} == set(PoisonKind)
    assert _drain(sqs, dlq) == {mid: s.body for mid, s in bad.items()}  # all of them, and only them
    for mid, s in bad.items():
        lines = [line for line in ticker.log.lines if f"message {mid} " in line]
        assert [line.split(f"{mid} ")[1].split(")")[0] for line in lines] == ["(receive 1", "(receive 2"]
        assert all(line.split("dead-letter queue: ")[1].startswith(f"{s.poison}: ") for line in lines)
    assert len(ticker.log.lines) == MALFORMED * MAX_RECEIVES  # nothing else was left on the queue
    print(
        f"\nqueue poison: {len(sent)} messages ({MALFORMED} malformed), {ticker.ticks} ticks, "
        f"{len(daemon.requested)} run requests ({len(expected)} distinct, {len(runs)} runs), "
        f"{len(bad)} in the dead-letter queue"
    )


def test_an_object_deleted_before_its_tick_asks_for_nothing(
    moto_s3: str, tmp_path: Path, instance: Any
) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=moto_s3, region_name="us-east-1")
    s3.create_bucket(Bucket="gone-drops")
    queue = sqs.create_queue(QueueName="gone-drops")["QueueUrl"]
    settings = replace(
        Settings(), storage_url=str(tmp_path / "media"), s3_endpoint_url=moto_s3, drop_bucket="gone-drops",
        drop_prefix="in/", drop_queue_url=queue, target_languages="es",
    )  # fmt: skip
    etag = s3.put_object(Bucket="gone-drops", Key="in/kept.mp4", Body=b"v")["ETag"].strip('"')
    s3.put_object(Bucket="gone-drops", Key="in/deleted.mp4", Body=b"w")
    s3.delete_object(Bucket="gone-drops", Key="in/deleted.mp4")  # uploaded, then deleted before the tick
    for key in ("in/kept.mp4", "in/deleted.mp4"):
        sqs.send_message(QueueUrl=queue, MessageBody=sns(direct("gone-drops", key, etag)))
    defs = build_definitions(settings)
    ticker = Ticker(defs.resolve_sensor_def("s3_drop_sensor"), defs, instance)
    result = ticker.tick()
    assert [r.run_key for r in result.run_requests] == [f"in/kept.mp4@{etag}"]
    assert _depth(sqs, queue) == 1 and [k for _, k in ticker.pending] == [f"in/kept.mp4@{etag}"]
    assert ticker.log.lines == []  # a deleted object is nothing to run, not a malformed message


def _arn(sqs: Any, queue: str) -> str:
    return str(
        sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    )


def test_the_wirings_as_moto_delivers_them(moto_s3: str, tmp_path: Path, instance: Any) -> None:
    """The bodies moto's own S3, SNS and EventBridge put on the queue (not the test's): S3 directly,
    through SNS enveloped and raw, through EventBridge; each new object asks for one run."""
    s3, sqs, sns_client, events = (
        boto3.client(name, endpoint_url=moto_s3, region_name="us-east-1")
        for name in ("s3", "sqs", "sns", "events")
    )
    s3.create_bucket(Bucket="wired-drops")
    queue = sqs.create_queue(QueueName="wired-drops")["QueueUrl"]
    settings = replace(
        Settings(), storage_url=str(tmp_path / "media"), s3_endpoint_url=moto_s3, drop_bucket="wired-drops",
        drop_prefix="in/", drop_queue_url=queue, target_languages="es",
    )  # fmt: skip
    defs = build_definitions(settings)
    ticker, daemon = Ticker(defs.resolve_sensor_def("s3_drop_sensor"), defs, instance), Daemon(instance)
    topic = sns_client.create_topic(Name="wired-drops")["TopicArn"]
    subscription = sns_client.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=_arn(sqs, queue))
    events.put_rule(
        Name="wired-drops", EventPattern=json.dumps({"source": ["aws.s3"], "detail-type": ["Object Created"]})
    )
    events.put_targets(Rule="wired-drops", Targets=[{"Id": "drops", "Arn": _arn(sqs, queue)}])
    wirings = {
        "direct": {"QueueConfigurations": [{"QueueArn": _arn(sqs, queue), "Events": ["s3:ObjectCreated:*"]}]},
        "sns": {"TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]},
        "sns raw": {"TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]},
        "eventbridge": {"EventBridgeConfiguration": {}},
    }
    for n, (name, config) in enumerate(wirings.items()):
        raw = "true" if name == "sns raw" else "false"
        sns_client.set_subscription_attributes(
            SubscriptionArn=subscription["SubscriptionArn"],
            AttributeName="RawMessageDelivery",
            AttributeValue=raw,
        )
        s3.put_bucket_notification_configuration(Bucket="wired-drops", NotificationConfiguration=config)
        key = f"in/{name} {n}/Épisode {n}+1.mp4"
        etag = s3.put_object(Bucket="wired-drops", Key=key, Body=f"video {n}".encode())["ETag"].strip('"')
        result = ticker.tick()
        assert [r.run_key for r in result.run_requests] == [f"{key}@{etag}"], name
        daemon.launch(result)
    daemon.launch(ticker.tick())
    assert _depth(sqs, queue) == 0 and not ticker.pending and ticker.log.lines == []
