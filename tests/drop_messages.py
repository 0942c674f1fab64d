"""Bodies of drop-queue messages, as S3, SNS and EventBridge write them, and malformed ones.

The well-formed shapes follow the AWS documentation (S3 "Event message structure", SNS
"Notification" JSON, S3 "EventBridge event message structure"); the malformed ones are one defect
each, by :class:`~dubbing_pipeline.orchestration.drop_events.PoisonKind`.
"""

from __future__ import annotations

import json
from urllib.parse import quote_plus

from dubbing_pipeline.orchestration.drop_events import PoisonKind

TIME = "2026-01-02T03:04:05.678Z"
SECONDS = 1767323045  # TIME in whole seconds


def s3_record(
    bucket: str, key: str, etag: str, *, event: str = "ObjectCreated:Put", time: str = TIME
) -> dict[str, object]:
    """One record of an S3 event notification; the key URL-encoded as S3 does (space → ``+``)."""
    obj = {"key": quote_plus(key, safe="/"), "size": 1024, "eTag": etag, "sequencer": "0062E99A88DC407460"}
    return {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventTime": time,
        "eventName": event,
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
               "object": obj},
    }  # fmt: skip


def direct(bucket: str, key: str, etag: str) -> str:
    """An S3 event notification, sent by S3 to the queue (or by SNS with raw message delivery)."""
    return json.dumps({"Records": [s3_record(bucket, key, etag)]})


def sns(inner: str) -> str:
    """``inner`` through SNS with raw message delivery off: the envelope, ``inner`` as its Message."""
    return json.dumps(
        {
            "Type": "Notification", "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:drops", "Subject": "Amazon S3 Notification",
            "Message": inner, "Timestamp": "2026-01-02T03:04:06.000Z", "SignatureVersion": "1",
            "Signature": "EXAMPLE", "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        }
    )  # fmt: skip


def eventbridge_event(
    bucket: str, key: str, etag: str, *, detail_type: str = "Object Created"
) -> dict[str, object]:
    """An S3 event as EventBridge delivers it to an SQS target (the key as it is, not encoded)."""
    obj = {
        "key": key,
        "size": 1024,
        "etag": etag,
        "version-id": "IYV3p45BhbcHv2J0",
        "sequencer": "00617F08299",
    }
    return {
        "version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": detail_type,
        "source": "aws.s3", "account": "123456789012", "time": "2026-01-02T03:04:05Z", "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0", "bucket": {"name": bucket}, "object": obj, "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012", "reason": "PutObject",
        },
    }  # fmt: skip


def eventbridge(bucket: str, key: str, etag: str) -> str:
    return json.dumps(eventbridge_event(bucket, key, etag))


def s3_test_event(bucket: str) -> str:
    """What S3 sends when a notification is configured."""
    return json.dumps(
        {
            "Service": "Amazon S3", "Event": "s3:TestEvent", "Time": TIME, "Bucket": bucket,
            "RequestId": "5582815E1AEA5ADF", "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+Ys",
        }
    )  # fmt: skip


def poison(kind: PoisonKind, bucket: str, n: int) -> str:
    """A malformed body of ``kind`` (``n`` makes each one distinct)."""
    record = s3_record(bucket, f"in/poison-{n}.mp4", f"p{n}")
    s3 = record["s3"]
    assert isinstance(s3, dict)

    def records(*recs: object) -> str:
        return json.dumps({"Records": list(recs)})

    no_key = {**eventbridge_event(bucket, "in/e.mp4", f"e{n}"), "detail": {"bucket": {"name": bucket}}}
    bodies = {
        PoisonKind.NOT_JSON: f"<Event>not json {n}</Event>",
        PoisonKind.NOT_AN_OBJECT: json.dumps([n, "a list"]) if n % 2 else str(n),
        PoisonKind.UNKNOWN_SHAPE: json.dumps({"hello": n}),
        PoisonKind.RECORDS_NOT_A_LIST: json.dumps({"Records": record}),
        PoisonKind.RECORD_NOT_AN_OBJECT: records(f"record {n}"),
        PoisonKind.MISSING_BUCKET_OR_KEY: records({**record, "s3": {**s3, "object": {"eTag": "x"}}}),
        PoisonKind.BAD_EVENT_TIME: records({**record, "eventTime": f"yesterday {n}"}),
        PoisonKind.MISSING_VERSION: records({**record, "s3": {**s3, "object": {"key": f"in/v{n}.mp4"}}}),
        PoisonKind.SNS_MESSAGE_NOT_JSON: sns(f"Records? {n}"),
        PoisonKind.OTHER_BUCKET: direct("someone-elses-bucket", f"in/x-{n}.mp4", f"o{n}"),
        PoisonKind.EVENTBRIDGE_MISSING_KEY: json.dumps(no_key),
    }
    return bodies[kind]
