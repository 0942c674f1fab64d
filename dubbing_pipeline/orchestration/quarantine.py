"""Failed partitions back off, then are quarantined: the catalog's retry gate.

Without it a partition whose run always fails is asked for again on every catalog tick, for ever.

**The policy** (:func:`judge`, pure): after ``k`` consecutive failures the next automatic attempt
waits ``DUBBING_RETRY_BACKOFF_S · 2^(k-1)`` seconds after the last failure, at most
``DUBBING_RETRY_BACKOFF_MAX_S``; after ``DUBBING_QUARANTINE_AFTER`` failures the partition is
quarantined: the catalog asks for it no more (``plan.skipped`` says why) until it is released.

**What counts** (:func:`streak`): the partition's failed runs (job ``source_half`` for a video,
``dub`` for a ``video × language`` pair), newest first, that ended after its last successful run
and after its last release, and that asked for *the same inputs* as the request at hand. The
inputs of a catalog request are its run key (``catalog:<partition>:<source fingerprint or source
data version>:<digest of every code version>``; Dagster keeps it on the run as ``dagster/run_key``):
a new source object, a re-made source half with other data or a new code version is a new run
key, and the first failure under another key ends the streak. So a change of inputs releases a
quarantined partition with no one doing anything, and a run launched by something else (the
chain sensor, the UI: another run key or none) resets the count rather than adding to it. The CLI
and the asset check, which know no request, judge the run key of the partition's newest failure.

**What a tick reads** (:meth:`History.read`): per job one query for its failed runs and one for
the successful runs of the partitions among them (only those, only since the oldest such failure),
grouped by the ``dagster/partition`` tag; and one object of the media storage, the ledger. The cost
follows the failed runs, never the catalog.

**Where releases live**: ``registry/quarantine.json`` in the media storage (:class:`Ledger`): the
partitions released by ``dubbing-pipeline retry`` (partition → when) and those whose quarantine was
reported to the UI (partition → the failed run it was reported for). It is durable and every pod
(code server, daemon, a CLI run in a pod) reads the same object; changes are conditional writes
(``update_json``), so a release and a tick writing at once both land. Dagster offers no public
key-value store, and a release written as an asset event would be read by the freshness judgement.

**In the UI**: an asset check ``not_quarantined`` on ``source_video`` (videos) and on
``dubbed_video`` (pairs): failed, with the failure count, the last failed run and its error, when
the tick quarantines the partition; passed when it is released (the CLI, new inputs, a successful
run). The evaluations are yielded by a tiny run, ``catalog_quarantine`` (:func:`report_checks` says
why not runless), once per change, never per tick. The checks are left out of the jobs
(``CHECKS``): executed by hand they judge the partition as the CLI does.
"""

import datetime as dt
import json
import math
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Self

import dagster as dg

from dubbing_pipeline.orchestration.partitions import video_language, videos
from dubbing_pipeline.orchestration.resources import StorageResource
from dubbing_pipeline.records import JsonObject
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.storage import MediaStorage
from dubbing_pipeline.storage.base import update_json

LEDGER_KEY = "registry/quarantine.json"
CHECK_NAME = "not_quarantined"
SOURCE_JOB, DUB_JOB = "source_half", "dub"  # the jobs of ``definitions.py`` (which imports this module)
JOBS: Final = (SOURCE_JOB, DUB_JOB)
PARTITION_TAG = "dagster/partition"
RUN_KEY_TAG = "dagster/run_key"
REPORT_JOB = "catalog_quarantine"
QUIET: JsonObject = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # a report, not a log
SOURCE_ASSET, PAIR_ASSET = dg.AssetKey("source_video"), dg.AssetKey("dubbed_video")

State = Literal["ready", "waiting", "quarantined"]
READY: Final = "ready"
WAITING: Final = "waiting"
QUARANTINED: Final = "quarantined"


# --- the policy (pure) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How long a failed partition waits, and after how many failures it waits for a person."""

    base_s: float = 600.0  # the wait after one failure; 0: no backoff
    cap_s: float = 86400.0  # the longest wait
    quarantine_after: int = 5  # consecutive failures that quarantine; 0: never

    @classmethod
    def of(cls, settings: Settings) -> Self:
        return cls(settings.retry_backoff_s, settings.retry_backoff_max_s, settings.quarantine_after)


def backoff_s(policy: RetryPolicy, failures: int) -> float:
    """The wait after ``failures`` consecutive failures: ``base · 2^(failures-1)``, capped."""
    if failures <= 0 or policy.base_s <= 0:
        return 0.0
    return min(policy.cap_s, policy.base_s * math.pow(2.0, min(failures - 1, 64)))


@dataclass(frozen=True)
class Verdict:
    state: State
    failures: int
    not_before: float | None = None  # WAITING: the earliest time of the next automatic attempt

    def reason(self) -> str:
        """The line ``plan.skipped`` shows (``READY``: empty)."""
        if self.state == QUARANTINED:
            return (
                f"quarantined: {self.failures} consecutive failed runs; release with "
                "'dubbing-pipeline retry VIDEO [--to LANG]' (or change its inputs)"
            )
        if self.state == WAITING and self.not_before is not None:
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.not_before))
            return f"backing off: {self.failures} consecutive failed runs; next automatic try after {when}"
        return ""


def judge(policy: RetryPolicy, failures: int, last_failure_at: float | None, now: float) -> Verdict:
    """Whether a partition with ``failures`` consecutive failures (the last at ``last_failure_at``)
    may be asked for at ``now``."""
    if failures <= 0 or last_failure_at is None:
        return Verdict(READY, 0)
    if 0 < policy.quarantine_after <= failures:
        return Verdict(QUARANTINED, failures)
    not_before = last_failure_at + backoff_s(policy, failures)
    return Verdict(READY if now >= not_before else WAITING, failures, not_before)


@dataclass(frozen=True)
class Failure:
    """One failed run of a partition: its id, the run key it asked with (None: none) and when it ended."""

    run_id: str
    run_key: str | None
    at: float


def streak(failures: Sequence[Failure], run_key: str | None, since: float) -> list[Failure]:
    """The consecutive failures that count: ``failures`` newest first, while they ended after
    ``since`` and asked with ``run_key`` (``None``: the run key of the newest of them)."""
    out: list[Failure] = []
    for failure in sorted(failures, key=lambda f: f.at, reverse=True):
        if failure.at <= since:
            break
        if run_key is None and not out:
            run_key = failure.run_key
        if failure.run_key != run_key:
            break
        out.append(failure)
    return out


# --- what the instance and the storage say ----------------------------------------------------------


@dataclass
class Ledger:
    """``registry/quarantine.json``: releases (partition → when) and reported quarantines
    (partition → the failed run the UI was told about)."""

    released: dict[str, float] = field(default_factory=dict)
    reported: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: object) -> Self:
        if not isinstance(data, dict):
            return cls()
        released = data.get("released") or {}
        reported = data.get("reported") or {}
        return cls(
            {str(k): float(v) for k, v in released.items()}, {str(k): str(v) for k, v in reported.items()}
        )

    def to_json(self) -> JsonObject:
        return {
            "released": dict(sorted(self.released.items())),
            "reported": dict(sorted(self.reported.items())),
        }

    @classmethod
    def read(cls, storage: MediaStorage) -> Self:
        data, _ = storage.get_versioned(LEDGER_KEY)
        return cls.from_json(None if data is None else json.loads(data.decode("utf-8")))


def change_ledger(
    storage: MediaStorage,
    *,
    release: Mapping[str, float] | None = None,
    report: Mapping[str, str] | None = None,
    forget: Collection[str] = (),
) -> Ledger:
    """Record releases, reported quarantines and partitions no longer reported, atomically with
    whatever another pod wrote meanwhile (``update_json``); returns the ledger stored."""

    def change(before: object) -> JsonObject:
        ledger = Ledger.from_json(before)
        for pk in forget:
            ledger.reported.pop(pk, None)
        ledger.released.update(release or {})
        for pk in release or {}:
            ledger.reported.pop(pk, None)
        ledger.reported.update(report or {})
        return ledger.to_json()

    _, after, _ = update_json(storage, LEDGER_KEY, change, what="the quarantine ledger", action="release")
    return Ledger.from_json(after)


def _ended(record: dg.RunRecord) -> float:
    """When a run ended (its last update, where Dagster kept no end time)."""
    return record.end_time if record.end_time is not None else record.update_timestamp.timestamp()


def _failed_runs(
    instance: dg.DagsterInstance, job: str, partitions: Sequence[str] | None
) -> dict[str, list[Failure]]:
    """The failed runs of ``job`` by partition, newest first (one query)."""
    tags: dict[str, str | Sequence[str]] = {} if partitions is None else {PARTITION_TAG: list(partitions)}
    if partitions is not None and not partitions:
        return {}
    runs_filter = dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.FAILURE], tags=tags)
    out: dict[str, list[Failure]] = {}
    for record in instance.get_run_records(runs_filter):
        run = record.dagster_run
        pk = run.tags.get(PARTITION_TAG)
        if pk:
            out.setdefault(pk, []).append(Failure(run.run_id, run.tags.get(RUN_KEY_TAG), _ended(record)))
    for found in out.values():
        found.sort(key=lambda f: f.at, reverse=True)
    return out


def _succeeded(
    instance: dg.DagsterInstance, job: str, failures: Mapping[str, Sequence[Failure]]
) -> dict[str, float]:
    """When each partition of ``failures`` last succeeded, if it did after its oldest failure there
    (one query: those partitions only, runs updated since the oldest of their failures)."""
    if not failures:
        return {}
    oldest = min(f.at for found in failures.values() for f in found)
    runs_filter = dg.RunsFilter(
        job_name=job,
        statuses=[dg.DagsterRunStatus.SUCCESS],
        tags={PARTITION_TAG: sorted(failures)},
        updated_after=dt.datetime.fromtimestamp(oldest, tz=dt.UTC),
    )
    out: dict[str, float] = {}
    for record in instance.get_run_records(runs_filter):
        pk = record.dagster_run.tags.get(PARTITION_TAG)
        if pk:
            out[pk] = max(out.get(pk, -math.inf), _ended(record))
    return out


@dataclass(frozen=True)
class History:
    """The failed runs of the partitions that have any (newest first), and when those last succeeded."""

    failures: dict[str, list[Failure]]
    succeeded: dict[str, float]

    @classmethod
    def read(
        cls, instance: dg.DagsterInstance, jobs: Iterable[str] = JOBS, partitions: Sequence[str] | None = None
    ) -> Self:
        """Two queries per job, whatever the size of the catalog (``partitions``: only those)."""
        failures: dict[str, list[Failure]] = {}
        succeeded: dict[str, float] = {}
        for job in jobs:
            found = _failed_runs(instance, job, partitions)
            for pk, runs in found.items():
                failures[pk] = sorted([*failures.get(pk, []), *runs], key=lambda f: f.at, reverse=True)
            for pk, at in _succeeded(instance, job, found).items():
                succeeded[pk] = max(succeeded.get(pk, -math.inf), at)
        return cls(failures, succeeded)

    def streak(self, pk: str, run_key: str | None, ledger: Ledger) -> list[Failure]:
        """The failures of ``pk`` that count (see :func:`streak`) since its last success or release."""
        since = max(self.succeeded.get(pk, -math.inf), ledger.released.get(pk, -math.inf))
        return streak(self.failures.get(pk, []), run_key, since)


def last_error(instance: dg.DagsterInstance, run_id: str) -> str:
    """The first line of a failed run's error: its first failed step's exception, else the run's
    own message (a run that failed outside its steps: a pod lost, a launch refused)."""
    kinds = {dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
    messages: list[str] = []
    for entry in instance.all_logs(run_id, of_type=kinds):
        event = entry.dagster_event
        if event is not None and event.is_step_failure and event.step_failure_data.error is not None:
            error = event.step_failure_data.error
            while error.cause is not None:  # Dagster wraps the op's exception: the cause says what failed
                error = error.cause
            return error.message.strip().splitlines()[0][:300]
        messages.append(entry.message or (event.message if event is not None else "") or "")
    return next((m.strip().splitlines()[0][:300] for m in messages if m.strip()), "no error recorded")


@dataclass(frozen=True)
class Quarantined:
    """A quarantined partition: its failures that count, newest first."""

    partition: str
    failures: list[Failure]


def find_quarantined(
    instance: dg.DagsterInstance,
    storage: MediaStorage,
    policy: RetryPolicy,
    partitions: Sequence[str] | None = None,
    jobs: Iterable[str] = JOBS,
) -> list[Quarantined]:
    """The quarantined partitions (of ``partitions``, or all), judged on their newest failure's run key."""
    history, ledger = History.read(instance, jobs, partitions), Ledger.read(storage)
    out: list[Quarantined] = []
    for pk in sorted(history.failures):
        failures = history.streak(pk, None, ledger)
        if failures and judge(policy, len(failures), failures[0].at, time.time()).state == QUARANTINED:
            out.append(Quarantined(pk, failures))
    return out


# --- the UI: an asset check per partition -----------------------------------------------------------


def check_asset(pk: str) -> dg.AssetKey:
    """The asset whose ``not_quarantined`` check speaks for partition ``pk``."""
    return PAIR_ASSET if "|" in pk else SOURCE_ASSET


def release_command(pk: str) -> str:
    lang, _, video = pk.rpartition("|")
    return f"dubbing-pipeline retry {video}" + (f" --to {lang}" if lang else "")


def _failed_check(pk: str, failures: Sequence[Failure], error: str) -> tuple[str, dict[str, str | int]]:
    """The description and metadata of a failed ``not_quarantined`` check."""
    description = f"quarantined after {len(failures)} consecutive failed runs: {error}"[:500]
    metadata: dict[str, str | int] = {
        "failures": len(failures),
        "last_run_id": failures[0].run_id,
        "last_error": error,
        "run_key": failures[0].run_key or "",
        "release": release_command(pk),
    }
    return description, metadata


def quarantined_evaluation(pk: str, failures: Sequence[Failure], error: str) -> dg.AssetCheckEvaluation:
    description, metadata = _failed_check(pk, failures, error)
    return dg.AssetCheckEvaluation(
        asset_key=check_asset(pk),
        check_name=CHECK_NAME,
        passed=False,
        partition=pk,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata=metadata,
    )


def released_evaluation(pk: str, why: str) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=check_asset(pk), check_name=CHECK_NAME, passed=True, partition=pk, description=why
    )


def _report_job(evaluations: Sequence[dg.AssetCheckEvaluation]) -> dg.JobDefinition:
    @dg.op(name="report", out={})
    def report() -> Iterator[dg.AssetCheckEvaluation]:
        yield from evaluations

    @dg.job(name=REPORT_JOB, description="The catalog's quarantine, told to the UI's asset checks.")
    def catalog_quarantine() -> None:
        report()

    return catalog_quarantine


def report_checks(instance: dg.DagsterInstance, evaluations: Sequence[dg.AssetCheckEvaluation]) -> None:
    """Record ``evaluations`` of the ``not_quarantined`` checks: all of them in one tiny run
    (job ``catalog_quarantine``, executed in this process; one op that yields them).

    Not ``report_runless_asset_event``: Dagster's index of check executions is unique on (check,
    run id, partition), and every runless event has the run id "", so on PostgreSQL the second
    runless evaluation of a partition's check fails (a unique violation) and the UI would show
    the first for ever. A run gives each report its own id (and the UI a run that says when).
    """
    if evaluations:
        _report_job(evaluations).execute_in_process(
            instance=instance, tags={"dubbing/trigger": "catalog"}, run_config=QUIET
        )


def check_result(
    instance: dg.DagsterInstance, storage: MediaStorage, policy: RetryPolicy, pk: str
) -> dg.AssetCheckResult:
    """The check executed by hand: the partition judged as ``retry --list`` judges it."""
    found = find_quarantined(instance, storage, policy, [pk])
    if not found:
        return dg.AssetCheckResult(passed=True, description="not quarantined")
    failures = found[0].failures
    description, metadata = _failed_check(pk, failures, last_error(instance, failures[0].run_id))
    return dg.AssetCheckResult(
        passed=False, severity=dg.AssetCheckSeverity.ERROR, description=description, metadata=metadata
    )


def _check(
    asset: dg.AssetKey, partitions_def: dg.PartitionsDefinition[str], policy: RetryPolicy
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name=CHECK_NAME,
        partitions_def=partitions_def,
        description="Fails while the catalog holds this partition back after repeated failed runs "
        "(DUBBING_QUARANTINE_AFTER); 'dubbing-pipeline retry' or new inputs release it.",
    )
    def not_quarantined(
        context: dg.AssetCheckExecutionContext, storage: StorageResource
    ) -> dg.AssetCheckResult:
        return check_result(context.instance, storage.get(), policy, context.partition_key)

    return not_quarantined


def build_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    """The ``not_quarantined`` checks of the source half's videos and of the dubs' pairs."""
    policy = RetryPolicy.of(settings)
    return [_check(SOURCE_ASSET, videos, policy), _check(PAIR_ASSET, video_language, policy)]


CHECKS = dg.AssetSelection.checks(
    dg.AssetCheckKey(SOURCE_ASSET, CHECK_NAME), dg.AssetCheckKey(PAIR_ASSET, CHECK_NAME)
)
"""The ``not_quarantined`` checks, for the jobs to leave out: reported by the catalog, not run."""


# --- the gate the catalog tick consults -------------------------------------------------------------


@dataclass
class Gate:
    """One tick's retry judgement: ``hold`` each request, then ``report`` what changed."""

    policy: RetryPolicy
    history: History
    ledger: Ledger
    now: float
    quarantined: dict[str, list[Failure]] = field(default_factory=dict)  # newly, to report
    freed: dict[str, str] = field(default_factory=dict)  # reported before, free now: why
    judged: set[str] = field(default_factory=set)

    @classmethod
    def read(
        cls,
        instance: dg.DagsterInstance,
        storage: MediaStorage,
        policy: RetryPolicy,
        jobs: Iterable[str] = JOBS,
        now: float | None = None,
    ) -> Self:
        now = time.time() if now is None else now
        return cls(policy, History.read(instance, jobs), Ledger.read(storage), now)

    def hold(self, request: dg.RunRequest) -> str | None:
        """Why ``request`` must wait (backing off, quarantined), or None: ask for it."""
        pk = str(request.partition_key)
        self.judged.add(pk)
        failures = self.history.streak(pk, request.run_key, self.ledger)
        verdict = judge(self.policy, len(failures), failures[0].at if failures else None, self.now)
        if verdict.state == READY:
            if pk in self.ledger.reported:
                self.freed[pk] = "released: its inputs changed (a new run key) or it ran since"
            return None
        if verdict.state == QUARANTINED and self.ledger.reported.get(pk) != failures[0].run_id:
            self.quarantined[pk] = failures
        return verdict.reason()

    def _unjudged_freed(self) -> None:
        """Reported partitions this tick did not ask about (fresh again, busy, not planned): free
        once the failures of their newest run key no longer quarantine them."""
        for pk in set(self.ledger.reported) - self.judged:
            failures = self.history.streak(pk, None, self.ledger)
            at = failures[0].at if failures else None
            if judge(self.policy, len(failures), at, self.now).state != QUARANTINED:
                self.freed[pk] = "released: it succeeded or was released since"

    def report(self, instance: dg.DagsterInstance, storage: MediaStorage) -> None:
        """Tell the UI (asset checks) and the ledger what this tick quarantined and freed."""
        self._unjudged_freed()
        report_checks(
            instance,
            [
                *(
                    quarantined_evaluation(pk, f, last_error(instance, f[0].run_id))
                    for pk, f in self.quarantined.items()
                ),
                *(released_evaluation(pk, why) for pk, why in self.freed.items()),
            ],
        )
        if self.quarantined or self.freed:
            reported = {pk: failures[0].run_id for pk, failures in self.quarantined.items()}
            self.ledger = change_ledger(storage, report=reported, forget=list(self.freed))
