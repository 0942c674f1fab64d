"""What an SQS message of the drop queue announces: new objects, nothing, or a malformed message.

The drop queue (``DUBBING_DROP_QUEUE_URL``) may be fed four ways; this module reads them all:

* **S3 event notifications, directly** (or through SNS with *raw message delivery*, which is the
  same body): ``{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
  "eventTime": ..., "s3": {"bucket": {"name": ...}, "object": {"key": ..., "eTag": ...}}}]}``. The
  key is URL-encoded (``red flower.mov`` arrives as ``red+flower.mov``) and is decoded here.
* **Through SNS, enveloped** (raw delivery off): ``{"Type": "Notification", "Message": "<the S3
  event as JSON text>", ...}``; the message inside is read as above (an EventBridge event too).
* **Through EventBridge**: ``{"source": "aws.s3", "detail-type": "Object Created", "time": ...,
  "detail": {"bucket": {"name": ...}, "object": {"key": ..., "etag": ..., "version-id": ...}}}``.
  EventBridge carries the key as it is (``2023-08-08T14:03:40.zip``, where a notification would say
  ``2023-08-08T14%3A03%3A40.zip``): it is not decoded.
* **``s3:TestEvent``**, sent when a notification is configured: nothing to run.

A message announces nothing to run (``ignored``) when it is a test event, an SNS subscription
confirmation, or only removals, restores and other non-creation events of the drop bucket.

Anything else is **malformed**, with a :class:`PoisonKind` and a one-line detail: the sensor leaves
such a message on the queue, and SQS's redrive policy moves it to the dead-letter queue after
``maxReceiveCount`` receives. A message is well-formed or malformed as a whole: one bad record
makes the message malformed and nothing in it runs, so everything in the dead-letter queue is
something that did not run. An event for another bucket is malformed too: it means the queue is
wired to more than the drop bucket.

Pure: no I/O, no clock, so every shape and every defect is tested on its own
(``tests/unit/test_drop_events.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import unquote_plus


class PoisonKind(StrEnum):
    """Why a message is malformed (the first word of its reason)."""

    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"  # JSON, but a list, a number, a string…
    UNKNOWN_SHAPE = "unknown_shape"  # an object that is none of the shapes above
    RECORDS_NOT_A_LIST = "records_not_a_list"
    RECORD_NOT_AN_OBJECT = "record_not_an_object"
    MISSING_BUCKET_OR_KEY = "missing_bucket_or_key"
    BAD_EVENT_TIME = "bad_event_time"
    MISSING_VERSION = "missing_version"  # no ETag, version id or sequencer: no run key
    SNS_MESSAGE_NOT_JSON = "sns_message_not_json"
    OTHER_BUCKET = "other_bucket"
    EVENTBRIDGE_MISSING_KEY = "eventbridge_missing_key"


class MalformedMessage(Exception):
    """A message none of whose shapes fits, or a field of one that is missing or wrong."""

    def __init__(self, kind: PoisonKind, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class ObjectCreated:
    """One object version an event announces: its (decoded) key, its version and when."""

    key: str
    version: str  # the ETag (quotes stripped), else the version id, else the sequencer
    modified: int  # whole seconds since the epoch: the event's time


@dataclass(frozen=True)
class ParsedMessage:
    """What one message body says: the objects it announces, or why it announces none."""

    via: str = ""  # "s3" (direct or SNS raw delivery), "sns" (enveloped), "eventbridge"
    created: tuple[ObjectCreated, ...] = ()
    ignored: str = ""  # why a well-formed message announces nothing to run
    poison: PoisonKind | None = None
    detail: str = ""

    @property
    def reason(self) -> str:
        """``"kind: detail"`` of a malformed message; empty for a well-formed one."""
        return f"{self.poison}: {self.detail}" if self.poison is not None else ""


SNS_IGNORED = {
    "SubscriptionConfirmation": "an SNS subscription confirmation (confirm it with its SubscribeURL)",
    "UnsubscribeConfirmation": "an SNS unsubscribe confirmation",
}


def parse_message(body: str, bucket: str) -> ParsedMessage:
    """The objects ``body`` announces in ``bucket``, what it is when it announces none, or why it is
    malformed (never an exception: one bad message must not fail the messages beside it)."""
    try:
        return _parse_value(_load(body, PoisonKind.NOT_JSON, "the body"), bucket, inside_sns=False)
    except MalformedMessage as exc:
        return ParsedMessage(poison=exc.kind, detail=exc.detail)


def _load(text: str, kind: PoisonKind, what: str) -> object:
    try:
        return json.loads(text)
    except ValueError:  # JSONDecodeError, and UnicodeDecodeError for bytes
        raise MalformedMessage(kind, f"{what} is not JSON: {_clip(text)}") from None


def _clip(value: object, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _json_type(value: object) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _dict(value: object) -> dict[str, object]:
    """``value`` if it is a JSON object, else an empty one (a missing field reads as absent)."""
    return value if isinstance(value, dict) else {}


def _parse_value(data: object, bucket: str, *, inside_sns: bool) -> ParsedMessage:
    where = "the SNS Message" if inside_sns else "the body"
    if not isinstance(data, dict):
        raise MalformedMessage(PoisonKind.NOT_AN_OBJECT, f"{where} is a JSON {_json_type(data)}")
    via = "sns" if inside_sns else "s3"
    if data.get("Event") == "s3:TestEvent":
        return ParsedMessage(via=via, ignored="an s3:TestEvent")
    if "Records" in data:
        return _records(data["Records"], bucket, via)
    if not inside_sns and "Type" in data and ("Message" in data or "TopicArn" in data):
        return _sns(data, bucket)
    if data.get("source") == "aws.s3":
        return _eventbridge(data, bucket, "sns" if inside_sns else "eventbridge")
    keys = ", ".join(sorted(str(k) for k in data)[:8])
    raise MalformedMessage(PoisonKind.UNKNOWN_SHAPE, f"{where} is a JSON object with keys {keys or 'none'}")


def _sns(data: dict[str, object], bucket: str) -> ParsedMessage:
    kind = data.get("Type")
    if isinstance(kind, str) and kind in SNS_IGNORED:
        return ParsedMessage(via="sns", ignored=SNS_IGNORED[kind])
    message = data.get("Message")
    if not isinstance(message, str):
        what = f"is a JSON {_json_type(message)}, not JSON text" if "Message" in data else "is missing"
        raise MalformedMessage(PoisonKind.SNS_MESSAGE_NOT_JSON, f"the SNS Message {what}")
    inner = _load(message, PoisonKind.SNS_MESSAGE_NOT_JSON, "the SNS Message")
    parsed = _parse_value(inner, bucket, inside_sns=True)
    return ParsedMessage(via="sns", created=parsed.created, ignored=parsed.ignored)


def _records(records: object, bucket: str, via: str) -> ParsedMessage:
    if not isinstance(records, list):
        raise MalformedMessage(PoisonKind.RECORDS_NOT_A_LIST, f"Records is a JSON {_json_type(records)}")
    created = [one for i, rec in enumerate(records) if (one := _record(rec, i, bucket)) is not None]
    if created:
        return ParsedMessage(via=via, created=tuple(created))
    return ParsedMessage(via=via, ignored="no ObjectCreated record" if records else "no records")


def _record(rec: object, i: int, bucket: str) -> ObjectCreated | None:
    """One record of a notification: the object it created, or None for another event."""
    where = f"Records[{i}]"
    if not isinstance(rec, dict):
        raise MalformedMessage(PoisonKind.RECORD_NOT_AN_OBJECT, f"{where} is a JSON {_json_type(rec)}")
    source = rec.get("eventSource", "aws:s3")
    if source != "aws:s3":
        raise MalformedMessage(
            PoisonKind.UNKNOWN_SHAPE, f"{where}.eventSource is {_clip(source)}, not aws:s3"
        )
    s3 = _dict(rec.get("s3"))
    name, obj = _dict(s3.get("bucket")).get("name"), _dict(s3.get("object"))
    key = obj.get("key")
    if not isinstance(name, str) or not name or not isinstance(key, str) or not key:
        missing = "s3.bucket.name" if not isinstance(name, str) or not name else "s3.object.key"
        raise MalformedMessage(PoisonKind.MISSING_BUCKET_OR_KEY, f"{where} has no {missing}")
    _same_bucket(name, bucket, where)
    event = rec.get("eventName")
    if not isinstance(event, str):
        raise MalformedMessage(PoisonKind.UNKNOWN_SHAPE, f"{where} has no eventName")
    if not event.startswith("ObjectCreated:"):
        return None  # a removal, a restore, a tagging…: nothing to run
    modified = _seconds(rec.get("eventTime"), f"{where}.eventTime")
    version = _version(where, obj.get("eTag"), obj.get("versionId"), obj.get("sequencer"))
    return ObjectCreated(key=unquote_plus(key), version=version, modified=modified)


def _eventbridge(data: dict[str, object], bucket: str, via: str) -> ParsedMessage:
    detail = data.get("detail")
    if not isinstance(detail, dict):
        raise MalformedMessage(PoisonKind.EVENTBRIDGE_MISSING_KEY, "the EventBridge event has no detail")
    name = _dict(detail.get("bucket")).get("name")
    if not isinstance(name, str) or not name:
        raise MalformedMessage(
            PoisonKind.MISSING_BUCKET_OR_KEY, "the EventBridge event has no detail.bucket.name"
        )
    _same_bucket(name, bucket, "the EventBridge event")
    detail_type = data.get("detail-type")
    if detail_type != "Object Created":
        return ParsedMessage(via=via, ignored=f"an EventBridge {_clip(detail_type)} event")
    obj = _dict(detail.get("object"))
    key = obj.get("key")
    if not isinstance(key, str) or not key:
        raise MalformedMessage(
            PoisonKind.EVENTBRIDGE_MISSING_KEY, "the EventBridge event has no detail.object.key"
        )
    modified = _seconds(data.get("time"), "time")
    etag = obj.get("etag", obj.get("eTag"))  # AWS documents "etag"; moto writes "eTag"
    version = _version("detail.object", etag, obj.get("version-id"), obj.get("sequencer"))
    return ParsedMessage(via=via, created=(ObjectCreated(key=key, version=version, modified=modified),))


def _same_bucket(name: str, bucket: str, where: str) -> None:
    if name != bucket:
        raise MalformedMessage(
            PoisonKind.OTHER_BUCKET, f"{where} is about bucket {_clip(name)}, not the drop bucket {bucket!r}"
        )


def _seconds(stamp: object, where: str) -> int:
    """Whole seconds of an ISO 8601 time (``2026-01-02T03:04:05.678Z``; no zone: UTC)."""
    if not isinstance(stamp, str):
        raise MalformedMessage(PoisonKind.BAD_EVENT_TIME, f"{where} is a JSON {_json_type(stamp)}")
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedMessage(PoisonKind.BAD_EVENT_TIME, f"{where} is {_clip(stamp)}") from None
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp())


def _version(where: str, *candidates: object) -> str:
    """The first non-empty of ETag, version id, sequencer (a run key needs a version); a version id
    ``"null"`` (an unversioned or suspended bucket) names no version."""
    for value in candidates:
        if isinstance(value, str) and value.strip('"') not in ("", "null"):
            return value.strip('"')
    raise MalformedMessage(PoisonKind.MISSING_VERSION, f"{where} has no ETag, version id or sequencer")


__all__ = ["MalformedMessage", "ObjectCreated", "ParsedMessage", "PoisonKind", "parse_message"]
