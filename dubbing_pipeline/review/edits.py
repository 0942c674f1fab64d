"""A person's corrections to one dub, stored with the media and applied on the next run.

``edits/<video_id>/<language>.json`` (local or S3, beside the media) holds::

    {
      "schema": "dubbing_pipeline.edits/1",
      "lines": {                       # by line id (stable: the transcript's ids, never positions)
        "s0004": {"text": "Hola, Ana.", "speaker": "S2", "skip": false},
        "s0007": {"start": 12.4, "end": 15.1}     # the line's slot, in seconds of the video
      },
      "voices": {"S1": "female"},      # per speaker: one of the TTS engine's voices
      "glossary": {"Ana": "Ana"}       # this video's terms (DUBBING_GLOSSARY holds the catalog's)
    }

Every field is optional. ``text`` replaces the translation of that line; ``speaker`` gives the
line to another speaker (their voice); ``skip`` keeps the original speech in that line's slot
(no dubbed line, no lip-sync there); ``start``/``end`` move the line's slot (either or both).
A moved line keeps its voice: the speaking rate is planned from the slot the source speaker
spoke in, so a timing edit fits the stored voice to the new slot (placed, stretched up to the cap,
cut at the end if it still overflows) and synthesises nothing. The whole file is validated
before anything is stored (``parse_edits``); an invalid edit names its line and field, and the
stored edits stay as they
were. A change is stored with a condition (``update_edits``): read, change, write only if nobody
wrote in between, else read again and redo it; two ``edit`` commands at once both land. Applying
edits (``apply_edits``) is a pure function of the translated lines.

The edits of a partition are the ``edits`` observable source asset; its data version is
``edits_version`` (a content hash of the normalised edits), so Dagster marks exactly the edited
``video × language`` partitions stale.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dubbing_pipeline.common.hashing import cache_key
from dubbing_pipeline.common.ids import dub_file_key, some_ids
from dubbing_pipeline.errors import BadInputError
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.storage.base import MediaStorage, update_json
from dubbing_pipeline.translation.glossary import GlossaryError, make_glossary, normalise_term

SCHEMA = "dubbing_pipeline.edits/1"
MAX_TEXT = 1000
LINE_FIELDS = ("text", "speaker", "skip", "start", "end")
MIN_SLOT = 0.2
"""The shortest slot (seconds) a timing edit may give a line."""
MAX_SECONDS = 86400.0


@dataclass(frozen=True)
class LineEdit:
    """One line's corrections; ``None`` leaves that field as the pipeline made it."""

    text: str | None = None
    speaker: str | None = None
    skip: bool = False
    start: float | None = None  # the slot's new start (seconds); None: where the source speaks
    end: float | None = None

    def is_empty(self) -> bool:
        return self.text is None and self.speaker is None and not self.skip and not self.timed()

    def timed(self) -> bool:
        return self.start is not None or self.end is not None

    def to_json(self) -> JsonObject:
        out: JsonObject = {}
        if self.text is not None:
            out["text"] = self.text
        if self.speaker is not None:
            out["speaker"] = self.speaker
        if self.skip:
            out["skip"] = True
        if self.start is not None:
            out["start"] = self.start
        if self.end is not None:
            out["end"] = self.end
        return out


@dataclass(frozen=True)
class Edits:
    """All corrections of one ``video × language``."""

    lines: Mapping[str, LineEdit] = field(default_factory=dict)
    voices: Mapping[str, str] = field(default_factory=dict)
    glossary: Mapping[str, str] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (self.lines or self.voices or self.glossary)

    def to_json(self) -> JsonObject:
        """The stored form: sorted keys, empty line edits dropped (the same edits, the same bytes)."""
        return {
            "schema": SCHEMA,
            "lines": {k: self.lines[k].to_json() for k in sorted(self.lines) if not self.lines[k].is_empty()},
            "voices": {k: self.voices[k] for k in sorted(self.voices)},
            "glossary": {k: self.glossary[k] for k in sorted(self.glossary)},
        }


NO_EDITS = Edits()


def edits_version(edits: Edits) -> str:
    """The content hash of the normalised edits: the ``edits`` asset's data version."""
    return cache_key("edits", edits=edits.to_json())


def _where(line: str | None, name: str) -> str:
    return f"edit of line {line}, field {name!r}" if line else f"edit field {name!r}"


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise BadInputError(f"{where}: must be text, got {type(value).__name__}")
    text = normalise_term(value)  # NFC, single spaces: a re-typed identical text is no change
    if not text:
        raise BadInputError(f"{where}: is empty (use skip to keep the original speech)")
    if len(text) > MAX_TEXT:
        raise BadInputError(f"{where}: {len(text)} characters, at most {MAX_TEXT}")
    return text


def _seconds(value: Any, where: str) -> float:
    """A time in seconds, normalised to the millisecond (0.4 and 0.4000001 are one edit)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInputError(f"{where}: must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or not 0.0 <= value <= MAX_SECONDS:
        raise BadInputError(f"{where}: {value} is not a time in the video")
    return round(float(value), 3)


def _ident(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadInputError(f"{where}: must be a non-empty name")
    return value.strip()


def parse_line_edit(line: str, raw: Any) -> LineEdit:
    if not isinstance(raw, Mapping):
        raise BadInputError(f"edit of line {line}: must be an object with {', '.join(LINE_FIELDS)}")
    unknown = sorted(set(raw) - set(LINE_FIELDS))
    if unknown:
        raise BadInputError(f"{_where(line, unknown[0])}: unknown (fields: {', '.join(LINE_FIELDS)})")
    text = _text(raw["text"], _where(line, "text")) if raw.get("text") is not None else None
    speaker = _ident(raw["speaker"], _where(line, "speaker")) if raw.get("speaker") is not None else None
    skip = raw.get("skip", False)
    if not isinstance(skip, bool):
        raise BadInputError(f"{_where(line, 'skip')}: must be true or false")
    start, end = (
        _seconds(raw[name], _where(line, name)) if raw.get(name) is not None else None
        for name in ("start", "end")
    )
    if start is not None and end is not None and end - start < MIN_SLOT:
        raise BadInputError(f"{_where(line, 'end')}: {end} s is less than {MIN_SLOT} s after start {start} s")
    return LineEdit(text=text, speaker=speaker, skip=skip, start=start, end=end)


def parse_edits(raw: Any) -> Edits:
    """Validated edits from their stored JSON form; BadInputError names the first wrong field."""
    if not isinstance(raw, Mapping):
        raise BadInputError("edits: must be a JSON object")
    if raw.get("schema", SCHEMA) != SCHEMA:
        raise BadInputError(f"edits: schema {raw.get('schema')!r} is not {SCHEMA!r}")
    unknown = sorted(set(raw) - {"schema", "lines", "voices", "glossary"})
    if unknown:
        raise BadInputError(f"edits: unknown field {unknown[0]!r}")
    sections: dict[str, Mapping[str, Any]] = {}
    for name in ("lines", "voices", "glossary"):
        value = raw.get(name, {})
        if not isinstance(value, Mapping):
            raise BadInputError(f"edits: {name!r} must be an object")
        sections[name] = value
    lines = {str(k): parse_line_edit(str(k), v) for k, v in sections["lines"].items()}
    voices = {
        _ident(k, _where(None, "voices")): _ident(v, f"voice of speaker {k}")
        for k, v in sections["voices"].items()
    }
    glossary = {
        _text(k, _where(None, "glossary")): _text(v, f"glossary term {k!r}")
        for k, v in sections["glossary"].items()
    }
    check_glossary(glossary)
    return Edits(lines={k: v for k, v in lines.items() if not v.is_empty()}, voices=voices, glossary=glossary)


@dataclass(frozen=True)
class Dub:
    """What an edit is checked against: the dub's line ids, speaker ids and the engine's voices;
    for timing edits, each line's source slot (``id → (start, end)``) and the video's duration."""

    line_ids: Sequence[str]
    speakers: Sequence[str]
    voices: Sequence[str]
    slots: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    duration: float | None = None


def check_glossary(glossary: Mapping[str, str]) -> None:
    """This video's terms must make a glossary the translation can use (``make_glossary``): two
    terms whose sources differ only in case are one term, and it cannot have two targets."""
    try:
        make_glossary(glossary)
    except GlossaryError as exc:
        first: dict[str, tuple[str, str]] = {}
        for source, target in sorted(glossary.items()):
            other, other_target = first.setdefault(source.casefold(), (source, target))
            if normalise_term(other_target) != normalise_term(target):
                raise BadInputError(
                    f"{_where(None, 'glossary')}: terms {other!r} → {other_target!r} and {source!r} → "
                    f"{target!r} differ only in case: one term with two targets (to change a term, "
                    "give its source as stored)"
                ) from exc
        raise BadInputError(f"{_where(None, 'glossary')}: {exc}") from exc


def check_edits(edits: Edits, dub: Dub) -> None:
    """An edit naming a line, speaker or voice this dub does not have is refused, naming it; so is
    a glossary the translation could not use (``check_glossary``)."""
    check_glossary(edits.glossary)
    for line, change in sorted(edits.lines.items()):
        if line not in dub.line_ids:
            raise BadInputError(
                f"edit of line {line}: not a line of this dub (its lines: {some_ids(dub.line_ids)})"
            )
        if change.speaker is not None and change.speaker not in dub.speakers:
            raise BadInputError(
                f"{_where(line, 'speaker')}: {change.speaker!r} is not a speaker of this video "
                f"({', '.join(dub.speakers)})"
            )
    check_timing(edits, dub.slots, dub.duration)
    for speaker, voice in sorted(edits.voices.items()):
        if speaker not in dub.speakers:
            raise BadInputError(
                f"voice of speaker {speaker}: not a speaker of this video ({', '.join(dub.speakers)})"
            )
        if voice not in dub.voices:
            raise BadInputError(
                f"voice of speaker {speaker}: {voice!r} is not a voice of the engine "
                f"({', '.join(dub.voices)})"
            )


SOURCE_SLOT_KEYS = ("source_start", "source_end")
"""A moved line's fields for where the source speaks it (``apply_edits``)."""


def source_slot(line: Mapping[str, Any]) -> tuple[float, float]:
    """Where the source speaker says a line: ``source_start``/``source_end`` for a line a timing
    edit moved, else its own ``start``/``end``."""
    start, end = (line.get(key) for key in SOURCE_SLOT_KEYS)
    return (
        float(line["start"] if start is None else start),
        float(line["end"] if end is None else end),
    )


def slot_of(source: tuple[float, float], change: LineEdit | None) -> tuple[float, float]:
    """A line's slot once edited: its source slot with the edited start and end over it."""
    if change is None:
        return source
    return (
        source[0] if change.start is None else change.start,
        source[1] if change.end is None else change.end,
    )


def check_timing(
    edits: Edits, source_slots: Mapping[str, tuple[float, float]], duration: float | None = None
) -> None:
    """A moved slot stays in the video (``duration``, when known), at least ``MIN_SLOT`` long, and
    between its neighbours (lines keep their order and never overlap); a skipped line keeps the
    source's slot. ``source_slots``: each line's source slot by id."""
    timed = sorted(k for k, v in edits.lines.items() if v.timed())
    if not timed:
        return
    order = sorted(source_slots, key=lambda k: (source_slots[k][0], k))
    slots = [slot_of(source_slots[k], edits.lines.get(k)) for k in order]
    for line in timed:
        change = edits.lines[line]
        field_name = "start" if change.start is not None else "end"
        if line not in source_slots:
            raise BadInputError(f"{_where(line, field_name)}: the dub has no slot for this line")
        if change.skip:
            raise BadInputError(
                f"{_where(line, field_name)}: a skipped line keeps the original speech where it was"
            )
        i = order.index(line)
        start, end = slots[i]
        if end - start < MIN_SLOT:
            raise BadInputError(
                f"{_where(line, field_name)}: the slot {start:.3f}–{end:.3f} s is shorter than {MIN_SLOT} s"
            )
        if duration is not None and end > duration:
            raise BadInputError(
                f"{_where(line, 'end')}: {end:.3f} s is after the video ends ({duration:.3f} s)"
            )
        if i > 0 and start < slots[i - 1][1]:
            before = f"line {order[i - 1]} ends ({slots[i - 1][1]:.3f} s)"
            raise BadInputError(f"{_where(line, 'start')}: {start:.3f} s is before {before}")
        if i + 1 < len(order) and end > slots[i + 1][0]:
            after = f"line {order[i + 1]} starts ({slots[i + 1][0]:.3f} s)"
            raise BadInputError(f"{_where(line, 'end')}: {end:.3f} s is after {after}")


def with_change(
    edits: Edits,
    *,
    line: str | None = None,
    text: str | None = None,
    speaker: str | None = None,
    skip: bool | None = None,
    start: float | None = None,
    end: float | None = None,
    source_timing: bool = False,
    voices: Mapping[str, str] | None = None,
    glossary: Mapping[str, str] | None = None,
) -> Edits:
    """``edits`` with one command's changes; ``skip=False`` un-skips a line, ``source_timing``
    puts it back in the source's slot; a glossary term with the source of a stored one exactly
    replaces it. Returns a new value."""
    lines = dict(edits.lines)
    changes = (text, speaker, skip, start, end)
    if any(c is not None for c in changes) or source_timing:
        if line is None:
            raise BadInputError("--text, --speaker, --skip, --start and --end need --line")
        before = lines.get(line, LineEdit())
        if source_timing:
            before = replace(before, start=None, end=None)
        after = replace(
            before,
            text=_text(text, _where(line, "text")) if text is not None else before.text,
            speaker=_ident(speaker, _where(line, "speaker")) if speaker is not None else before.speaker,
            skip=before.skip if skip is None else skip,
            start=_seconds(start, _where(line, "start")) if start is not None else before.start,
            end=_seconds(end, _where(line, "end")) if end is not None else before.end,
        )
        if after.is_empty():
            lines.pop(line, None)
        else:
            lines[line] = after
    new_voices = {
        **edits.voices,
        **{_ident(k, "--voice"): _ident(v, f"voice of speaker {k}") for k, v in (voices or {}).items()},
    }
    new_glossary = {
        **edits.glossary,
        **{_text(k, "--glossary"): _text(v, f"glossary term {k!r}") for k, v in (glossary or {}).items()},
    }
    return Edits(lines=lines, voices=new_voices, glossary=new_glossary)


def apply_edits(lines: Sequence[Mapping[str, Any]], edits: Edits) -> list[JsonObject]:
    """The translated lines with the person's corrections. An edited line keeps its machine
    translation as ``machine_text``, is flagged ``edited`` and its status becomes ``edited``;
    a skipped line is flagged ``skip`` (its slot keeps the original speech); a moved line is
    flagged ``timing``, keeps its source slot as ``source_start``/``source_end`` and gets the
    edited one as ``start``/``end``."""
    out = []
    for ln in lines:
        line = dict(ln)
        change = edits.lines.get(str(line["id"]))
        if change is not None:
            flags = list(line.get("flags", []))
            if change.text is not None and change.text != line["target_text"]:
                line["machine_text"] = line["target_text"]
                line["target_text"] = change.text
                line["status"] = "edited"
                flags.append("edited")
            if change.speaker is not None and change.speaker != line["speaker"]:
                line["machine_speaker"] = line["speaker"]
                line["speaker"] = change.speaker
                flags.append("speaker")
            if change.skip:
                line["skip"] = True
                flags.append("skip")
            moved = slot_of((float(line["start"]), float(line["end"])), change) if change.timed() else None
            if moved and not change.skip and moved != (line["start"], line["end"]):
                line["source_start"], line["source_end"] = line["start"], line["end"]  # SOURCE_SLOT_KEYS
                line["start"], line["end"] = moved
                flags.append("timing")
            line["flags"] = flags
        out.append(line)
    return out


def is_edited(line: Mapping[str, Any]) -> bool:
    """A line whose text a person wrote: spoken as written, never re-translated or repaired."""
    return "edited" in line.get("flags", ())


def split_pairs(values: Sequence[str], option: str) -> dict[str, str]:
    """``["S1=female", "Ana=Ana"]`` → ``{"S1": "female", "Ana": "Ana"}``; a value without ``=`` is refused."""
    out: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip() or not rest.strip():
            raise BadInputError(f"{option} {value!r}: expected NAME=VALUE")
        out[key.strip()] = rest.strip()
    return out


# --- stored with the media ------------------------------------------------------------------------


def edits_key(video_id: str, language: str) -> str:
    return dub_file_key("edits", video_id, language)


def load_edits(storage: MediaStorage, video_id: str, language: str) -> Edits:
    """The stored edits of a partition (none stored: no edits). A stored file that is no longer
    valid (edited by hand) is a BadInputError naming its field."""
    key = edits_key(video_id, language)
    if not storage.exists(key):
        return NO_EDITS
    return parse_edits(storage.get_json(key))


def update_edits(
    storage: MediaStorage,
    video_id: str,
    language: str,
    change: Callable[[Edits], Edits],
    check: Callable[[Edits], None] | None = None,
) -> tuple[Edits, Edits, str]:
    """Apply ``change`` to the stored edits and store the result with a condition: only if nobody
    stored other edits since they were read; if someone did, ``change`` is applied again to theirs
    (``storage.update_json``), so concurrent edits all land. ``check`` validates the whole result
    (against the dub) before anything is stored; its error stores nothing. The same edits as
    stored store nothing. Returns ``(before, after, version)``: the edits changed, the edits
    stored now and their version (``edits_version``)."""
    seen: dict[str, Edits] = {}

    def step(raw: Any) -> Any:
        before = NO_EDITS if raw is None else parse_edits(raw)
        after = parse_edits(change(before).to_json())  # as stored, and what is stored always loads
        seen.update(before=before, after=after)
        if after == before:
            return None
        if check is not None:
            check(after)
        return after.to_json()

    key = edits_key(video_id, language)
    update_json(storage, key, step, what=f"edits of {video_id} × {language}", action="edit")
    return seen["before"], seen["after"], edits_version(seen["after"])


def save_edits(storage: MediaStorage, video_id: str, language: str, edits: Edits) -> str:
    """Store ``edits`` in place of whatever is stored (tests, tools; ``update_edits`` for a
    change); returns their version."""
    return update_edits(storage, video_id, language, lambda _stored: edits)[2]
