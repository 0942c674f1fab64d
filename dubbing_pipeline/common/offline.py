"""No hub access at run time: models come from packages or a configured directory."""

from __future__ import annotations

import os
import sys


def keep_hub_offline() -> None:
    """Keep huggingface_hub offline in this process unless ``HF_HUB_OFFLINE`` says otherwise.

    huggingface_hub reads ``HF_HUB_OFFLINE`` once, when it is imported. In a worker that
    imported it earlier (transformers, faster-whisper...) setting the variable has no effect: a
    stray ``hf_hub_download`` still resolves DNS and retries 5 times with backoff before it
    fails. So the module constant is set too.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None and os.environ["HF_HUB_OFFLINE"].strip().lower() in {"1", "true", "yes", "on"}:
        setattr(constants, "HF_HUB_OFFLINE", True)  # noqa: B010 (a module attribute mypy cannot see)
