"""Where the suite finds what ``.ci/install`` fetched: recordings, a GGUF model, llama-server.

``.ci/test_media.py`` fetches them once into ``$DUBBING_TEST_MEDIA`` (default
``~/.cache/dubbing_pipeline/test-media``) and writes ``manifest.json`` there. This module only
reads that manifest, when a test asks for it (never at import), and checks that every file
it names is still there; it never downloads anything.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

REQUIRED = (
    "pyannote_sample_wav",
    "pyannote_sample_rttm",
    "pyannote_sample_stm",
    "smollm2_gguf",
    "llama_server",
)


class MissingTestMedia(RuntimeError):
    """The test media are not (all) there: ``bash .ci/install`` fetches them."""


def media_root() -> Path:
    default = Path.home() / ".cache" / "dubbing_pipeline" / "test-media"
    return Path(os.environ.get("DUBBING_TEST_MEDIA") or default).expanduser()


@dataclass(frozen=True)
class TestMedia:
    __test__ = False  # not a test class, whatever its name

    root: Path
    files: dict[str, Path]

    @classmethod
    def load(cls, root: Path | None = None) -> TestMedia:
        root = root or media_root()
        hint = f"run `bash .ci/install` (it fetches the test media into {root}, or $DUBBING_TEST_MEDIA)"
        manifest = root / "manifest.json"
        try:
            entries = json.loads(manifest.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise MissingTestMedia(f"no test media manifest at {manifest}: {hint}") from exc
        files = {key: root / entry["path"] for key, entry in entries.items()}
        missing = [key for key in REQUIRED if key not in files or not files[key].is_file()]
        if missing:
            raise MissingTestMedia(f"test media incomplete in {root} (missing {missing}): {hint}")
        return cls(root, files)

    @property
    def pyannote_sample(self) -> Path:
        """Folder with ``sample.wav`` (30 s, 16 kHz, two speakers), ``sample.rttm``, ``sample.stm``."""
        return self.files["pyannote_sample_wav"].parent

    @property
    def gguf(self) -> Path:
        return self.files["smollm2_gguf"]

    @property
    def llama_server(self) -> Path:
        return self.files["llama_server"]
