"""One catalog tick of ``bench --scale``, as the daemon runs it, and what it cost.

Kept apart and small because the catalog's tick is being rebuilt (an incremental cursor, a
deadline, a background sweep; possibly one catalog sensor instead of two schedules): this module is
the one place that knows how a tick is called. Today: both catalog schedules at one scheduled time
(they share one plan). If the definitions have a sensor named ``CATALOG_SENSOR`` instead, that
sensor is evaluated with the cursor of the previous tick.

Requests are counted by job (``source_half``, ``dub``), whichever kind of definition made them.
What the tick read is counted at the event log storage's read APIs (``events``), and its peak
resident memory is the process's high-water mark reset before the tick (``/proc/self/clear_refs``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from dubbing_pipeline.orchestration import catalog

CATALOG_SCHEDULES = ("catalog_source_schedule", "catalog_dub_schedule")
CATALOG_SENSOR = "catalog_sensor"  # the name a single catalog sensor would have
COUNTED_READS = (  # event log storage reads whose results are events (or one event's tags)
    "get_latest_tags_by_partition",
    "get_latest_storage_id_by_partition",
    "fetch_materializations",
    "fetch_observations",
    "fetch_failed_materializations",
    "get_event_records",
    "get_records_for_run",
)


@dataclass
class TickResult:
    """One catalog tick: requests by job, wall seconds, the plan's own breakdown, events read,
    peak RSS during the tick, and what the plan says of a sweep or a deadline (when it says)."""

    requests: dict[str, int]
    seconds: float
    plan_seconds: dict[str, float] = field(default_factory=dict)
    events: int | None = 0
    peak_rss_mb: float = 0.0
    swept: int | None = None  # partitions the background sweep covered (a plan with ``swept``)
    deadline_hit: bool | None = None
    incremental: bool = False  # the plan reads events since a cursor (it has ``events``)


@dataclass
class CatalogTicker:
    """Catalog ticks of one code location, one scheduled time after another."""

    defs: dg.Definitions
    instance: dg.DagsterInstance
    cursor: str | None = None
    when: Iterator[dt.datetime] = field(
        default_factory=lambda: iter(
            dt.datetime(2026, 1, 1, 3, tzinfo=dt.UTC) + dt.timedelta(hours=h) for h in range(100_000)
        )
    )

    def tick(self) -> TickResult:
        plans: list[Any] = []
        reads = [0]
        _reset_peak_rss()
        start = time.perf_counter()
        with _recording_plans(plans), _counting_reads(self.instance, reads):
            requests = self._evaluate(next(self.when))
        seconds = round(time.perf_counter() - start, 3)
        plan = plans[-1] if plans else None
        return TickResult(
            requests=requests, seconds=seconds,
            plan_seconds=dict(getattr(plan, "seconds", {}) or {}),
            events=_count(getattr(plan, "events", None), reads[0]), peak_rss_mb=_peak_rss_mb(),
            swept=_count(getattr(plan, "swept", None), None),
            deadline_hit=getattr(plan, "deadline_hit", None), incremental=hasattr(plan, "events"),
        )  # fmt: skip

    def _evaluate(self, when: dt.datetime) -> dict[str, int]:
        repo = self.defs.get_repository_def()
        if repo.has_sensor_def(CATALOG_SENSOR):  # TODO(catalog rewrite): check its name and requests
            sensor_context = dg.build_sensor_context(
                instance=self.instance, cursor=self.cursor, definitions=self.defs
            )
            sensor = self.defs.resolve_sensor_def(CATALOG_SENSOR)
            data = sensor.evaluate_tick(sensor_context)
            self.cursor = data.cursor
            jobs = [job.name for job in sensor.jobs] if sensor.has_jobs else []
            return _by_job(data.run_requests or [], jobs[0] if len(jobs) == 1 else None)
        counts: dict[str, int] = {}
        for name in CATALOG_SCHEDULES:
            context = dg.build_schedule_context(
                instance=self.instance, repository_def=repo, scheduled_execution_time=when
            )
            schedule = self.defs.resolve_schedule_def(name)
            for job, n in _by_job(
                schedule.evaluate_tick(context).run_requests or [], schedule.job_name
            ).items():
                counts[job] = counts.get(job, 0) + n
        return counts


def _count(value: object, default: int | None) -> int | None:
    """A plan's count field as a number, whether it holds a number or the items themselves."""
    if isinstance(value, bool) or value is None:
        return default
    if isinstance(value, int):
        return value
    return len(value) if hasattr(value, "__len__") else default


def _by_job(requests: Sequence[dg.RunRequest], default: str | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for request in requests:
        job = request.job_name or default or "?"
        counts[job] = counts.get(job, 0) + 1
    return counts


@contextmanager
def _recording_plans(plans: list[Any]) -> Iterator[None]:
    """Every ``plan_catalog`` result of the block appended to ``plans`` (for its ``seconds``)."""
    real = getattr(catalog, "plan_catalog", None)
    if real is None:
        yield
        return

    def recorded(*args: Any, **kwargs: Any) -> Any:
        plan = real(*args, **kwargs)
        plans.append(plan)
        return plan

    catalog.plan_catalog = recorded
    try:
        yield
    finally:
        catalog.plan_catalog = real


def _size(result: Any) -> int:
    """How many events a storage read returned (a mapping of partitions, a list, or records)."""
    if isinstance(result, dict):
        return len(result)
    records = getattr(result, "records", result)
    return len(records) if hasattr(records, "__len__") else 0


@contextmanager
def _counting_reads(instance: dg.DagsterInstance, total: list[int]) -> Iterator[None]:
    """``total[0]`` counts the events the ``COUNTED_READS`` of the event log storage return.

    Patched on the storage's class: a schedule's context opens its own instance from the
    instance's ref (as the daemon's code server does), with its own storage object."""
    cls = type(instance.event_log_storage)
    saved: dict[str, Any] = {}

    def counting(real: Callable[..., Any]) -> Callable[..., Any]:
        def read(*args: Any, **kwargs: Any) -> Any:
            result = real(*args, **kwargs)
            total[0] += _size(result)
            return result

        return read

    for name in COUNTED_READS:
        if hasattr(cls, name):
            saved[name] = cls.__dict__.get(name)
            setattr(cls, name, counting(getattr(cls, name)))
    try:
        yield
    finally:
        for name, own in saved.items():
            if own is None:
                delattr(cls, name)
            else:
                setattr(cls, name, own)


CLEAR_REFS = Path("/proc/self/clear_refs")


def _reset_peak_rss() -> None:
    """Reset this process's peak RSS to its current RSS (Linux ≥ 4.0), so the next reading is the
    peak of what follows; where it cannot, the reading stays the process's peak."""
    with contextlib.suppress(OSError):
        CLEAR_REFS.write_text("5")


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
