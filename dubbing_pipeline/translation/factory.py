"""The translator the settings ask for: Apertium for its offline pairs, or an OpenAI-compatible LLM."""

from __future__ import annotations

from dubbing_pipeline.errors import ConfigurationError, ModelMissingError, UnsupportedError
from dubbing_pipeline.settings import Settings
from dubbing_pipeline.translation.apertium import ApertiumTranslator, debian_package, find_apertium
from dubbing_pipeline.translation.base import APERTIUM_HOWTO, LLM_HOWTO, PIVOT_HOWTO, TRANSLATORS, Translator
from dubbing_pipeline.translation.budget import normalize_language
from dubbing_pipeline.translation.llm import LLMTranslator
from dubbing_pipeline.translation.pivot import DIRECT, PivotTranslator

AUTO_CHOICE: dict[tuple[str, str], str] = {
    ("en", "es"): "combined",
    ("en", "ca"): "combined",
    ("en", "gl"): "combined",
    ("en", "pt"): "pivot",
    ("pt", "en"): "pivot",
    ("pt", "es"): "pivot",
    ("pt", "ca"): "pivot",
    ("pt", "gl"): "pivot",
}
"""``auto``'s offline choice per pair, by measurement (``python -m
dubbing_pipeline.tooling.translation_eval``, docs/stages.md); Apertium translates its other pairs."""


def _supported_message(source: str, target: str, apertium_pairs: list[tuple[str, str]], why: str) -> str:
    offered = ", ".join(f"{s}->{t}" for s, t in apertium_pairs) or "none (apertium is not installed)"
    neural = ", ".join(f"{s}->{t}" for s, t in sorted(DIRECT))
    return f"{why}; offline pairs (apertium): {offered}; (the Bergamot model): {neural}; {LLM_HOWTO}"


def _apertium() -> ApertiumTranslator | None:
    binary = find_apertium()
    return ApertiumTranslator(binary) if binary else None


def make_translator(settings: Settings, source: str, target: str) -> Translator:
    """The translator ``settings`` ask for, checked against the pair ``source`` → ``target``.

    Raises ``UnsupportedError`` (same language, or a pair no configured provider offers; the
    message lists what is supported and how to configure the llm translator),
    ``ModelMissingError`` (Apertium or its pair data is not installed) or
    ``ConfigurationError`` (unknown ``DUBBING_TRANSLATOR``, llm without URL or model).
    """
    src, tgt = normalize_language(source), normalize_language(target)
    choice = (settings.translator or "auto").strip().lower()
    if choice not in TRANSLATORS:
        raise ConfigurationError(
            f"DUBBING_TRANSLATOR={settings.translator!r} is not one of {', '.join(TRANSLATORS)}"
        )
    if not src or not tgt:
        raise UnsupportedError(f"source and target languages are needed (got {source!r} -> {target!r})")
    if src == tgt:
        apertium = _apertium()
        raise UnsupportedError(
            _supported_message(
                src,
                tgt,
                apertium.pairs() if apertium else [],
                f"source and target language are both {src!r}: nothing to translate",
            )
        )

    if choice == "llm":
        return _make_llm(settings)

    apertium = _apertium()
    if choice in ("pivot", "pivot:pt", "combined"):
        return _make_pivot(apertium, src, tgt, combine=choice == "combined")
    if choice == "apertium":
        if apertium is None:
            raise ModelMissingError(f"DUBBING_TRANSLATOR=apertium but apertium is missing; {APERTIUM_HOWTO}")
        if not apertium.supports(src, tgt):
            offered = ", ".join(f"{s}->{t}" for s, t in apertium.pairs()) or "none"
            raise ModelMissingError(
                f"apertium has no {src}->{tgt} pair installed (installed: {offered}); its data would be "
                f"the Debian package {debian_package(src, tgt)} where Debian has one; {LLM_HOWTO}"
            )
        return apertium

    # auto
    chosen = AUTO_CHOICE.get((src, tgt))
    if apertium is not None and chosen is not None:
        offline = _make_pivot(apertium, src, tgt, combine=chosen == "combined")
        if offline.supports(src, tgt):
            return offline
    if apertium is not None and apertium.supports(src, tgt):
        return apertium
    if settings.llm_url:
        return _make_llm(settings)
    if apertium is None and (src, tgt) == ("en", "es"):
        raise ModelMissingError(f"no translator for en->es: {APERTIUM_HOWTO}; or {LLM_HOWTO}")
    raise UnsupportedError(
        _supported_message(src, tgt, apertium.pairs() if apertium else [], f"no translator for {src}->{tgt}")
    )


def _make_pivot(apertium: ApertiumTranslator | None, src: str, tgt: str, *, combine: bool) -> PivotTranslator:
    if apertium is None:
        raise ModelMissingError(f"the pivot translator needs Apertium; {PIVOT_HOWTO}")
    pivot = PivotTranslator(apertium, combine=combine)
    if not pivot.supports(src, tgt):
        offered = ", ".join(f"{s}->{t}" for s, t in pivot.pairs()) or "none"
        raise ModelMissingError(
            f"the {pivot.name} translator has no {src}->{tgt} pair (offered: {offered}); {PIVOT_HOWTO}"
        )
    return pivot


def _make_llm(settings: Settings) -> Translator:
    if not settings.llm_url:
        raise ConfigurationError(f"the llm translator needs DUBBING_LLM_URL; {LLM_HOWTO}")
    if not settings.llm_model:
        raise ConfigurationError(f"the llm translator needs DUBBING_LLM_MODEL; {LLM_HOWTO}")
    return LLMTranslator.from_settings(settings)
