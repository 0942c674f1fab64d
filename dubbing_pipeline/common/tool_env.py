"""The environment of the tools the pipeline runs (ffmpeg, Apertium, espeak-ng, hunspell…): this
process's, less every credential. A tool reads media and writes media; none needs the S3 keys, the
LLM's API key or a password, so a static-key fallback (``docs/production.md``) never reaches one."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

SECRET = re.compile(r"^AWS_(?!REGION$|DEFAULT_REGION$)|SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|CREDENTIAL", re.I)
"""Names of variables a tool never gets: AWS's (but its region), and anything named like a secret."""


def tool_env(extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (this process's environment) without its credentials, plus ``extra``."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not SECRET.search(k)}
    return {**env, **(extra or {})}
