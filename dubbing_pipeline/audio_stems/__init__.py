"""Voice/background separation ("stems").

``make_separator(settings)`` builds the configured ``Separator`` (cached per process);
``separate_file`` streams a WAV through it block by block and writes the two stems.
Importing this package does not import torch.
"""

from dubbing_pipeline.audio_stems.core import center_trim, plan_blocks, separate_file
from dubbing_pipeline.audio_stems.providers import (
    SEPARATORS,
    DemucsSeparator,
    Separator,
    SpleeterSeparator,
    clear_separator_cache,
    make_separator,
)

__all__ = [
    "SEPARATORS",
    "DemucsSeparator",
    "Separator",
    "SpleeterSeparator",
    "center_trim",
    "clear_separator_cache",
    "make_separator",
    "plan_blocks",
    "separate_file",
]
