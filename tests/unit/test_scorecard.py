"""The quality scorecard: verdicts follow the thresholds, per line and per partition."""

from dubbing_pipeline.quality.records import Thresholds
from dubbing_pipeline.quality.scorecard import line_scores, markdown_table, scorecard

T = Thresholds()


def seg(i: int, start: float, end: float, **kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": f"s{i:04d}", "start": start, "end": end, "dub_start": start, "dub_end": end,
        "rate": 1.0, "stretch": 1.0, "status": "fits", "target_text": "hola",
    }  # fmt: skip
    base.update(kw)
    return base


def test_clean_lines_pass_every_check() -> None:
    rows = line_scores([seg(1, 0, 1), seg(2, 2, 3)], {"s0001": 0.1, "s0002": 0.0}, 5.0, T)
    card = scorecard(rows, background_corr=0.999, av_difference=0.0, frame_seconds=0.04, t=T)
    assert all(check.passed for check in card.by_name().values())
    assert all(r["ok"] for r in rows)


def test_each_problem_is_detected() -> None:
    segments = [
        seg(1, 0.0, 1.0, dub_start=0.08),  # starts late
        seg(2, 1.5, 2.0, dub_end=3.2),  # runs into the next line
        seg(3, 3.0, 4.0, rate=1.3),  # too fast
        seg(4, 5.0, 6.0),  # unintelligible
        seg(5, 7.0, 8.0, dub_start=None, dub_end=None, status="failed"),
    ]
    rows = line_scores(segments, {"s0004": 0.9}, 10.0, T)
    problems = {r["id"]: r["problems"] for r in rows}
    assert problems == {"s0001": ["start"], "s0002": ["overlap"], "s0003": ["speed"],
                        "s0004": ["unintelligible"], "s0005": ["silent"]}  # fmt: skip
    card = scorecard(rows, background_corr=0.95, av_difference=0.05, frame_seconds=0.04, t=T)
    assert not card["timing"]["passed"] and card["timing"]["lines_out_of_bounds"] == [
        "s0001",
        "s0002",
        "s0003",
    ]
    assert card["intelligibility"]["unintelligible_lines"] == ["s0004"]
    assert not card["background"]["passed"] and not card["av_duration"]["passed"]
    assert card["failed_lines"]["share"] == 0.2 and card["failed_lines"]["passed"]  # exactly 20 % is allowed


def test_mean_cer_is_weighted_by_characters() -> None:
    rows = line_scores(
        [seg(1, 0, 1, target_text="hola"), seg(2, 2, 3, target_text="x" * 36)],
        {"s0001": 1.0, "s0002": 0.0},
        5,
        T,
    )
    card = scorecard(rows, background_corr=None, av_difference=0.0, frame_seconds=0.04, t=T)
    assert card["intelligibility"]["mean_cer"] == 0.1 and card["intelligibility"]["passed"]
    assert card["background"]["passed"]  # nothing to measure is not a failure


def test_markdown_table_has_a_row_per_segment() -> None:
    rows = line_scores([seg(1, 0, 1), seg(2, 2, 3, dub_start=None, status="failed")], {}, 5, T)
    table = markdown_table(rows)
    assert table.count("\n") == 3 and "failed" in table


def test_thresholds_come_from_the_settings_table() -> None:
    from dubbing_pipeline.settings import Settings

    t = Thresholds.from_settings(Settings.from_env({"DUBBING_QC_MAX_MEAN_CER": "0.25"}))
    assert t.max_mean_cer == 0.25 and t.max_line_cer == Thresholds().max_line_cer
