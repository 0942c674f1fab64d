"""Pin the numeric kernels of the CPU libraries, so every x86-64 machine computes the same numbers.

The same model on the same input gave different transcripts on an Intel and an AMD machine:
CTranslate2 uses Intel MKL on Intel CPUs and oneDNN elsewhere, and both pick their widest
instruction set (AVX2, AVX-512, VNNI, AMX) at run time. A word more or less moves a segment
boundary, and the decisions downstream (speakers, line timing) follow. Measured on the demo
(AMD EPYC, AVX2): MKL gave WER 0.136 / 13 segments, oneDNN 0.111 / 14 segments, CTranslate2's
own kernels at AVX or SSE 0.099; the diarization moved between DER 0.32 and 0.39 with them.

These variables choose one code path that every machine of this project can run (x86-64 with
AVX2): oneDNN for CTranslate2's matrix products, capped at AVX2 (its JIT writes the same AVX2
kernels on every vendor), CTranslate2's and PyTorch's own kernels at AVX2, and MKL's conditional
numerical reproducibility at AVX2 for whatever still calls MKL. MKL was pinned for CTranslate2
before: it gives the same numbers on AMD, but through its generic code path there, and Whisper
ran 5× slower on an AMD EPYC (the 30 s demo: 23.7 s with MKL, 4.6 s with oneDNN, same words).
They must be in the environment before those libraries load, so :func:`pin_cpu_kernels` runs
when the package is imported (``dubbing_pipeline/__init__.py``); each is only a default
(``setdefault``): a value already in the environment wins. On a CPU without AVX2, or off
x86-64, nothing is pinned (the libraries' own choice is then the only one that runs).

numpy and scipy pick kernels from the CPU too: OpenBLAS its matrix kernels, numpy its SIMD
loops; both are pinned to their AVX2 paths (numpy computes Whisper's log-mel features, so the
transcript moved with them). The variables are read when numpy loads: a process that imported
numpy before this package keeps its own choice (``numpy_pinned`` tells).

The speaker embedder's int8 graph is dequantised for the same reason
(``speakers/embedders.py``). What still differs between CPUs is float rounding inside
onnxruntime (about 1e-7 relative; it has no switch for its kernels), far inside the margins
of the decisions built on them; docs/quality.md, "Determinism across CPUs", lists what was measured.
"""

from __future__ import annotations

import os
import platform
import sys

PINNED: dict[str, str] = {
    "CT2_USE_MKL": "0",  # CTranslate2: oneDNN on every vendor (its default is MKL on Intel only)
    "MKL_CBWR": "AVX2",  # MKL: the same results on every AVX2 CPU (conditional numerical reproducibility)
    "CT2_FORCE_CPU_ISA": "AVX2",  # CTranslate2's own kernels
    "ATEN_CPU_CAPABILITY": "avx2",  # PyTorch's vectorised kernels (Spleeter, Demucs on CPU)
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN inside PyTorch and CTranslate2
    # numpy's and scipy's OpenBLAS (DYNAMIC_ARCH builds): its AVX2 kernels on every CPU, where it
    # would pick SkylakeX/Cooperlake/SapphireRapids kernels on AVX-512 machines. faster-whisper
    # computes the log-mel features with numpy, so the transcript followed: measured on the demo
    # (AMD EPYC with AVX-512), a comma and 20–80 ms of word timing moved with this pin alone
    "OPENBLAS_CORETYPE": "Haswell",
    # numpy's own SIMD loops (exp, log, sin, sort...): the AVX2 level (X86_V3) everywhere; these
    # are numpy 2.x's names of the AVX-512 levels it dispatches to (an unknown name only warns)
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
}


def cpu_flags() -> set[str]:
    """The CPU feature flags of this machine (``/proc/cpuinfo``); empty where they cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), for reports that quote speeds or scores."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_isa(flags: set[str] | None = None) -> str:
    """The widest vector extension the CPU offers, in the words the pins use."""
    flags = flags if flags is not None else cpu_flags()
    for name, flag in (("AMX", "amx_tile"), ("AVX512", "avx512f"), ("AVX2", "avx2"), ("AVX", "avx")):
        if flag in flags:
            return name
    return "GENERIC"


def can_pin(machine: str | None = None, flags: set[str] | None = None) -> bool:
    """Whether this machine runs the pinned path: x86-64 with AVX2 and FMA."""
    machine = machine if machine is not None else platform.machine()
    if machine.lower() not in ("x86_64", "amd64"):
        return False
    flags = flags if flags is not None else cpu_flags()
    return {"avx2", "fma"} <= flags


def pin_cpu_kernels(environ: os._Environ[str] | dict[str, str] | None = None) -> dict[str, str]:
    """Set the pinned kernel variables where unset; returns the values in force (for cache keys)."""
    env = os.environ if environ is None else environ
    if can_pin():
        for name, value in PINNED.items():
            env.setdefault(name, value)
    return kernel_settings(env)


def numpy_pinned() -> bool:
    """Whether numpy in this process runs the pinned paths: no AVX-512 SIMD loops, and the
    OpenBLAS core type pinned when it loaded (True where nothing is pinned). Before numpy is
    imported: whether it will, with the environment as it is now (it reads the pins as it loads)."""
    if not can_pin():
        return True
    blas = os.environ.get("OPENBLAS_CORETYPE") == PINNED["OPENBLAS_CORETYPE"]
    levels = PINNED["NPY_DISABLE_CPU_FEATURES"].split()
    umath = sys.modules.get("numpy._core._multiarray_umath")
    if umath is None:  # not loaded yet: it will disable the levels the environment names
        disabled = os.environ.get("NPY_DISABLE_CPU_FEATURES", "").split()
        return blas and set(levels) <= set(disabled)
    features: dict[str, bool] = getattr(umath, "__cpu_features__", {})
    return blas and not any(features.get(name) for name in levels)


def kernel_settings(environ: os._Environ[str] | dict[str, str] | None = None) -> dict[str, str]:
    """The kernel variables as they are now (empty string when unset)."""
    env = os.environ if environ is None else environ
    return {name: env.get(name, "") for name in PINNED}
