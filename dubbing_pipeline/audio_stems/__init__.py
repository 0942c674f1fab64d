"""Voice/background separation ("stems").

``make_separator(settings)`` builds the configured ``Separator`` (cached per process);
``separate_file`` streams a WAV through it block by block and writes the two stems.
Importing this package does not import torch: the engines (``spleeter``, ``demucs``) are
imported by the factory when it builds one.
"""

from dubbing_pipeline.audio_stems.core import center_trim, plan_blocks, separate_file
from dubbing_pipeline.audio_stems.providers import (
    SEPARATORS,
    clear_separator_cache,
    describe_separator,
    make_separator,
)
from dubbing_pipeline.audio_stems.separator import Separator

__all__ = [
    "SEPARATORS",
    "Separator",
    "center_trim",
    "clear_separator_cache",
    "describe_separator",
    "make_separator",
    "plan_blocks",
    "separate_file",
]
