"""Shared fixtures: real recordings from packages, a real local S3 endpoint, temp instances."""

# first, before anything loads numpy: the package pins numpy's and OpenBLAS's kernels to their
# AVX2 paths (dubbing_pipeline/common/numerics.py), so stages run in this process compute what the CLI does
import dubbing_pipeline  # noqa: F401  # isort: skip

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testmedia import MissingTestMedia, TestMedia

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a real HTTP endpoint, not a mocked client), its writes atomic
    as S3's are (``AtomicMotoServer``)."""
    from dubbing_pipeline.tooling.devservers import AtomicMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = AtomicMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(params=["local", "s3"])
def local_or_s3(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Media storage in a temporary folder, then in a fresh bucket of moto's S3 server: a test of
    both backends (conditional writes, listing) takes it once and runs twice."""
    if request.param == "local":
        from dubbing_pipeline.storage import LocalStorage

        yield LocalStorage(tmp_path / "media")
        return
    import uuid

    import boto3

    from dubbing_pipeline.storage.s3 import S3Storage

    client = boto3.client("s3", endpoint_url=request.getfixturevalue("moto_s3"), region_name="us-east-1")
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    yield S3Storage(bucket, "media", client=client)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Any]:
    """A fresh Dagster instance (sqlite, in a temporary DAGSTER_HOME) for one test."""
    import dagster as dg

    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        yield inst


@pytest.fixture(scope="module")
def pg_home(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A ``$DAGSTER_HOME`` whose run, event-log and schedule storage are a throwaway PostgreSQL
    database named after the test module."""
    from dubbing_pipeline.tooling.devservers import postgres_instance_yaml, postgres_server

    with postgres_server(f"dagster_{request.module.__name__.removeprefix('test_')}") as server:
        home = tmp_path_factory.mktemp("pg_home")
        (home / "dagster.yaml").write_text(postgres_instance_yaml(server), encoding="utf-8")
        yield home


@pytest.fixture(scope="module")
def pg(pg_home: Path) -> Iterator[Any]:
    """A Dagster instance on ``pg_home``."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(pg_home)) as instance:
        yield instance


@pytest.fixture(scope="session")
def test_media() -> TestMedia:
    """Recordings, a model and a server fetched by ``.ci/install`` (never by the test session)."""
    try:
        return TestMedia.load()
    except MissingTestMedia as exc:
        missing = str(exc)
    pytest.fail(missing, pytrace=False)


@pytest.fixture(scope="session")
def pyannote_sample(test_media: TestMedia) -> Path:
    """The real two-speaker recording shipped in the pyannote-audio 4.0.7 wheel (MIT)."""
    return test_media.pyannote_sample


# --------------------------------------------------------------------------- skip policy
# A skipped test is a test that did not run. Only tests marked with one of ALLOWED_SKIP_MARKERS
# may skip; any other skip fails the run, and every run ends with its skip list.

ALLOWED_SKIP_MARKERS = {"gpu": "needs a CUDA GPU, the gpu extra or checkpoints no CI machine has"}
_skips: list[tuple[str, str, str | None]] = []


def _allowed_marker(item_keywords: object) -> str | None:
    return next((m for m in ALLOWED_SKIP_MARKERS if m in item_keywords), None)  # type: ignore[operator]


def _drop_unloaded_lazy_modules() -> None:
    """Take speechbrain's unloaded lazy modules out of ``sys.modules`` (pyannote imports speechbrain).

    speechbrain puts redirects for its deprecated module names into ``sys.modules``; touching any
    attribute of one imports its target, and for optional integrations (``k2_fsa``: the k2 package)
    that raises ImportError instead of AttributeError. Hypothesis scans ``sys.modules`` for
    constants, so after a test that imported pyannote every property test failed with "Please
    install k2". Nothing imports these names; the package attributes stay as they are.
    """
    import sys

    for name, module in list(sys.modules.items()):
        if type(module).__name__ in ("LazyModule", "DeprecatedModuleRedirect") and (
            module.__dict__.get("lazy_module") is None
        ):
            del sys.modules[name]


def pytest_runtest_teardown(item: pytest.Item) -> None:
    _drop_unloaded_lazy_modules()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skips.append((report.nodeid, reason, _allowed_marker(report.keywords)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.section("skip list")
    if not _skips:
        terminalreporter.write_line("no test was skipped")
    for nodeid, reason, marker in _skips:
        verdict = f"allowed ({marker})" if marker else "NOT ALLOWED"
        terminalreporter.write_line(f"{verdict}: {nodeid}: {reason}")
    bad = [s for s in _skips if s[2] is None]
    if bad:
        terminalreporter.write_line(
            f"{len(bad)} test(s) skipped without an allowed marker ({', '.join(ALLOWED_SKIP_MARKERS)}): "
            "the run fails"
        )
    terminalreporter.section("watermark list")
    for name, passed, summary in _watermarks:
        terminalreporter.write_line(f"{'marked' if passed else 'NOT MARKED'}: {name}: {summary}")
    if not _watermarks:
        terminalreporter.write_line("no dub of this run left a report.json")
    if any(not passed for _, passed, _ in _watermarks):
        terminalreporter.write_line(
            "a dub's watermark could not be read back (DUBBING_WATERMARK=on): the run fails"
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _watermarks.extend(_watermark_checks(session))
    unmarked = [w for w in _watermarks if not w[1]]
    if exitstatus == 0 and (any(marker is None for _, _, marker in _skips) or unmarked):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --------------------------------------------------------------------------- watermark policy
# Every dub the suite makes carries the audio watermark (DUBBING_WATERMARK is on by default): at the
# end of the session every report.json under its temporary folder whose watermark check ran must
# have passed (the mark read back from the MP4, none in the source), and the run lists them.

_watermarks: list[tuple[str, bool, str]] = []


def _watermark_checks(session: pytest.Session) -> list[tuple[str, bool, str]]:
    import json

    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return []
    found: set[tuple[str, bool, str]] = set()  # a dub's report is in its storage and its --out folder
    for path in sorted(factory.getbasetemp().rglob("report.json")):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        check = (
            report.get("quality", {}).get("checks", {}).get("watermark") if isinstance(report, dict) else None
        )
        if not check or not check.get("enabled"):
            continue
        summary = (
            f"dub {check['dub_confidence']:.2f}, source {check['source_confidence']:.2f}, "
            f"{check['dub_lines_detected']}/{check['lines']} lines"
            + (" (the source was marked already: a dub of an AI dub)" if check.get("source_marked") else "")
        )
        found.add(
            (f"{report.get('video_id')}|{report.get('target_language')}", bool(check["passed"]), summary)
        )
    return sorted(found)
