"""Shared fixtures: real recordings from packages, a real local S3 endpoint, temp instances."""

import contextlib
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a real HTTP endpoint, not a mocked client)."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def pyannote_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real two-speaker recording shipped in the pyannote-audio 4.0.7 wheel (MIT)."""
    env = os.environ.get("DUBBING_PYANNOTE_SAMPLE_DIR")
    if env and (Path(env) / "sample.wav").exists():
        return Path(env)
    cache = Path(
        os.environ.get("DUBBING_TEST_CACHE", Path.home() / ".cache" / "dubbing_pipeline" / "test-media")
    )
    target = cache / "pyannote-sample"
    if (target / "sample.wav").exists():
        return target
    dl = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dl), "pyannote-audio==4.0.7"],
        capture_output=True,
        check=False,
    )
    wheels = list(dl.glob("pyannote_audio-*.whl"))
    if proc.returncode != 0 or not wheels:
        pytest.skip("pyannote-audio 4.0.7 wheel (test recording) not reachable")
    tmp = cache / "pyannote-sample.part"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with zipfile.ZipFile(wheels[0]) as zf:
        for name in zf.namelist():
            if name.startswith("pyannote/audio/sample/") and not name.endswith("/"):
                (tmp / Path(name).name).write_bytes(zf.read(name))
    tmp.replace(target)
    os.environ["DUBBING_PYANNOTE_SAMPLE_DIR"] = str(target)
    return target


@pytest.fixture(autouse=True, scope="session")
def _sample_env(request: pytest.FixtureRequest) -> None:
    """Expose the sample dir to tests that read DUBBING_PYANNOTE_SAMPLE_DIR directly."""
    if "DUBBING_PYANNOTE_SAMPLE_DIR" not in os.environ:
        with contextlib.suppress(pytest.skip.Exception):
            request.getfixturevalue("pyannote_sample")
