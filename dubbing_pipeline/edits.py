"""A person's corrections to one dub, stored with the media and applied on the next run.

``edits/<video_id>/<language>.json`` (local or S3, beside the media) holds::

    {
      "schema": "dubbing_pipeline.edits/1",
      "lines": {                       # by line id (stable: the transcript's ids, never positions)
        "s0004": {"text": "Hola, Ana.", "speaker": "S2", "skip": false}
      },
      "voices": {"S1": "female"},      # per speaker: one of the TTS engine's voices
      "glossary": {"Ana": "Ana"}       # this video's terms (DUBBING_GLOSSARY holds the catalog's)
    }

Every field is optional. ``text`` replaces the translation of that line; ``speaker`` gives the
line to another speaker (their voice); ``skip`` keeps the original speech in that line's slot
(no dubbed line, no lip-sync there). The whole file is validated before anything is stored
(``parse_edits``); an invalid edit names its line and field, and the stored edits stay as they
were. Applying edits (``apply_edits``) is a pure function of the translated lines.

The edits of a partition are the ``edits`` observable source asset; its data version is
``edits_version`` (a content hash of the normalised edits), so Dagster marks exactly the edited
``video × language`` partitions stale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dubbing_pipeline.errors import BadInputError
from dubbing_pipeline.hashing import cache_key
from dubbing_pipeline.ids import dub_file_key, some_ids
from dubbing_pipeline.translation.glossary import normalise_term

SCHEMA = "dubbing_pipeline.edits/1"
MAX_TEXT = 1000
LINE_FIELDS = ("text", "speaker", "skip")


@dataclass(frozen=True)
class LineEdit:
    """One line's corrections; ``None`` leaves that field as the pipeline made it."""

    text: str | None = None
    speaker: str | None = None
    skip: bool = False

    def is_empty(self) -> bool:
        return self.text is None and self.speaker is None and not self.skip

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.text is not None:
            out["text"] = self.text
        if self.speaker is not None:
            out["speaker"] = self.speaker
        if self.skip:
            out["skip"] = True
        return out


@dataclass(frozen=True)
class Edits:
    """All corrections of one ``video × language``."""

    lines: Mapping[str, LineEdit] = field(default_factory=dict)
    voices: Mapping[str, str] = field(default_factory=dict)
    glossary: Mapping[str, str] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (self.lines or self.voices or self.glossary)

    def to_json(self) -> dict[str, Any]:
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
    return LineEdit(text=text, speaker=speaker, skip=skip)


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
    return Edits(lines={k: v for k, v in lines.items() if not v.is_empty()}, voices=voices, glossary=glossary)


@dataclass(frozen=True)
class Dub:
    """What an edit is checked against: the dub's line ids, speaker ids and the engine's voices."""

    line_ids: Sequence[str]
    speakers: Sequence[str]
    voices: Sequence[str]


def check_edits(edits: Edits, dub: Dub) -> None:
    """An edit naming a line, speaker or voice this dub does not have is refused, naming it."""
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


def with_change(
    edits: Edits,
    *,
    line: str | None = None,
    text: str | None = None,
    speaker: str | None = None,
    skip: bool | None = None,
    voices: Mapping[str, str] | None = None,
    glossary: Mapping[str, str] | None = None,
) -> Edits:
    """``edits`` with one command's changes; ``skip=False`` un-skips a line. Returns a new value."""
    lines = dict(edits.lines)
    if text is not None or speaker is not None or skip is not None:
        if line is None:
            raise BadInputError("--text, --speaker and --skip need --line")
        before = lines.get(line, LineEdit())
        after = replace(
            before,
            text=_text(text, _where(line, "text")) if text is not None else before.text,
            speaker=_ident(speaker, _where(line, "speaker")) if speaker is not None else before.speaker,
            skip=before.skip if skip is None else skip,
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


def apply_edits(lines: Sequence[Mapping[str, Any]], edits: Edits) -> list[dict[str, Any]]:
    """The translated lines with the person's corrections. An edited line keeps its machine
    translation as ``machine_text``, is flagged ``edited`` and its status becomes ``edited``;
    a skipped line is flagged ``skip`` (its slot keeps the original speech)."""
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


def load_edits(storage: Any, video_id: str, language: str) -> Edits:
    """The stored edits of a partition (none stored: no edits). A stored file that is no longer
    valid (edited by hand) is a BadInputError naming its field."""
    key = edits_key(video_id, language)
    if not storage.exists(key):
        return NO_EDITS
    return parse_edits(storage.get_json(key))


def save_edits(storage: Any, video_id: str, language: str, edits: Edits) -> str:
    """Store the edits (validated by the caller); returns their version."""
    storage.put_json(edits_key(video_id, language), edits.to_json())
    return edits_version(edits)
