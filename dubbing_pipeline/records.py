"""Typed records between stages: what one stage hands the next, readable without running it.

Every stage's output (and every cached step's) is a :class:`StageRecord`: a frozen pydantic model
with a ``schema_version``, its ``cache_key`` and the sizes of the artifacts it stored. Records are
converted to JSON in two places only: the IO manager (``orchestration/io_manager.py``, by the
type a consumer asks for) and the report (``dubbed_video/publish.py``).

Why pydantic rather than dataclasses or TypedDicts: Dagster already ships it; it validates a
stored record on load (a record written by another schema fails loudly instead of travelling on
as a wrong dict) and it converts nested models to and from JSON without hand-written code, which a
dataclass would need for every nested list of segments, lines and windows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

JsonObject = dict[str, Any]
"""A record in its stored form (what ``json.loads`` returns): open by nature."""


class Record(BaseModel):
    """A typed, frozen value that travels as JSON; unknown fields are an error."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def to_json(self) -> JsonObject:
        """The stored form: plain JSON values, field aliases as the stored names."""
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        """The record of a stored form; a field that does not belong is a validation error."""
        return cls.model_validate(data)

    # Read access by field name, as the records' stored form allows: for code that walks a record
    # generically (lineage, previews). New code reads attributes.
    def __getitem__(self, name: str) -> Any:
        try:
            return getattr(self, self._field_name(name))
        except AttributeError:
            raise KeyError(name) from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._field_name(name) in type(self).model_fields

    def get(self, name: str, default: Any = None) -> Any:
        """The field ``name`` (its attribute or stored name), or ``default``."""
        if name not in self:
            return default
        return self[name]

    def keys(self) -> Iterator[str]:
        """The stored names of the fields."""
        return iter(self.to_json())

    @classmethod
    def _field_name(cls, name: str) -> str:
        for field, info in cls.model_fields.items():
            if info.alias == name:
                return field
        return name


class StageRecord(Record):
    """A stage's or a step's output: the key it is cached under, the sizes of its artifacts.

    ``SCHEMA_VERSION`` is bumped (with the stage's code version) when a field changes meaning or
    goes away; fields are only ever added otherwise.
    """

    SCHEMA_VERSION: ClassVar[int] = 1

    schema_version: int = 0  # filled with the class's SCHEMA_VERSION when not given (see _versioned)
    cache_key: str
    artifacts: dict[str, int] = Field(default_factory=dict, alias="_artifacts")

    @model_validator(mode="before")
    @classmethod
    def _versioned(cls, data: Any) -> Any:
        """A record built in code is of this schema; a stored one must say the same."""
        if isinstance(data, Mapping) and "schema_version" not in data:
            return {**data, "schema_version": cls.SCHEMA_VERSION}
        return data

    @model_validator(mode="after")
    def _same_schema(self) -> Self:
        if self.schema_version != type(self).SCHEMA_VERSION:
            raise ValueError(
                f"{type(self).__name__} is schema {type(self).SCHEMA_VERSION}, "
                f"the stored record says {self.schema_version}"
            )
        return self
