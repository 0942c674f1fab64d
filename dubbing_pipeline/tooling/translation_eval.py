"""Measure the offline translators on the development set.

``python -m dubbing_pipeline.tooling.translation_eval`` prints the table of docs/stages.md.

Developer tooling, never imported by the runtime. For each pair with references in
``translation_eval/devset.tsv`` (en→es 150 lines, en→ca and en→gl 50) and each system (Apertium
direct, the pivot, the per-line combination) it reports:

* **chrF** (sacrebleu, corpus level, against the hand-written references);
* **adequate %**: the share of lines whose verdict is "adequate": line chrF ≥ ``ADEQUATE_CHRF``
  **and** no word the target's hunspell dictionary does not know that is not in the English
  source (names). The verdict is computed from the references and the dictionary, never by the
  translator under test; the threshold was calibrated on a hand-judged subset (``calibration.tsv``,
  ``ADEQUATE_CHRF``), whose hand verdicts per system are printed too;
* **s/line**: wall seconds of the whole ``translate`` call divided by its lines (process starts
  and model loading included; informative only).

The default (``factory.AUTO_CHOICE``) is marked ``*`` in the table it prints (Markdown).
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import sacrebleu

from dubbing_pipeline.translation.apertium import ApertiumTranslator
from dubbing_pipeline.translation.base import LineRequest, Translator
from dubbing_pipeline.translation.bergamot import BergamotModel
from dubbing_pipeline.translation.factory import AUTO_CHOICE
from dubbing_pipeline.translation.pivot import PivotTranslator
from dubbing_pipeline.translation.spelling import unknown_words, words

DEVSET = os.path.join(os.path.dirname(__file__), "translation_eval", "devset.tsv")
CALIBRATION_SET = os.path.join(os.path.dirname(__file__), "translation_eval", "calibration.tsv")
ADEQUATE_CHRF = 35.0
"""Of thresholds 30-70 (step 5), the one whose verdict agreed best with the hand verdicts of
``calibration.tsv`` (60 en->es outputs: every 5th line, Apertium and the pivot, judged by hand:
"a Spanish speaker gets the meaning right"): 39 of 60. Line chrF is a weak proxy for adequacy."""
TARGETS = ("es", "ca", "gl")


@dataclass(frozen=True)
class Row:
    pair: str
    system: str
    lines: int
    chrf: float
    adequate: float
    seconds_per_line: float
    default: bool


def load_devset(path: str = DEVSET) -> list[dict[str, str]]:
    """The development set's rows (``register``, ``en``, ``es``, ``ca``, ``gl``)."""
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def verdicts(sources: Sequence[str], outputs: Sequence[str], refs: Sequence[str], target: str) -> list[bool]:
    """Per line: adequate when line chrF ≥ ``ADEQUATE_CHRF`` and no unknown target word."""
    unknown = unknown_words((w for o in outputs for w in words(o)), target)
    out: list[bool] = []
    for src, hyp, ref in zip(sources, outputs, refs, strict=True):
        in_source = {w.casefold() for w in words(src)}
        foreign = [w for w in words(hyp) if w in unknown and w.casefold() not in in_source]
        score = sacrebleu.sentence_chrf(hyp, [ref]).score
        out.append(bool(hyp.strip()) and score >= ADEQUATE_CHRF and not foreign)
    return out


def measure(
    translator: Translator, sources: Sequence[str], refs: Sequence[str], target: str
) -> tuple[float, float, float, list[str]]:
    """(chrF, adequate %, seconds per line, outputs) of ``translator`` on the lines."""
    requests = [LineRequest(f"d{i}", s, 4 * len(s.split()), 0.0) for i, s in enumerate(sources)]
    start = time.perf_counter()
    outputs = [r.text for r in translator.translate(requests, "en", target)]
    seconds = (time.perf_counter() - start) / len(sources)
    chrf = sacrebleu.corpus_chrf(outputs, [list(refs)]).score
    good = verdicts(sources, outputs, refs, target)
    return chrf, 100.0 * sum(good) / len(good), seconds, outputs


def evaluate(path: str = DEVSET) -> list[Row]:
    """One row per pair and system."""
    rows = load_devset(path)
    apertium = ApertiumTranslator()
    model = BergamotModel()
    systems: list[Translator] = [
        apertium,
        PivotTranslator(apertium, model),
        PivotTranslator(apertium, model, combine=True),
    ]
    out: list[Row] = []
    for target in TARGETS:
        usable = [r for r in rows if r.get(target)]
        sources, refs = [r["en"] for r in usable], [r[target] for r in usable]
        default = AUTO_CHOICE.get(("en", target), "apertium")
        for system in systems:
            chrf, adequate, seconds, _ = measure(system, sources, refs, target)
            out.append(
                Row(
                    f"en-{target}", system.name, len(sources), chrf, adequate, seconds, system.name == default
                )
            )
    return out


def markdown(rows: Sequence[Row]) -> str:
    """The table for docs/stages.md; the default per pair marked ``*``."""
    head = "| pair | system | lines | chrF | adequate % | s/line |\n|---|---|---:|---:|---:|---:|\n"
    body = "".join(
        f"| {r.pair} | {r.system}{' *' if r.default else ''} | {r.lines} | {r.chrf:.1f} | {r.adequate:.1f} | "
        f"{r.seconds_per_line:.3f} |\n"
        for r in rows
    )
    return head + body


def calibration(path: str = CALIBRATION_SET) -> str:
    """Hand-judged adequacy per system on the calibration subset, and the automatic verdict's agreement."""
    judged = load_devset(path)
    refs = {i + 1: row for i, row in enumerate(load_devset())}
    sources = [refs[int(j["line"])]["en"] for j in judged]
    auto = verdicts(
        sources, [j["output"] for j in judged], [refs[int(j["line"])]["es"] for j in judged], "es"
    )
    agree = sum(a == (j["adequate"] == "yes") for a, j in zip(auto, judged, strict=True))
    parts = []
    for system in sorted({j["system"] for j in judged}):
        mine = [j for j in judged if j["system"] == system]
        share = 100.0 * sum(j["adequate"] == "yes" for j in mine) / len(mine)
        parts.append(f"{system} {share:.0f} % of {len(mine)}")
    return (
        f"Hand-judged adequacy, en-es, every 5th line (calibration.tsv): {', '.join(parts)}; "
        f"the automatic verdict agrees with the hand verdict on {agree} of {len(judged)}."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="chrF, adequacy and speed of the offline translators")
    parser.add_argument("--devset", default=DEVSET, help="tab-separated set: register, en, es, ca, gl")
    args = parser.parse_args(argv)
    print(markdown(evaluate(args.devset)), end="")
    print(
        f"\n`*` default (DUBBING_TRANSLATOR=auto). Adequate: line chrF >= {ADEQUATE_CHRF:.0f} and no "
        "word unknown to hunspell that is not in the source."
    )
    print(calibration())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
