"""The ``translation`` stage's record: every line translated, then the person's edits and the
toxicity screen over it.

A field that only some records or lines carry (what an edit or the screen adds) is stored only
where it was given (:class:`GivenOnly`), so a record keeps the stored form it always had: an
unedited line has no ``skip`` key, rather than ``"skip": null``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from dubbing_pipeline.records import JsonObject, Record, StageRecord


class GivenOnly(Record):
    """A record whose ``GIVEN_ONLY`` fields are stored (and found by ``in``/``get``) only where set."""

    GIVEN_ONLY: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _given_only(self, handler: SerializerFunctionWrapHandler) -> Any:
        stored = handler(self)
        absent = {self._stored_name(name) for name in self.GIVEN_ONLY - self.model_fields_set}
        return {key: value for key, value in stored.items() if key not in absent}

    def __contains__(self, name: object) -> bool:
        if not super().__contains__(name):
            return False
        field = self._field_name(str(name))
        return field not in self.GIVEN_ONLY or field in self.model_fields_set

    @classmethod
    def _stored_name(cls, field: str) -> str:
        return cls.model_fields[field].alias or field


class TranslatedLine(GivenOnly):
    """One line: its source segment, its translation within its word budget, and how it went."""

    GIVEN_ONLY = frozenset(
        {"machine_text", "machine_speaker", "skip", "source_start", "source_end", "toxic_terms"}
    )

    id: str
    start: float
    end: float
    speaker: str
    source_text: str
    condensed_text: str | None  # the source without fillers, where it was over budget (``condense``)
    target_text: str
    budget: int  # words (``budget.word_budget``)
    attempts: int  # provider requests that included the line
    stricter_retry: bool  # a shorter translation was asked for
    status: str  # ok, over_budget, failed; edited (a person's text)
    flags: list[str]  # glossary, offensive, toxic; edited, speaker, skip, timing
    # a person's edits (``review.edits.apply_edits``)
    machine_text: str | None = None  # the translation an edited text replaced
    machine_speaker: str | None = None  # the speaker an edit replaced
    skip: bool | None = None  # True: the original speech stays
    source_start: float | None = None  # the source slot of a moved line
    source_end: float | None = None
    # the toxicity screen (``provenance.toxicity``), on a flagged line
    toxic_terms: list[str] | None = None


class ToxicityScreen(Record):
    """The toxicity screen's summary (``provenance.toxicity.screen_lines``)."""

    available: bool  # a term list exists for the target language
    term_list: str | None = Field(alias="list")  # the list's name and version
    flagged: list[str]  # ids of the flagged lines
    detail: str | None  # why nothing was screened


class TranslationRecord(StageRecord, GivenOnly):
    """The ``translation`` step's and stage's record: the lines of one video in one language.

    The step stores the machine translation; the stage adds the edits (a new key) and the screen.
    """

    GIVEN_ONLY = frozenset({"voices", "edits_version", "toxicity"})

    source_language: str
    target_language: str
    provider: JsonObject  # the translator's description (its cache-key part)
    lines: list[TranslatedLine]
    voices: dict[str, str] = Field(default_factory=dict)  # a person's voice per speaker
    edits_version: str | None = None  # the content hash of the edits applied
    toxicity: ToxicityScreen | None = None
