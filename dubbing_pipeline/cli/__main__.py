"""``python -m dubbing_pipeline.cli``: the console script ``dubbing-pipeline``."""

from __future__ import annotations

from dubbing_pipeline.cli import run

if __name__ == "__main__":
    run()
