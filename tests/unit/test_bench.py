"""``dubbing-pipeline bench``: the arithmetic and the table (no timing is asserted)."""

import pytest

from dubbing_pipeline.tooling.bench import (
    Measurement,
    derived,
    headline,
    markdown_table,
    orchestration_overhead,
    real_time_factor,
    trimmed_of,
)


def _m(
    name: str, run: float, stages: dict[str, float], cached: bool = False, trimmed: list[str] | None = None
) -> Measurement:
    return Measurement(
        name=name, video="demo.mp4", language="es", media_seconds=30.0, exit_code=0, wall_seconds=run + 4.0,
        run_seconds=run, peak_rss_mib=812.4, cpu_seconds=1.5 * (run + 4.0),
        stages={s: {"seconds": v, "cached": cached} for s, v in stages.items()},
        lines=None if trimmed is None else 13, trimmed_ids=trimmed or [],
    )  # fmt: skip


def test_overhead_is_run_wall_minus_stage_compute_never_negative() -> None:
    assert orchestration_overhead(10.0, [2.0, 3.5]) == pytest.approx(4.5)
    assert orchestration_overhead(1.0, [2.0]) == 0.0
    assert orchestration_overhead(3.0, []) == 3.0


def test_real_time_factor() -> None:
    assert real_time_factor(15.0, 30.0) == 0.5
    assert real_time_factor(1.0, 0.0) is None


def test_table_rows_cells_and_summary() -> None:
    stages = {"source_video": 0.5, "audio_stems": 6.0, "dubbed_video": 1.5}
    cold = _m("demo_es", 20.0, stages, trimmed=["s0004"])
    rerun = _m("demo_es_rerun", 5.0, {"source_video": 0.1}, cached=True)
    table = markdown_table([cold, rerun])
    lines = table.splitlines()
    assert lines[0] == "| stage | demo_es | demo_es_rerun |"
    assert "| audio_stems | 6.00 s · RTF 0.200 | – |" in lines
    assert "| source_video | 0.50 s · RTF 0.017 | 0.10 s · RTF 0.003 (cached) |" in lines
    assert "| **all stages** | **8.00 s · RTF 0.267** | **0.10 s · RTF 0.003** |" in lines
    assert lines[-4].endswith("| peak RSS MiB | trimmed lines |")
    row = "| demo_es | demo.mp4 → es | 30.0 | 0 | 24.0 | 20.0 | 8.0 | 12.0 | 36.0 | 1.50 | 812 |"
    assert f"{row} 1 of 13 (s0004) |" in lines
    row = "| demo_es_rerun | demo.mp4 → es | 30.0 | 0 | 9.0 | 5.0 | 0.1 | 4.9 | 13.5 | 1.50 | 812 |"
    assert f"{row} – |" in lines  # no report read: not measured


def test_trimmed_lines_come_from_the_report() -> None:
    statuses = {"s0001": "fits", "s0004": "trimmed", "s0006": "trimmed", "s0007": "failed"}
    report = {"segments": [{"id": i, "status": status} for i, status in statuses.items()]}
    assert trimmed_of(report) == (4, ["s0004", "s0006"])
    assert trimmed_of({"segments": []}) == (0, [])
    clean = _m("demo_es", 20.0, {"a": 8.0}, trimmed=[])
    assert clean.to_dict()["trimmed_lines"] == 0 and "| 0 of 13 |" in markdown_table([clean])
    assert _m("demo_es", 20.0, {"a": 8.0}).to_dict()["trimmed_lines"] is None  # no report: not measured


def test_derived_numbers_and_json_shape() -> None:
    ms = {"demo_es": _m("demo_es", 20.0, {"a": 8.0}), "demo_ca": _m("demo_ca", 9.0, {"a": 6.0}),
          "demo_es_rerun": _m("demo_es_rerun", 3.0, {"a": 0.2})}  # fmt: skip
    out = derived(ms)
    assert out["second_language_wall_seconds"] == 13.0 and out["second_language_stage_seconds"] == 6.0
    assert out["unchanged_rerun_wall_seconds"] == 7.0
    assert out["second_language_wall_share"] == pytest.approx(13.0 / 24.0, abs=1e-4)
    assert headline(out) == (
        "\nsecond language: 54.2 % of the first dub's wall time (75.0 % of its stage time); "
        "unchanged re-run: 29.2 % of its wall time; "
        "the first dub used 36.0 s of CPU time, 1.50 cores busy on average.\n"
    )
    assert out["first_dub_cpu_seconds"] == 36.0 and out["first_dub_cores_busy"] == 1.5
    assert out["second_language_stage_share"] == 0.75 and out["unchanged_rerun_wall_share"] == pytest.approx(
        7 / 24, abs=1e-4
    )
    assert out["demo_es_overhead_seconds"] == 12.0
    record = ms["demo_es"].to_dict()
    assert record["stage_seconds"] == 8.0 and record["overhead_seconds"] == 12.0
    assert record["cpu_seconds"] == 36.0 and record["cores_busy"] == 1.5
    assert record["trimmed_lines"] is None and record["lines"] is None and record["trimmed_ids"] == []
    assert record["real_time_factor"] == pytest.approx(8.0 / 30.0, abs=1e-4)
