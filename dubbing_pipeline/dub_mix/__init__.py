"""Mixing the dubbed voice over the original background, and loudness normalisation.

``mix_lines`` places the dubbed lines over the background (bit-exact where no line sounds),
``normalize`` applies one global gain toward a loudness target under a peak ceiling, and
``loudness`` measures ITU-R BS.1770-4 integrated loudness, RMS and true peak.
"""

from dubbing_pipeline.dub_mix.core import (
    FALLBACK_TARGET_LUFS,
    PlacedLine,
    apply_fades,
    default_target_lufs,
    line_gain_db,
    mix_lines,
    normalize,
)
from dubbing_pipeline.dub_mix.loudness import dbfs, integrated_loudness, sample_peak_dbfs, true_peak_dbfs

__all__ = [
    "FALLBACK_TARGET_LUFS",
    "PlacedLine",
    "apply_fades",
    "dbfs",
    "default_target_lufs",
    "integrated_loudness",
    "line_gain_db",
    "mix_lines",
    "normalize",
    "sample_peak_dbfs",
    "true_peak_dbfs",
]
