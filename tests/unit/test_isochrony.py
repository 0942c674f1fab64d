"""Isochrony planning: the worked examples, validation, and properties over many random slots."""

from __future__ import annotations

import math
import random
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dubbing_pipeline.dubbed_speech.isochrony import (
    BREATH,
    FAILED_STATUSES,
    MAX_LEAD,
    MAX_PAUSE,
    MAX_RATE,
    MAX_STRETCH,
    STATUSES,
    FitPlan,
    capacity,
    failure_gate,
    failure_rate,
    fit_limit,
    plan_fit,
    render_fit,
    replan_after_synthesis,
    room_before,
    tighten_pauses,
    trim_to,
)

TOL = 1e-9


def approx(value: float) -> object:
    return pytest.approx(value, abs=1e-9)


# --------------------------------------------------------------------------- examples


def test_fits_as_is() -> None:
    plan = plan_fit(1.0, 3.0, 4.0, 1.5, supports_rate=True)
    assert plan == FitPlan(1.0, 1.0, 1.0, 2.5, 0.0, "fits", 0.0)
    assert plan.duration == approx(1.5)
    assert not plan.failed and not plan.needs_resynthesis


def test_fits_exactly_to_slot_end() -> None:
    plan = plan_fit(1.0, 3.0, 4.0, 2.0, supports_rate=False)
    assert plan.status == "fits"
    assert plan.dub_end == 3.0
    assert plan.borrowed == 0.0


def test_borrows_the_following_gap() -> None:
    plan = plan_fit(1.0, 3.0, 4.0, 2.5, supports_rate=True)
    assert plan.status == "borrowed"
    assert plan.dub_end == approx(3.5)
    assert plan.borrowed == approx(0.5)
    assert (plan.rate, plan.stretch, plan.overflow) == (1.0, 1.0, 0.0)


def test_borrow_stops_a_breath_before_the_next_line() -> None:
    # 1.0 + 2.85 = 3.85 = next_start - breath: still borrowed, nothing compressed
    plan = plan_fit(1.0, 3.0, 4.0, 2.85, supports_rate=True)
    assert plan.status == "borrowed"
    assert plan.dub_end <= 4.0 - BREATH + TOL
    # a hair longer and the rate has to move
    plan = plan_fit(1.0, 3.0, 4.0, 2.9, supports_rate=True)
    assert plan.status == "rate"
    assert plan.dub_end == approx(3.85)
    assert plan.borrowed == approx(0.85)
    assert plan.rate == approx(2.9 / 2.85)


def test_needs_rate_1_15() -> None:
    # budget: next 2.15 - breath = 2.0 s; 2.3 s of speech needs 1.15x
    plan = plan_fit(0.0, 2.0, 2.15, 2.3, supports_rate=True)
    assert plan.status == "rate"
    assert plan.rate == approx(1.15)
    assert plan.stretch == 1.0
    assert plan.dub_start == 0.0
    assert plan.dub_end == approx(2.0)
    assert plan.borrowed == 0.0
    assert plan.needs_resynthesis


def test_needs_stretch_without_rate_control() -> None:
    plan = plan_fit(0.0, 2.0, 2.15, 2.1, supports_rate=False)
    assert plan.status == "stretch"
    assert plan.rate == 1.0
    assert plan.stretch == approx(1.05)
    assert plan.dub_end == approx(2.0)
    assert not plan.needs_resynthesis


def test_needs_stretch_on_top_of_the_rate_cap() -> None:
    plan = plan_fit(0.0, 2.0, 2.15, 2.6, supports_rate=True)
    assert plan.status == "stretch"
    assert plan.rate == approx(MAX_RATE)
    assert plan.stretch == approx(2.6 / 2.0 / 1.2)
    assert plan.dub_end == approx(2.0)


def test_overflow_asks_for_a_retranslation() -> None:
    plan = plan_fit(0.0, 2.0, 2.15, 3.0, supports_rate=True)
    assert plan.status == "retranslate"
    assert plan.failed
    assert plan.rate == approx(MAX_RATE)
    assert plan.stretch == approx(MAX_STRETCH)
    assert plan.overflow == approx(3.0 / (1.2 * 1.1) - 2.0)
    assert plan.dub_end == approx(2.0)
    # the retranslation must fit in this much natural speech
    assert capacity(0.0, 2.0, 2.15, supports_rate=True) == approx(2.0 * 1.2 * 1.1)


def test_overflow_after_the_retranslation_is_trimmed() -> None:
    plan = plan_fit(0.0, 2.0, 2.15, 3.0, supports_rate=True, retranslated=True)
    assert plan.status == "trimmed"
    assert plan.rate == approx(MAX_RATE) and plan.stretch == approx(MAX_STRETCH)
    assert plan.dub_end == approx(2.0)
    assert plan.overflow == approx(3.0 / 1.32 - 2.0)


def test_retranslation_that_fits_is_a_normal_plan() -> None:
    plan = plan_fit(0.0, 2.0, 2.15, 1.8, supports_rate=True, retranslated=True)
    assert plan.status == "fits"


def test_overflow_without_rate_uses_only_the_stretch_cap() -> None:
    plan = plan_fit(0.0, 2.0, 2.15, 2.3, supports_rate=False)
    assert plan.status == "retranslate"
    assert plan.rate == 1.0
    assert plan.stretch == approx(MAX_STRETCH)
    assert plan.overflow == approx(2.3 / 1.1 - 2.0)
    assert capacity(0.0, 2.0, 2.15, supports_rate=False) == approx(2.2)


def test_slot_shorter_than_the_breath() -> None:
    # a 0.1 s slot with the next line right after it: the line keeps its own slot
    assert fit_limit(5.0, 5.1, 5.1) == approx(5.1)
    plan = plan_fit(5.0, 5.1, 5.1, 0.1, supports_rate=True)
    assert plan.status == "fits"
    assert plan.dub_end == approx(5.1)
    plan = plan_fit(5.0, 5.1, 5.1, 0.12, supports_rate=True)
    assert plan.status == "rate"
    assert plan.rate == approx(1.2)
    assert plan.dub_end <= 5.1 + TOL


def test_short_slot_with_a_little_room_after_it() -> None:
    # next at 5.2: next - breath = 5.05 < slot end 5.1, so the slot end is the limit
    assert fit_limit(5.0, 5.1, 5.2) == approx(5.1)
    plan = plan_fit(5.0, 5.1, 5.2, 0.3, supports_rate=True)
    assert plan.status == "retranslate"
    assert plan.dub_end == approx(5.1)


def test_last_line_before_the_video_end() -> None:
    # the demo's last line, 28.445-29.987 in a 30.0 s video, already ends inside the breath:
    # it keeps its own slot and gets no more
    plan = plan_fit(28.445, 29.987, 30.0, 1.6, supports_rate=True)
    assert plan.dub_start == 28.445
    assert plan.status == "rate"
    assert plan.dub_end == approx(29.987)
    assert plan.rate == approx(1.6 / (29.987 - 28.445))
    assert plan.borrowed == 0.0
    assert plan_fit(28.445, 29.987, 30.0, 1.2, supports_rate=True).status == "fits"
    # an earlier last line borrows up to a breath before the video's end
    plan = plan_fit(27.0, 28.5, 30.0, 2.9, supports_rate=True)
    assert plan.status == "rate"
    assert plan.dub_end == approx(30.0 - BREATH)
    assert plan.borrowed == approx(30.0 - BREATH - 28.5)
    assert plan.rate == approx(2.9 / 2.85)
    assert plan_fit(27.0, 28.5, 30.0, 2.8, supports_rate=True).status == "borrowed"


def test_slot_overlapping_the_next_line_is_cut_at_its_start() -> None:
    # source speech overlaps: this slot runs to 3.0 but the next line starts at 2.5
    assert fit_limit(1.0, 3.0, 2.5) == approx(2.5)
    plan = plan_fit(1.0, 3.0, 2.5, 1.4, supports_rate=False)
    assert plan.status == "fits"
    plan = plan_fit(1.0, 3.0, 2.5, 1.6, supports_rate=False)
    assert plan.status == "stretch"
    assert plan.dub_end == approx(2.5)
    assert plan.borrowed == 0.0


def test_next_line_starting_first_leaves_no_room() -> None:
    for nxt in (1.0, 0.5, -3.0):
        plan = plan_fit(1.0, 2.0, nxt, 0.5, supports_rate=True)
        assert plan.status == "trimmed"  # no retranslation can fit into nothing
        assert plan.dub_start == plan.dub_end == 1.0
        assert plan.overflow == approx(0.5)
    assert plan_fit(1.0, 2.0, 1.0, 0.0, supports_rate=True).status == "fits"
    assert capacity(1.0, 2.0, 0.5, supports_rate=True) == 0.0


def test_empty_audio_fits() -> None:
    plan = plan_fit(3.0, 4.0, 5.0, 0.0, supports_rate=True)
    assert plan == FitPlan(1.0, 1.0, 3.0, 3.0, 0.0, "fits", 0.0)


def test_zero_breath_uses_everything_up_to_the_next_line() -> None:
    plan = plan_fit(0.0, 1.0, 2.0, 2.0, supports_rate=False, breath=0.0)
    assert plan.status == "borrowed"
    assert plan.dub_end == 2.0


def test_custom_caps() -> None:
    plan = plan_fit(0.0, 1.0, 1.15, 1.4, supports_rate=True, max_rate=1.5, max_stretch=1.0)
    assert plan.status == "rate"
    assert plan.rate == approx(1.4)
    plan = plan_fit(0.0, 1.0, 1.15, 1.6, supports_rate=True, max_rate=1.5, max_stretch=1.0)
    assert plan.status == "retranslate"
    assert plan.stretch == 1.0


def test_supports_rate_false_ignores_max_rate() -> None:
    plan = plan_fit(0.0, 1.0, 1.15, 1.05, supports_rate=False, max_rate=1.5)
    assert plan.rate == 1.0
    assert plan.status == "stretch"


# --------------------------------------------------------------------------- replanning


def test_replan_when_the_rate_came_out_short_enough() -> None:
    plan = plan_fit(0.0, 2.0, 2.15, 2.3, supports_rate=True)
    real = replan_after_synthesis(0.0, 2.0, 2.15, 1.95, rate=plan.rate)
    assert real.status == "rate"
    assert real.rate == plan.rate
    assert real.stretch == 1.0
    assert real.dub_end == approx(1.95)


def test_replan_computes_the_stretch_from_the_measured_duration() -> None:
    plan = plan_fit(0.0, 2.0, 2.15, 2.3, supports_rate=True)
    real = replan_after_synthesis(0.0, 2.0, 2.15, 2.06, rate=plan.rate)
    assert real.status == "stretch"
    assert real.rate == plan.rate
    assert real.stretch == approx(2.06 / 2.0)
    assert real.dub_end == approx(2.0)


def test_replan_overflow_beyond_the_stretch_cap() -> None:
    real = replan_after_synthesis(0.0, 2.0, 2.15, 2.5, rate=1.2)
    assert real.status == "retranslate"
    assert real.rate == 1.2 and real.stretch == approx(MAX_STRETCH)
    assert real.overflow == approx(2.5 / 1.1 - 2.0)
    real = replan_after_synthesis(0.0, 2.0, 2.15, 2.5, rate=1.2, retranslated=True)
    assert real.status == "trimmed"


def test_replan_at_rate_one_is_plan_without_rate() -> None:
    for actual in (0.5, 2.05, 2.5, 3.5):
        assert replan_after_synthesis(0.0, 2.0, 3.0, actual, rate=1.0) == plan_fit(
            0.0, 2.0, 3.0, actual, supports_rate=False
        )


def test_replan_borrowed_gap_with_rate_reports_rate() -> None:
    real = replan_after_synthesis(0.0, 2.0, 3.0, 2.4, rate=1.1)
    assert real.status == "rate"
    assert real.borrowed == approx(0.4)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((0.0, 1.0, 2.0, -0.1), {}),
        ((0.0, 1.0, 2.0, math.nan), {}),
        ((0.0, 1.0, 2.0, math.inf), {}),
        ((math.nan, 1.0, 2.0, 0.5), {}),
        ((0.0, math.inf, 2.0, 0.5), {}),
        ((0.0, 1.0, -math.inf, 0.5), {}),
        ((2.0, 1.0, 3.0, 0.5), {}),
        ((0.0, 1.0, 2.0, 0.5), {"max_rate": 0.9}),
        ((0.0, 1.0, 2.0, 0.5), {"max_stretch": 0.99}),
        ((0.0, 1.0, 2.0, 0.5), {"max_stretch": math.nan}),
        ((0.0, 1.0, 2.0, 0.5), {"breath": -0.1}),
    ],
)
def test_plan_fit_rejects_bad_input(args: tuple[float, ...], kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        plan_fit(*args, supports_rate=True, **kwargs)  # type: ignore[arg-type]


def test_plan_fit_rejects_non_numbers() -> None:
    with pytest.raises(TypeError):
        plan_fit(0.0, 1.0, 2.0, "1.0", supports_rate=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        plan_fit(0.0, 1.0, 2.0, True, supports_rate=True)


def test_max_rate_is_not_validated_without_rate_support() -> None:
    # the cap is irrelevant when the engine has no rate control
    assert plan_fit(0.0, 1.0, 2.0, 0.5, supports_rate=False, max_rate=0.5).status == "fits"


def test_replan_rejects_a_slowing_rate() -> None:
    with pytest.raises(ValueError):
        replan_after_synthesis(0.0, 1.0, 2.0, 0.5, rate=0.9)
    with pytest.raises(ValueError):
        replan_after_synthesis(0.0, 1.0, 2.0, -0.5, rate=1.1)


def test_integers_are_accepted() -> None:
    assert plan_fit(0, 2, 3, 1, supports_rate=False) == plan_fit(0.0, 2.0, 3.0, 1.0, supports_rate=False)


# --------------------------------------------------------------------------- gate


def test_failure_gate_is_strictly_more_than_the_limit() -> None:
    four_ok = ["fits", "borrowed", "rate", "stretch"]
    assert not failure_gate([*four_ok, "failed"])  # 20 %: passes
    assert failure_gate([*four_ok[:3], "failed", "failed"])  # 40 %: fails
    assert failure_rate([*four_ok, "failed"]) == approx(0.2)
    assert not failure_gate([])
    assert failure_rate([]) == 0.0
    assert not failure_gate(four_ok, limit=0.0)
    assert failure_gate(["failed"], limit=0.0)
    assert not failure_gate(["failed"], limit=1.0)
    assert failure_gate(["fits", "failed"], limit=0.49)
    assert not failure_gate(iter(["fits", "fits", "failed"]), limit=0.34)


def test_spoken_lines_never_count_against_the_gate_even_when_trimmed() -> None:
    assert failure_rate(["trimmed", "trimmed", "retranslate", "fits"]) == 0.0
    assert not failure_gate(["trimmed"] * 5, limit=0.0)


def test_failure_gate_rejects_unknown_statuses_and_limits() -> None:
    with pytest.raises(ValueError):
        failure_gate(["fits", "late"])
    with pytest.raises(ValueError):
        failure_gate(["fits"], limit=1.5)
    with pytest.raises(ValueError):
        failure_gate(["fits"], limit=math.nan)


def test_failed_statuses() -> None:
    assert set(STATUSES) >= FAILED_STATUSES == {"retranslate", "trimmed"}


def test_plan_round_trips_through_a_dict() -> None:
    plan = plan_fit(0.0, 2.0, 2.15, 2.6, supports_rate=True)
    assert FitPlan.from_dict(plan.to_dict()) == plan
    with pytest.raises(ValueError):
        FitPlan.from_dict({**plan.to_dict(), "status": "late"})


# --------------------------------------------------------------------------- properties


def check_invariants(
    plan: FitPlan,
    slot_start: float,
    slot_end: float,
    next_start: float,
    natural: float,
    *,
    supports_rate: bool,
    breath: float = BREATH,
    max_rate: float = MAX_RATE,
    max_stretch: float = MAX_STRETCH,
    retranslated: bool = False,
) -> None:
    limit = max(slot_start, next_start - breath, min(slot_end, next_start))
    assert plan.status in STATUSES
    # starts exactly at the source start
    assert plan.dub_start == slot_start
    assert plan.dub_end >= plan.dub_start
    # never past the limit, so never into the next line (nor its breath, where there was one)
    assert plan.dub_end <= limit + TOL
    if slot_start <= next_start:
        assert plan.dub_end <= next_start + TOL
    if slot_end <= next_start - breath:
        assert plan.dub_end <= next_start - breath + TOL
    # caps
    assert 1.0 <= plan.rate <= (max_rate if supports_rate else 1.0) + TOL
    assert 1.0 <= plan.stretch <= max_stretch + TOL
    assert plan.borrowed == pytest.approx(max(0.0, plan.dub_end - slot_end), abs=TOL)
    assert plan.overflow >= 0.0
    produced = natural / (plan.rate * plan.stretch)
    if plan.status in FAILED_STATUSES:
        assert plan.overflow > 0.0
        assert produced > plan.duration - TOL
        if plan.duration > 0:
            assert plan.overflow == pytest.approx(produced - plan.duration, rel=1e-9, abs=TOL)
        assert plan.status == ("trimmed" if retranslated or limit <= slot_start else "retranslate")
    else:
        assert plan.overflow == 0.0
        assert produced == pytest.approx(plan.duration, rel=1e-9, abs=TOL)
    # the status follows the policy order
    order = {name: i for i, name in enumerate(STATUSES)}
    if slot_start + natural <= limit:
        assert order[plan.status] <= order["borrowed"]
        assert plan.status == ("fits" if slot_start + natural <= slot_end else "borrowed")
    elif plan.status in ("rate", "stretch"):
        assert natural <= capacity(
            slot_start,
            slot_end,
            next_start,
            supports_rate=supports_rate,
            max_rate=max_rate,
            max_stretch=max_stretch,
            breath=breath,
        ) * (1 + 1e-9)
    if plan.stretch > 1.0 and supports_rate:
        assert plan.rate == pytest.approx(max_rate)  # stretch only once the rate is at its cap
    if plan.status == "rate":
        assert plan.stretch == 1.0


def test_invariants_over_thousands_of_random_slots() -> None:
    rng = random.Random(20240611)
    for _ in range(10000):
        slot_start = rng.uniform(0.0, 600.0)
        slot_end = slot_start + rng.choice([0.0, rng.uniform(0.0, 0.2), rng.uniform(0.0, 8.0)])
        next_start = slot_end + rng.choice([0.0, rng.uniform(-1.0, 0.3), rng.uniform(0.0, 3.0)])
        slot = slot_end - slot_start
        natural = rng.choice([0.0, rng.uniform(0.0, 2.0 * slot + 0.5), rng.uniform(0.0, 12.0)])
        supports_rate = rng.random() < 0.5
        retranslated = rng.random() < 0.3
        breath = rng.choice([BREATH, 0.0, rng.uniform(0.0, 0.5)])
        plan = plan_fit(
            slot_start,
            slot_end,
            next_start,
            natural,
            supports_rate=supports_rate,
            breath=breath,
            retranslated=retranslated,
        )
        check_invariants(
            plan,
            slot_start,
            slot_end,
            next_start,
            natural,
            supports_rate=supports_rate,
            breath=breath,
            retranslated=retranslated,
        )


times = st.floats(min_value=0.0, max_value=7200.0, allow_nan=False, allow_infinity=False)
spans = st.floats(min_value=0.0, max_value=30.0, allow_nan=False, allow_infinity=False)
gaps = st.floats(min_value=-2.0, max_value=5.0, allow_nan=False, allow_infinity=False)


@settings(max_examples=1000, deadline=None)
@given(
    slot_start=times,
    slot=spans,
    gap=gaps,
    natural=spans,
    supports_rate=st.booleans(),
    retranslated=st.booleans(),
    max_rate=st.floats(min_value=1.0, max_value=2.0),
    max_stretch=st.floats(min_value=1.0, max_value=1.5),
    breath=st.floats(min_value=0.0, max_value=1.0),
)
def test_invariants_hold_for_any_slot(
    slot_start: float,
    slot: float,
    gap: float,
    natural: float,
    supports_rate: bool,
    retranslated: bool,
    max_rate: float,
    max_stretch: float,
    breath: float,
) -> None:
    slot_end = slot_start + slot
    next_start = slot_end + gap
    plan = plan_fit(
        slot_start,
        slot_end,
        next_start,
        natural,
        supports_rate=supports_rate,
        max_rate=max_rate,
        max_stretch=max_stretch,
        breath=breath,
        retranslated=retranslated,
    )
    check_invariants(
        plan,
        slot_start,
        slot_end,
        next_start,
        natural,
        supports_rate=supports_rate,
        breath=breath,
        max_rate=max_rate,
        max_stretch=max_stretch,
        retranslated=retranslated,
    )


@settings(max_examples=500, deadline=None)
@given(slot_start=times, slot=spans, gap=gaps, natural=spans, skew=st.floats(min_value=0.8, max_value=1.25))
def test_replan_keeps_the_invariants(
    slot_start: float, slot: float, gap: float, natural: float, skew: float
) -> None:
    """Synthesize at the planned rate, come out ``skew`` off, re-plan: still never overlapping."""
    slot_end = slot_start + slot
    next_start = slot_end + gap
    plan = plan_fit(slot_start, slot_end, next_start, natural, supports_rate=True)
    actual = natural / plan.rate * skew
    real = replan_after_synthesis(slot_start, slot_end, next_start, actual, rate=plan.rate)
    assert real.rate == plan.rate
    assert real.dub_start == slot_start
    assert real.dub_end <= fit_limit(slot_start, slot_end, next_start) + TOL
    assert 1.0 <= real.stretch <= MAX_STRETCH + TOL
    if real.status not in FAILED_STATUSES:
        assert actual / real.stretch == pytest.approx(real.duration, rel=1e-9, abs=TOL)
    if skew <= 1.0 and plan.status in ("fits", "borrowed", "rate"):
        assert real.status in ("fits", "borrowed", "rate")


def test_a_dialogue_never_overlaps() -> None:
    """Plan a whole random dialogue line by line: every dubbed line ends before the next starts."""
    rng = random.Random(7)
    for _ in range(200):
        t = 0.0
        slots = []
        for _ in range(rng.randint(1, 30)):
            t += rng.uniform(0.0, 1.5)
            length = rng.uniform(0.05, 6.0)
            slots.append((t, t + length))
            t += length
        video_end = t + rng.uniform(0.0, 2.0)
        plans = []
        for i, (start, end) in enumerate(slots):
            nxt = slots[i + 1][0] if i + 1 < len(slots) else video_end
            natural = (end - start) * rng.uniform(0.3, 1.8)
            plan = plan_fit(start, end, nxt, natural, supports_rate=rng.random() < 0.5)
            if plan.status == "retranslate":
                plan = plan_fit(start, end, nxt, natural * 0.8, supports_rate=True, retranslated=True)
            assert plan.status != "retranslate"
            plans.append(plan)
        for i in range(len(plans) - 1):
            a, b = plans[i], plans[i + 1]
            assert a.dub_end <= b.dub_start + TOL
            assert a.dub_end <= max(b.dub_start - BREATH, slots[i][1]) + TOL
        assert plans[-1].dub_end <= video_end + TOL


# --------------------------------------------------------------------------- audio


def test_trim_to_fades_only_what_it_cuts() -> None:
    audio = np.ones(1000, dtype=np.float32)
    assert np.array_equal(trim_to(audio, 1000, 2.0), audio)
    out = trim_to(audio, 1000, 0.5, fade=0.1)
    assert out.size == 500
    assert out[0] == 1.0 and out[399] == 1.0
    assert out[-1] == 0.0
    assert np.all(np.diff(out[400:]) <= 0)
    assert trim_to(audio, 1000, 0.0).size == 0
    assert trim_to(audio, 1000, 0.05, fade=1.0).size == 50


def _tone(seconds: float, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)


def test_render_fit_without_stretch_is_the_audio() -> None:
    audio = _tone(1.0)
    plan = plan_fit(0.0, 2.0, 3.0, 1.0, supports_rate=False)
    assert np.array_equal(render_fit(audio, 16000, plan), audio)


@pytest.mark.skipif(shutil.which("rubberband") is None, reason="rubberband-cli not installed")
def test_render_fit_stretches_and_trims() -> None:
    sr = 16000
    audio = _tone(2.1, sr)
    plan = plan_fit(0.0, 2.0, 2.15, 2.1, supports_rate=False)
    assert plan.status == "stretch"
    out = render_fit(audio, sr, plan)
    assert out.dtype == np.float32
    assert abs(out.size - 2.0 * sr) <= 0.01 * sr
    assert out.size <= int(plan.duration * sr)
    trimmed = plan_fit(0.0, 2.0, 2.15, 3.0, supports_rate=False, retranslated=True)
    out = render_fit(_tone(3.0, sr), sr, trimmed)
    assert out.size == int(2.0 * sr)
    assert abs(float(out[-1])) < 1e-3


# --------------------------------------------------------------------------- starting early


def test_a_line_a_few_ms_too_long_at_both_caps_starts_just_that_much_early() -> None:
    # "Hola." in a 0.44 s slot with the next line right after it: 0.6 s at 1.32x is 0.4545 s
    late = plan_fit(7.0, 7.44, 7.44, 0.6, supports_rate=True)
    assert late.status == "retranslate" and late.lead == 0.0
    early = plan_fit(7.0, 7.44, 7.44, 0.6, supports_rate=True, room_before=1.0)
    assert early.status == "stretch" and early.dub_end == 7.44
    assert early.lead == pytest.approx(0.6 / (MAX_RATE * MAX_STRETCH) - 0.44)
    assert early.dub_start == pytest.approx(7.0 - early.lead)


def test_the_lead_never_exceeds_50_ms_nor_the_room_there_is() -> None:
    far = plan_fit(7.0, 7.44, 7.44, 1.0, supports_rate=True, retranslated=True, room_before=1.0)
    assert far.status == "trimmed" and far.lead == pytest.approx(MAX_LEAD)
    assert far.overflow == pytest.approx(1.0 / (MAX_RATE * MAX_STRETCH) - 0.44 - MAX_LEAD)
    tight = plan_fit(7.0, 7.44, 7.44, 0.6, supports_rate=True, room_before=0.01)
    assert tight.status == "retranslate" and tight.lead == pytest.approx(0.01)


def test_a_line_that_fits_somehow_keeps_its_start() -> None:
    for natural in (0.3, 0.5, 0.55):  # fits, rate, stretch
        plan = plan_fit(7.0, 7.44, 7.44, natural, supports_rate=True, room_before=1.0)
        assert plan.lead == 0.0 and plan.dub_start == 7.0 and not plan.failed


def test_room_before_keeps_the_previous_lines_breath() -> None:
    assert room_before(-1.0, -1.0, 7.0) == 7.0  # the first line: everything since the start
    assert room_before(7.44, 7.88, 8.32) == pytest.approx(BREATH)  # previous may end 0.15 s before
    assert room_before(7.0, 7.44, 7.44) == 0.0  # back to back: none


def test_lead_invariants_over_random_slots() -> None:
    rng = random.Random(7)
    for _ in range(5000):
        slot_start = rng.uniform(0.0, 60.0)
        slot_end = slot_start + rng.uniform(0.0, 4.0)
        next_start = slot_end + rng.choice([0.0, rng.uniform(-0.5, 0.3), rng.uniform(0.0, 2.0)])
        natural = rng.uniform(0.0, 3.0 * (slot_end - slot_start) + 0.5)
        room = rng.choice([0.0, rng.uniform(0.0, 0.03), rng.uniform(0.0, 1.0)])
        plain = plan_fit(slot_start, slot_end, next_start, natural, supports_rate=True)
        plan = plan_fit(slot_start, slot_end, next_start, natural, supports_rate=True, room_before=room)
        assert 0.0 <= plan.lead <= min(room, MAX_LEAD) + TOL
        assert plan.dub_start == pytest.approx(slot_start - plan.lead, abs=TOL)
        assert plan.dub_end <= fit_limit(slot_start, slot_end, next_start) + TOL
        if not plain.failed:
            assert plan == plain  # only a line that overflows both caps moves
        elif not plan.failed:
            assert natural / (plan.rate * plan.stretch) == pytest.approx(plan.duration, rel=1e-9, abs=TOL)


def test_long_inner_pauses_are_cut_to_a_breath_and_nothing_else_changes() -> None:
    sr = 16000
    tone = (0.3 * np.sin(2 * np.pi * 200 * np.arange(int(0.3 * sr)) / sr)).astype(np.float32)
    quiet = np.zeros(int(0.5 * sr), dtype=np.float32)
    short = np.zeros(int(0.1 * sr), dtype=np.float32)
    edge = np.zeros(int(0.2 * sr), dtype=np.float32)
    audio = np.concatenate([edge, tone, quiet, tone, short, tone, edge])
    out = tighten_pauses(audio, sr)
    assert len(out) / sr == pytest.approx((len(audio) - len(quiet)) / sr + MAX_PAUSE, abs=0.011)
    assert np.array_equal(out[: len(edge) + len(tone)], audio[: len(edge) + len(tone)])  # words intact
    tail = len(tone) + len(short) + len(tone) + len(edge)
    assert np.array_equal(out[-tail:], audio[-tail:])  # the short pause and the trailing silence stay
    assert np.array_equal(tighten_pauses(tone, sr), tone)
