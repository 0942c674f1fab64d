"""The kernel pins: set before the numeric libraries load, only where the CPU runs them."""

from __future__ import annotations

import subprocess
import sys

from dubbing_pipeline.common import numerics


def test_pins_are_defaults_that_an_explicit_value_overrides() -> None:
    env = {"CT2_FORCE_CPU_ISA": "GENERIC"}
    if numerics.can_pin():
        settings = numerics.pin_cpu_kernels(env)
        assert settings["CT2_FORCE_CPU_ISA"] == "GENERIC"  # the user's value wins
        assert settings["CT2_USE_MKL"] == "0" and settings["MKL_CBWR"] == "AVX2"
        assert set(settings) == set(numerics.PINNED)
    else:  # pragma: no cover - not on this project's machines
        assert numerics.pin_cpu_kernels(env) == {**dict.fromkeys(numerics.PINNED, ""), **env}


def test_only_x86_64_with_avx2_and_fma_is_pinned() -> None:
    assert numerics.can_pin("x86_64", {"avx2", "fma", "sse4_2"})
    assert numerics.can_pin("AMD64", {"avx2", "fma", "avx512f"})
    assert not numerics.can_pin("x86_64", {"avx", "sse4_2"})
    assert not numerics.can_pin("aarch64", {"avx2", "fma"})


def test_importing_the_package_pins_the_kernels_before_any_library_loads() -> None:
    code = (
        "import os, sys\n"
        f"for k in {sorted(numerics.PINNED)!r}:\n"
        "    os.environ.pop(k, None)\n"
        "import dubbing_pipeline\n"
        "print(sorted(m for m in ('ctranslate2','torch','onnxruntime','numpy') if m in sys.modules))\n"
        "print(os.environ.get('CT2_USE_MKL'), os.environ.get('CT2_FORCE_CPU_ISA'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded, pins = out.splitlines()
    assert loaded == "[]"
    assert pins == ("0 AVX2" if numerics.can_pin() else "None None")


def test_numpy_runs_its_avx2_paths_in_a_process_that_imports_the_package_first() -> None:
    code = (
        "import os\n"
        f"for k in {sorted(numerics.PINNED)!r}:\n"
        "    os.environ.pop(k, None)\n"
        "import dubbing_pipeline.common.numerics as n, numpy\n"
        "from numpy._core._multiarray_umath import __cpu_features__ as f\n"
        "print(n.numpy_pinned(), f.get('X86_V4', False), f.get('X86_V3'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    pinned, avx512, avx2 = out.split()
    assert pinned == "True"
    if numerics.can_pin():
        assert (avx512, avx2) == ("False", "True")


def test_the_dagster_code_location_loads_numpy_after_the_pins() -> None:
    """The webserver, daemon and run workers import Dagster, then the definitions: Dagster itself
    must not have loaded numpy by then."""
    code = (
        "import os, sys\n"
        f"for k in {sorted(numerics.PINNED)!r}:\n"
        "    os.environ.pop(k, None)\n"
        "import dagster, dagster_k8s, dagster_postgres, dagster_aws\n"
        "print('numpy' in sys.modules)\n"
        "import dubbing_pipeline.definitions\n"
        "from dubbing_pipeline.common.numerics import numpy_pinned\n"
        "print(numpy_pinned())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


def test_this_test_process_runs_the_pinned_numpy() -> None:
    """conftest imports the package before numpy, so in-process stages compute what the CLI does."""
    assert numerics.numpy_pinned()


def test_the_widest_vector_extension_names_the_cpu_kind() -> None:
    assert numerics.cpu_isa({"avx", "avx2", "avx512f", "amx_tile"}) == "AMX"
    assert numerics.cpu_isa({"avx", "avx2", "avx512f"}) == "AVX512"
    assert numerics.cpu_isa({"avx", "avx2"}) == "AVX2"
    assert numerics.cpu_isa({"sse4_2"}) == "GENERIC"
    assert numerics.cpu_model()  # never empty
