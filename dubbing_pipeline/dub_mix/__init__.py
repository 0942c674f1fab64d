"""Mixing the dubbed voice over the original background.

``mix_lines`` places the dubbed lines over the background (bit-exact where no line sounds; lines
turned down only where the sum would pass the peak ceiling), and ``loudness`` measures
ITU-R BS.1770-4 integrated loudness, RMS and true peak.
"""

from dubbing_pipeline.dub_mix.core import (
    FALLBACK_TARGET_LUFS,
    PEAK_CEILING_DBFS,
    PlacedLine,
    apply_fades,
    default_target_lufs,
    line_gain_db,
    mix_lines,
    span_scale,
)
from dubbing_pipeline.dub_mix.loudness import dbfs, integrated_loudness, sample_peak_dbfs, true_peak_dbfs

__all__ = [
    "FALLBACK_TARGET_LUFS",
    "PEAK_CEILING_DBFS",
    "PlacedLine",
    "apply_fades",
    "dbfs",
    "default_target_lufs",
    "integrated_loudness",
    "line_gain_db",
    "mix_lines",
    "sample_peak_dbfs",
    "span_scale",
    "true_peak_dbfs",
]
