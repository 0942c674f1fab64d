"""Isochrony: fit every dubbed line into the time its source line had.

A dubbed line always starts where its source line started (``dub_start == slot_start``)
and must end before the next line begins. Its *natural* duration is the length of the
synthesized audio at speaking rate 1.0 (silence trimmed). The policy, in order:

1. **fits** — the natural audio ends inside its own slot (``slot_end``).
2. **borrowed** — it ends after ``slot_end`` but before the *limit*: the silence after the
   slot is borrowed up to ``next_start − breath`` (0.15 s of breath before the next line).
3. **rate** — the engine speaks faster, up to ``max_rate`` (1.2×), where it has a
   speaking-rate parameter (``supports_rate``). The rate is chosen to end exactly at the
   limit.
4. **stretch** — Rubber Band time-compresses the audio, up to ``max_stretch`` (1.1×), on
   top of the rate cap (so at most 1.2 × 1.1 = 1.32× overall).
5. **retranslate** — even at both caps it overflows: the caller asks once for a shorter
   translation (a target duration is ``capacity(...)``), synthesizes it and plans again
   with ``retranslated=True``.
6. **trimmed** — the final fallback, after the one retranslation (or at once where no
   text could fit: a zero budget): both caps are applied and the audio is cut at the
   limit with a short fade-out (``render_fit``). ``overflow`` says how many seconds were
   cut. Lines never overlap the next line.

Starting early
--------------
A line that overflows even at both caps may start up to ``MAX_LEAD`` (50 ms) before its slot,
into the silence before it (``room_before``: never past the latest end the previous line may
have), just as early as it needs and no earlier; ``lead`` records how far. Every other line
starts exactly at its slot.

The limit
---------
``limit = max(next_start − breath, min(slot_end, next_start))``, and never before
``slot_start``. A line may always use its own slot, even when the next line follows with
less than a breath (the source had no breath there either, e.g. a slot shorter than the
breath gap right before the next line), but never past ``next_start``. When the next line
starts at or before this one's start (overlapping speakers) the budget is zero.
For the last line, pass the video's end as ``next_start`` (the breath is kept there too).
Invariants (property-tested): ``dub_start == slot_start − lead`` with
``0 <= lead <= MAX_LEAD``; ``dub_end <= limit``, hence
``dub_end <= next_start − breath`` unless the slot itself reaches closer to the next line,
and ``dub_end <= next_start`` whenever ``slot_start <= next_start``; ``1 <= rate <=
max_rate`` (exactly 1 without ``supports_rate``); ``1 <= stretch <= max_stretch``; for every
status but the failed ones, ``natural / (rate × stretch) == dub_end − dub_start``.

Rate is not exact
-----------------
An engine asked for rate ``r`` does not produce exactly ``natural / r`` seconds (espeak-ng
rounds words-per-minute to an integer; neural engines pause differently). So after
synthesizing at ``plan.rate`` (only when ``plan.rate != 1``) the caller measures the real
duration — the trimmed audio's ``len(samples) / sample_rate`` — and calls
``replan_after_synthesis(..., actual, rate=plan.rate)``: that keeps the rate and computes the
stretch exactly from the measured duration (``stretch = actual / budget`` when it overflows),
with the same caps and the same retranslate/trim rules. ``render_fit`` then applies the
stretch and the final cut.

``failure_gate`` fails a partition when more than ``limit`` (20 %) of its lines are
``failed``: silent, because they had no translation or could not be synthesised. A ``trimmed``
line was spoken (cut by a few hundredths before the next line) and does not count; the
scorecard reports trims separately.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Final, Literal

import numpy as np
import pyrubberband
from numpy.typing import NDArray

FitStatus = Literal["fits", "borrowed", "rate", "stretch", "retranslate", "trimmed"]
STATUSES: Final[tuple[str, ...]] = ("fits", "borrowed", "rate", "stretch", "retranslate", "trimmed")
FAILED_STATUSES: Final[frozenset[str]] = frozenset({"retranslate", "trimmed"})
SILENT: Final = "failed"  # a dubbed line with no audio: no translation, or no synthesis
ORIGINAL: Final = "original"  # a line a person chose to leave undubbed (edits): the source speech stays
LINE_STATUSES: Final[tuple[str, ...]] = (*STATUSES, SILENT, ORIGINAL)
MAX_RATE: Final = 1.2
MAX_STRETCH: Final = 1.1
BREATH: Final = 0.15
FAILURE_LIMIT: Final = 0.2
EPS: Final = 1e-9
"""Seconds of float slack: audio that overruns the limit by less than this counts as fitting."""
RATIO_EPS: Final = 1e-12
"""Relative float slack on the caps: a need of 1.2000000000000002 is served by the 1.2 cap."""
FADE: Final = 0.05
"""Seconds of fade-out where ``render_fit`` cuts a trimmed line."""
MAX_LEAD: Final = 0.05
"""Seconds a line may start early, into the silence before it, when it fits no other way."""


@dataclass(frozen=True)
class FitPlan:
    """How one line is placed: its rate, stretch and final time span.

    ``rate`` is the engine's speaking rate (>= 1, faster), ``stretch`` the Rubber Band
    tempo factor (>= 1: output duration = input / stretch). ``borrowed`` is how far
    ``dub_end`` goes past the source slot's end; ``overflow`` the seconds that still did
    not fit after both caps (0 unless ``status`` is ``retranslate`` or ``trimmed``); ``lead``
    how far ``dub_start`` was moved before the slot's start (at most ``MAX_LEAD``; 0 unless the
    line did not fit at both caps without it).
    """

    rate: float
    stretch: float
    dub_start: float
    dub_end: float
    borrowed: float
    status: str
    overflow: float
    lead: float = 0.0

    @property
    def duration(self) -> float:
        return self.dub_end - self.dub_start

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES

    @property
    def needs_resynthesis(self) -> bool:
        """Whether the line must be synthesized again at ``rate`` (then ``replan_after_synthesis``)."""
        return self.rate != 1.0

    def to_dict(self) -> dict[str, float | str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FitPlan:
        status = str(data["status"])
        if status not in STATUSES:
            raise ValueError(f"unknown fit status {status!r}")
        return cls(
            rate=float(data["rate"]),
            stretch=float(data["stretch"]),
            dub_start=float(data["dub_start"]),
            dub_end=float(data["dub_end"]),
            borrowed=float(data["borrowed"]),
            status=status,
            overflow=float(data["overflow"]),
            lead=float(data.get("lead", 0.0)),
        )


# --------------------------------------------------------------------------- validation


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def _geometry(
    slot_start: float, slot_end: float, next_start: float, breath: float
) -> tuple[float, float, float]:
    start = _finite("slot_start", slot_start)
    end = _finite("slot_end", slot_end)
    nxt = _finite("next_start", next_start)
    gap = _finite("breath", breath)
    if end < start:
        raise ValueError(f"slot_end {end} is before slot_start {start}")
    if gap < 0:
        raise ValueError(f"breath must be >= 0, got {gap}")
    return start, end, nxt


def _cap(name: str, value: float) -> float:
    out = _finite(name, value)
    if out < 1.0:
        raise ValueError(f"{name} must be >= 1, got {out}")
    return out


def _duration(name: str, value: float) -> float:
    out = _finite(name, value)
    if out < 0:
        raise ValueError(f"{name} must be >= 0, got {out}")
    return out


# --------------------------------------------------------------------------- geometry


def fit_limit(slot_start: float, slot_end: float, next_start: float, *, breath: float = BREATH) -> float:
    """The latest time the line may end (see the module docstring); never before ``slot_start``."""
    start, end, nxt = _geometry(slot_start, slot_end, next_start, breath)
    return _limit(start, end, nxt, float(breath))


def _limit(start: float, end: float, nxt: float, breath: float) -> float:
    return max(start, nxt - breath, min(end, nxt))


def capacity(
    slot_start: float,
    slot_end: float,
    next_start: float,
    *,
    supports_rate: bool,
    max_rate: float = MAX_RATE,
    max_stretch: float = MAX_STRETCH,
    breath: float = BREATH,
) -> float:
    """The longest natural duration (seconds at rate 1.0) that fits without trimming.

    A retranslation should aim at most at this (the rate is approximate, so aim lower).
    """
    start, end, nxt = _geometry(slot_start, slot_end, next_start, breath)
    rate_cap = _cap("max_rate", max_rate) if supports_rate else 1.0
    stretch_cap = _cap("max_stretch", max_stretch)
    return (_limit(start, end, nxt, float(breath)) - start) * rate_cap * stretch_cap


# --------------------------------------------------------------------------- planning


def _place(
    start: float,
    slot_end: float,
    limit: float,
    natural: float,
    *,
    rate: float,
    rate_cap: float,
    stretch_cap: float,
    retranslated: bool,
    lead: float = 0.0,
) -> FitPlan:
    """Place ``natural`` seconds (already spoken at ``rate``) with extra rate up to ``rate_cap``.

    A line that overflows both caps at ``start`` starts up to ``lead`` seconds earlier: just as
    early as it needs to fit at both caps, or the whole ``lead``.
    """
    if lead > 0.0 and limit > start:

        def at(begin: float) -> FitPlan:
            return _place(
                begin, slot_end, limit, natural, rate=rate, rate_cap=rate_cap, stretch_cap=stretch_cap,
                retranslated=retranslated,
            )  # fmt: skip

        plan = at(start)
        if not plan.failed:
            return plan
        shortest = natural / (rate_cap * stretch_cap)  # its duration at both caps
        early = min(start, max(start - lead, limit - shortest))
        return replace(at(early), lead=start - early)
    end = start + natural
    if end <= limit + EPS:  # a nanosecond over (float rounding of a re-measured rate) still fits
        end = min(end, limit)
        status: FitStatus = "rate" if rate > 1.0 else ("fits" if end <= slot_end else "borrowed")
        return FitPlan(rate, 1.0, start, end, max(0.0, end - slot_end), status, 0.0)
    budget = limit - start
    if budget <= 0.0:
        # nothing can be placed: no shorter text would fit either
        return FitPlan(rate, 1.0, start, start, 0.0, "trimmed", natural)
    need = natural / budget  # > 1: the compression still needed
    borrowed = max(0.0, limit - slot_end)
    if need <= rate_cap * (1.0 + RATIO_EPS):
        return FitPlan(rate * min(need, rate_cap), 1.0, start, limit, borrowed, "rate", 0.0)
    new_rate = rate * rate_cap
    stretch = max(1.0, need / rate_cap)
    if stretch <= stretch_cap * (1.0 + RATIO_EPS):
        return FitPlan(new_rate, min(stretch, stretch_cap), start, limit, borrowed, "stretch", 0.0)
    overflow = natural / (rate_cap * stretch_cap) - budget
    status = "trimmed" if retranslated else "retranslate"
    return FitPlan(new_rate, stretch_cap, start, limit, borrowed, status, overflow)


def plan_fit(
    slot_start: float,
    slot_end: float,
    next_start: float,
    natural: float,
    *,
    supports_rate: bool,
    max_rate: float = MAX_RATE,
    max_stretch: float = MAX_STRETCH,
    breath: float = BREATH,
    retranslated: bool = False,
    room_before: float = 0.0,
) -> FitPlan:
    """Plan one line from its natural duration (seconds of trimmed audio at rate 1.0).

    ``retranslated``: this text is already the one shorter retranslation, so an overflow
    ends as ``trimmed`` instead of ``retranslate``. ``room_before``: free seconds before the
    slot (see ``room_before``); a line that overflows both caps may start up to ``MAX_LEAD``
    of them early.
    """
    start, end, nxt = _geometry(slot_start, slot_end, next_start, breath)
    spoken = _duration("natural", natural)
    rate_cap = _cap("max_rate", max_rate) if supports_rate else 1.0
    stretch_cap = _cap("max_stretch", max_stretch)
    limit = _limit(start, end, nxt, float(breath))
    return _place(
        start,
        end,
        limit,
        spoken,
        rate=1.0,
        rate_cap=rate_cap,
        stretch_cap=stretch_cap,
        retranslated=retranslated,
        lead=min(_duration("room_before", room_before), MAX_LEAD),
    )


def replan_after_synthesis(
    slot_start: float,
    slot_end: float,
    next_start: float,
    actual: float,
    *,
    rate: float,
    max_stretch: float = MAX_STRETCH,
    breath: float = BREATH,
    retranslated: bool = False,
    room_before: float = 0.0,
) -> FitPlan:
    """Re-plan with the measured duration ``actual`` of the audio synthesized at ``rate``.

    The rate is kept as synthesized (no further rate change: that would need another
    synthesis); the stretch is computed exactly from ``actual``, capped at ``max_stretch``,
    and an overflow beyond it is ``retranslate`` / ``trimmed`` as in ``plan_fit``.
    """
    start, end, nxt = _geometry(slot_start, slot_end, next_start, breath)
    spoken = _duration("actual", actual)
    used = _cap("rate", rate)
    stretch_cap = _cap("max_stretch", max_stretch)
    limit = _limit(start, end, nxt, float(breath))
    lead = min(_duration("room_before", room_before), MAX_LEAD)
    return _place(
        start, end, limit, spoken, rate=used, rate_cap=1.0, stretch_cap=stretch_cap,
        retranslated=retranslated, lead=lead,
    )  # fmt: skip


def room_before(
    previous_start: float, previous_end: float, slot_start: float, *, breath: float = BREATH
) -> float:
    """Free seconds before a slot: from the latest end the previous line may have (its
    ``fit_limit``, which keeps a breath before this slot) to this slot's start; for the first
    line (``previous_start`` < 0) everything since the start of the video."""
    start = _finite("slot_start", slot_start)
    if previous_start < 0:
        return max(0.0, start)
    return max(0.0, start - fit_limit(previous_start, previous_end, start, breath=breath))


# --------------------------------------------------------------------------- partition gate


def failure_rate(statuses: Iterable[str]) -> float:
    """Fraction of lines whose final status is ``failed`` (silent), 0.0 for none."""
    items = list(statuses)
    for status in items:
        if status not in LINE_STATUSES:
            raise ValueError(f"unknown line status {status!r}")
    if not items:
        return 0.0
    return sum(1 for s in items if s == SILENT) / len(items)


def failure_gate(statuses: Iterable[str], limit: float = FAILURE_LIMIT) -> bool:
    """True when the partition fails: strictly more than ``limit`` of its lines failed to fit."""
    bound = _finite("limit", limit)
    if not 0.0 <= bound <= 1.0:
        raise ValueError(f"limit must be within [0, 1], got {bound}")
    return failure_rate(statuses) > bound


# --------------------------------------------------------------------------- audio


def trim_to(
    audio: NDArray[np.float32], sr: int, seconds: float, *, fade: float = FADE
) -> NDArray[np.float32]:
    """At most ``seconds`` of ``audio``; where samples are cut, the last ``fade`` seconds fade out."""
    data = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
    keep = max(0, math.floor(_duration("seconds", seconds) * sr + 1e-6))
    if data.size <= keep:
        return data
    out = data[:keep].copy()
    ramp = min(keep, round(_duration("fade", fade) * sr))
    if ramp > 0:
        out[keep - ramp :] *= np.linspace(1.0, 0.0, ramp, dtype=np.float32)
    return out


def render_fit(
    audio: NDArray[np.float32], sr: int, plan: FitPlan, *, fade: float = FADE
) -> NDArray[np.float32]:
    """Apply a plan to audio synthesized at ``plan.rate``: Rubber Band stretch, then the cut.

    The result lasts at most ``plan.duration`` (a few samples of Rubber Band rounding, or a
    trimmed line's overflow, are cut with a ``fade``-second fade-out).
    """
    data = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
    if plan.stretch > 1.0 and data.size > 0:
        stretched = pyrubberband.time_stretch(data, sr, plan.stretch)
        data = np.ascontiguousarray(stretched, dtype=np.float32).reshape(-1)
    # an exact fit may lose a sample or two to rounding: fade only what a trim really cuts
    cut_fade = fade if plan.status == "trimmed" else min(fade, 0.005)
    return trim_to(data, sr, plan.duration, fade=cut_fade)


PAUSE_FLOOR_DB: Final = -40.0
"""A 10 ms frame this far below the take's peak RMS is silent, for ``tighten_pauses``."""
MAX_PAUSE: Final = 0.15
"""Seconds of an inner pause ``tighten_pauses`` keeps (a short breath between clauses)."""


def tighten_pauses(
    audio: NDArray[np.float32], sr: int, *, max_pause: float = MAX_PAUSE, floor_db: float = PAUSE_FLOOR_DB
) -> NDArray[np.float32]:
    """``audio`` with every inner pause longer than ``max_pause`` shortened to ``max_pause``.

    A pause is a run of 10 ms frames whose RMS is ``floor_db`` below the loudest frame, with
    sound on both sides; its middle is cut out, so the words on each side and the decay into the
    pause are untouched. Leading and trailing silence are left as they are (engines trim them).
    """
    data = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
    frame = max(1, int(sr * 0.01))
    n = data.size // frame
    if n < 3:
        return data
    frames = data[: n * frame].reshape(n, frame).astype(np.float64)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    peak = float(np.max(rms))
    if peak <= 0.0:
        return data
    silent = rms < peak * 10.0 ** (floor_db / 20.0)
    keep = max(1, round(_duration("max_pause", max_pause) / 0.01))
    pieces: list[NDArray[np.float32]] = []
    cursor = 0  # in samples
    i = 0
    while i < n:
        if not silent[i]:
            i += 1
            continue
        j = i
        while j < n and silent[j]:
            j += 1
        inner = i > 0 and j < n
        if inner and j - i > keep:
            head = i + keep // 2  # frames kept after the sound before the pause
            tail = j - (keep - keep // 2)  # frames kept before the sound after it
            pieces.append(data[cursor : head * frame])
            cursor = tail * frame
        i = j
    if not pieces:
        return data
    pieces.append(data[cursor:])
    return np.ascontiguousarray(np.concatenate(pieces), dtype=np.float32)
