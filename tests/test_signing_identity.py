"""The C2PA signing identity is the deployment's, not the pod's (issue 28, item 1).

* Two processes with different ``HOME``s (two pods: each has its own empty home, hence its own model
  cache) and different ``DAGSTER_HOME``s, signing with the same mounted credentials
  (``DUBBING_C2PA_CERT``/``DUBBING_C2PA_KEY``, laid out as a Kubernetes Secret volume is, behind its
  own timestamped folder in each), dub into the same media storage: the second run's ``mux`` step is a
  cache hit, and ``verify`` on the dub prints the configured signer's fingerprint.
* A production deployment without an identity refuses to dub: a ``configuration`` error (exit 2)
  naming ``DUBBING_C2PA_CERT``, and no signer of its own made under its home.
* The explicitly chosen cluster-wide local signer (``DUBBING_C2PA_LOCAL_DIR``), made once with the
  documented command, gives every pod the same identity too; two local roots differ by name.

The dubs are of a 4.25 s cut of the demo (its first lines; ``test_resume.py``'s clip), one fixture
for all assertions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from dubbing_pipeline import freshness
from dubbing_pipeline.demo import DEMO_VIDEO
from dubbing_pipeline.errors import ConfigurationError
from dubbing_pipeline.provenance.c2pa import make_signer
from dubbing_pipeline.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SIGNING_ENV = ("DUBBING_C2PA_CERT", "DUBBING_C2PA_KEY", "DUBBING_C2PA_LOCAL_DIR", "DUBBING_MODEL_CACHE")


def make_local_root(folder: Path) -> subprocess.CompletedProcess[str]:
    """The operator's command (k8s/README.md): a cluster-wide local signer in ``folder``."""
    cmd = [sys.executable, "-m", "dubbing_pipeline.provenance.local_root", str(folder)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)


def secret_volume(mount: Path, stamp: str, files: dict[str, bytes]) -> Path:
    """``files`` laid out as kubelet lays out a Secret volume: in ``..<stamp>/``, behind ``..data``."""
    data = mount / f"..{stamp}"
    data.mkdir(parents=True)
    for name, content in files.items():
        (data / name).write_bytes(content)
    (mount / "..data").symlink_to(data.name)
    for name in files:
        (mount / name).symlink_to(f"..data/{name}")
    return mount


def run_cli(
    home: Path, dagster_home: Path, media: Path, *args: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SIGNING_ENV}
    env.update(HOME=str(home), DAGSTER_HOME=str(dagster_home), DUBBING_STORAGE_URL=str(media), **extra)
    cmd = [sys.executable, "-m", "dubbing_pipeline.cli", *args]
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)


def fingerprint(pem: bytes) -> str:
    return x509.load_pem_x509_certificates(pem)[0].fingerprint(hashes.SHA256()).hex()


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("pods")
    clip = base / "clip.mp4"  # 4.25 s of the demo's dialogue, as in test_resume.py
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
         "testsrc=size=160x120:rate=10:duration=4.25", "-ss", "6.5", "-t", "4.25", "-i", str(DEMO_VIDEO),
         "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-c:a", "aac", str(clip)],
        check=True,
    )  # fmt: skip
    made = make_local_root(base / "identity")
    assert made.returncode == 0, made.stderr
    files = {name: (base / "identity" / name).read_bytes() for name in ("chain.pem", "key.pem")}
    media, runs = base / "media", {}
    for pod, (stamp, deployment) in {"a": ("2026_01_01_00_00_00.1", "embedded"),
                                     "b": ("2026_02_02_00_00_00.2", "production")}.items():  # fmt: skip
        mount = secret_volume(base / pod / "secrets" / "c2pa", stamp, files)
        home, dagster_home, out = base / pod / "home", base / pod / "dagster_home", base / pod / "out"
        runs[pod] = run_cli(
            home, dagster_home, media, "dub", str(clip), "--to", "es", "--out", str(out),
            DUBBING_DEPLOYMENT=deployment, DUBBING_C2PA_CERT=str(mount / "chain.pem"),
            DUBBING_C2PA_KEY=str(mount / "key.pem"),
        )  # fmt: skip
        assert runs[pod].returncode == 0, runs[pod].stderr[-3000:]
    return {"base": base, "media": media, "runs": runs, "identity": base / "identity", "files": files}


def test_a_second_pod_with_the_same_identity_hits_the_mux_cache(pods: dict[str, Any]) -> None:
    base, media = pods["base"], pods["media"]
    first = json.loads((base / "a" / "out" / "clip" / "es" / "report.json").read_text())
    second = json.loads((base / "b" / "out" / "clip" / "es" / "report.json").read_text())
    assert first["stages"]["dubbed_video"]["cached"] is False
    assert second["stages"]["dubbed_video"]["cached"] is True  # the mux step: a cache hit
    assert [p.parent.name for p in (media / "cache" / "mux").rglob("record.json")] != []
    assert len(list((media / "cache" / "mux").rglob("record.json"))) == 1  # one mux step for both pods
    assert first["provenance"]["c2pa"]["fingerprint"] == second["provenance"]["c2pa"]["fingerprint"]
    assert first["provenance"]["c2pa"]["fingerprint"] == fingerprint(pods["files"]["chain.pem"])
    for pod in ("a", "b"):  # neither pod made a signer of its own under its home
        assert not (base / pod / "home" / ".cache" / "dubbing_pipeline" / "c2pa").exists()


def test_verify_on_the_dub_prints_the_configured_signers_fingerprint(pods: dict[str, Any]) -> None:
    base = pods["base"]
    mp4 = base / "b" / "out" / "clip" / "es" / "clip.es.mp4"
    trust = pods["identity"] / "root.pem"
    pod = base / "b"
    done = run_cli(pod / "home", pod / "dagster_home", pods["media"], "verify", "--no-watermark",
                   "--trust", str(trust), str(mp4))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SHA-256 {fingerprint(pods['files']['chain.pem'])}" in done.stdout
    assert f"SHA-256 {fingerprint(trust.read_bytes())}" in done.stdout
    assert "verdict: trusted (exit 0)" in done.stdout


def test_production_without_an_identity_refuses_to_dub(pods: dict[str, Any]) -> None:
    """The same video, storage and instance as pod b, in production with no signing setting: the dub
    fails before any target-half work with a configuration error naming the setting."""
    base = pods["base"]
    home = base / "c" / "home"
    clip = base / "clip.mp4"
    done = run_cli(home, base / "b" / "dagster_home", pods["media"], "dub", str(clip), "--to", "es", "--out",
                   str(base / "c" / "out"), DUBBING_DEPLOYMENT="production")  # fmt: skip
    assert done.returncode == ConfigurationError.exit_code == 2, done.stderr[-3000:]
    assert "configuration: DUBBING_C2PA_CERT" in done.stderr and "DUBBING_C2PA_LOCAL_DIR" in done.stderr
    assert not (home / ".cache" / "dubbing_pipeline" / "c2pa").exists()  # no signer of its own


# --- without a dub: the settings, the identity, the local root ----------------------------------------


def test_the_signer_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"^DUBBING_C2PA_CERT and DUBBING_C2PA_KEY are not set"):
        make_signer(Settings(deployment="production", model_cache=str(tmp_path / "cache")))
    assert not (tmp_path / "cache").exists()
    with pytest.raises(ConfigurationError, match=r"^DUBBING_C2PA_LOCAL_DIR: no local C2PA signer"):
        make_signer(Settings(deployment="production", c2pa_local_dir=str(tmp_path / "missing")))
    assert not (tmp_path / "missing").exists()  # an explicit local signer is never made by a dub
    with pytest.raises(ConfigurationError, match="both set: choose one"):
        make_signer(Settings(c2pa_local_dir=str(tmp_path), c2pa_cert="chain.pem", c2pa_key="key.pem"))
    embedded = make_signer(Settings(model_cache=str(tmp_path / "cache")))  # the embedded default: unchanged
    assert (
        embedded is not None
        and embedded.local
        and (tmp_path / "cache" / "c2pa" / "local" / "key.pem").is_file()
    )


def test_a_cluster_wide_local_signer_is_one_identity_in_every_pod(tmp_path: Path) -> None:
    made = make_local_root(tmp_path / "made")
    assert made.returncode == 0, made.stderr
    assert "kubectl -n dubbing create secret generic dubbing-c2pa --from-file=" in made.stdout
    files = {n: (tmp_path / "made" / n).read_bytes() for n in ("root.pem", "chain.pem", "key.pem")}
    again = make_local_root(tmp_path / "made")  # made once: a second call keeps it
    assert again.returncode == 0 and "kept the local C2PA signer" in again.stdout
    assert (tmp_path / "made" / "key.pem").read_bytes() == files["key.pem"]
    digests, signers = set(), set()
    for pod, stamp in (("a", "2026_01_01_00_00_00.1"), ("b", "2026_03_03_00_00_00.3")):
        mount = secret_volume(tmp_path / pod / "secrets", stamp, files)
        settings = Settings(deployment="production", c2pa_local_dir=str(mount),
                            model_cache=str(tmp_path / pod / "cache"))  # fmt: skip
        signer = make_signer(settings)
        assert signer is not None and signer.local
        signers.add(signer.fingerprint)
        digests.add(freshness.stage_digest("dubbed_video", settings))
        assert not (tmp_path / pod / "cache" / "c2pa").exists()
    assert len(signers) == 1 and len(digests) == 1  # same signer, same mux key and code version


def test_two_local_roots_differ_by_name(tmp_path: Path) -> None:
    names = set()
    for n in ("one", "two"):
        signer = make_signer(Settings(model_cache=str(tmp_path / n)))
        assert signer is not None
        names.add((signer.subject, signer.issuer))
        assert signer.name.startswith("dubbing_pipeline local signer ") and len(signer.name.split()[-1]) == 16
    assert len(names) == 2
