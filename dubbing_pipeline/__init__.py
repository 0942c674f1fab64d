"""dubbing_pipeline: an AI video-localization pipeline orchestrated by Dagster."""

from dubbing_pipeline.common.numerics import pin_cpu_kernels

# Before any numeric library loads: the same numbers on every x86-64 CPU (see numerics.py).
pin_cpu_kernels()

__version__ = "0.1.0"
