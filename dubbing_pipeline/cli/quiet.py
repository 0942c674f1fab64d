"""Dagster's beta and preview notices are for pipeline authors, not for people running a dub.

Imported first by ``dubbing_pipeline.cli``: the stage modules the commands import apply Dagster's
decorators when they are imported, and those decorators give the notices then.
"""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview).*")
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"dagster.*")
