"""Measure the offline translators on the development and held-out sets.

``python -m dubbing_pipeline.tooling.translation_eval`` prints the table of docs/stages.md.

Developer tooling, never imported by the runtime. Sets (``translation_eval/``, README there):
``devset.tsv`` (150 lines, en→es; en→ca and en→gl for the first 50) and ``heldout.tsv`` (80 lines,
en→es, written later by a separate writer who saw neither the development set nor any output). For
each pair, set and system (Apertium direct, the pivot, the per-line combination) it reports:

* **chrF** (sacrebleu, corpus level, against the hand-written references);
* **judged %** (en→es): the share of lines whose output two blind judges both found adequate
  (``judgements.tsv``: each output judged by two readers who saw the English and one Spanish line,
  shuffled, never which system made it, by the rubric in the README). An output nobody judged yet is
  counted and printed (``unjudged``), never guessed: judge it and add it before trusting the share;
* **proxy %**: a verdict computed from the reference and the dictionary (line chrF ≥
  ``ADEQUATE_CHRF`` and no word hunspell does not know that is not in the source): the only one
  for ca and gl; its agreement with the judges on en→es is printed;
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

HERE = os.path.join(os.path.dirname(__file__), "translation_eval")
DEVSET = os.path.join(HERE, "devset.tsv")
HELDOUT = os.path.join(HERE, "heldout.tsv")
JUDGEMENTS = os.path.join(HERE, "judgements.tsv")
SETS = {"dev": DEVSET, "held-out": HELDOUT}
ADEQUATE_CHRF = 35.0
"""The proxy's line-chrF threshold (of 30-70 in steps of 5, the one that agreed best with a first
hand-judged subset); a weak proxy: see its agreement with the judges."""
TARGETS = ("es", "ca", "gl")


@dataclass(frozen=True)
class Row:
    pair: str
    set: str
    system: str
    lines: int
    chrf: float
    judged: float | None  # % of lines both judges found adequate; None: no judgements (ca, gl)
    unjudged: int
    proxy: float
    seconds_per_line: float
    default: bool


@dataclass(frozen=True)
class Measured:
    chrf: float
    proxy: list[bool]
    seconds_per_line: float
    outputs: list[str]


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


def measure(translator: Translator, sources: Sequence[str], refs: Sequence[str], target: str) -> Measured:
    """chrF, proxy verdicts, seconds per line and outputs of ``translator`` on the lines."""
    requests = [LineRequest(f"d{i}", s, 4 * len(s.split()), 0.0) for i, s in enumerate(sources)]
    start = time.perf_counter()
    outputs = [r.text for r in translator.translate(requests, "en", target)]
    seconds = (time.perf_counter() - start) / len(sources)
    chrf = sacrebleu.corpus_chrf(outputs, [list(refs)]).score
    return Measured(chrf, verdicts(sources, outputs, refs, target), seconds, outputs)


def load_judgements(path: str = JUDGEMENTS) -> dict[tuple[str, str], bool]:
    """(English line, Spanish output) → adequate by both blind judges."""
    return {
        (row["en"], row["es"]): row["judge_1"] == "yes" and row["judge_2"] == "yes"
        for row in load_devset(path)
    }


def judged(
    sources: Sequence[str], outputs: Sequence[str], table: dict[tuple[str, str], bool]
) -> list[bool | None]:
    """Per line: both judges found it adequate; None where nobody judged this output."""
    return [table.get((src, out)) for src, out in zip(sources, outputs, strict=True)]


def _systems() -> list[Translator]:
    apertium = ApertiumTranslator()
    model = BergamotModel()
    return [apertium, PivotTranslator(apertium, model), PivotTranslator(apertium, model, combine=True)]


def _share(flags: Sequence[bool]) -> float:
    return 100.0 * sum(flags) / len(flags) if flags else 0.0


Line = tuple[str, str, str, bool, "bool | None", float]
"""One line of one system: source, reference, output, proxy verdict, judged verdict, s/line."""


def evaluate(sets: dict[str, str] | None = None) -> list[Row]:
    """One row per pair, set and system, and an ``all`` row per system where a pair has two sets."""
    table = load_judgements()
    out: list[Row] = []
    systems = _systems()
    for target in TARGETS:
        pair, default = f"en-{target}", AUTO_CHOICE.get(("en", target), "apertium")
        union: dict[str, list[Line]] = {}
        measured_sets = 0
        for name, path in (sets or SETS).items():
            usable = [r for r in load_devset(path) if r.get(target)]
            if not usable:
                continue
            measured_sets += 1
            sources, refs = [r["en"] for r in usable], [r[target] for r in usable]
            for system in systems:
                got = measure(system, sources, refs, target)
                verdict = judged(sources, got.outputs, table) if target == "es" else [None] * len(refs)
                out.append(_row(pair, name, system.name, got, refs, verdict, system.name == default))
                seconds = [got.seconds_per_line] * len(refs)
                lines = zip(sources, refs, got.outputs, got.proxy, verdict, seconds, strict=True)
                union.setdefault(system.name, []).extend(lines)
        if measured_sets > 1:
            out.extend(_union_rows(pair, union, default))
    return out


def _row(
    pair: str,
    set_name: str,
    system: str,
    got: Measured,
    refs: Sequence[str],
    verdict: Sequence[bool | None],
    default: bool,
) -> Row:
    known = [v for v in verdict if v is not None]
    return Row(
        pair, set_name, system, len(refs), got.chrf, _share(known) if known else None,
        len(verdict) - len(known), _share(got.proxy), got.seconds_per_line, default,
    )  # fmt: skip


def _union_rows(pair: str, union: dict[str, list[Line]], default: str) -> list[Row]:
    rows: list[Row] = []
    for system, lines in union.items():
        refs, outputs = [x[1] for x in lines], [x[2] for x in lines]
        known = [x[4] for x in lines if x[4] is not None]
        chrf = sacrebleu.corpus_chrf(outputs, [refs]).score
        seconds = sum(x[5] for x in lines) / len(lines)
        rows.append(
            Row(pair, "all", system, len(lines), chrf, _share(known) if known else None,
                len(lines) - len(known), _share([x[3] for x in lines]), seconds, system == default)
        )  # fmt: skip
    return rows


def markdown(rows: Sequence[Row]) -> str:
    """The table for docs/stages.md; the default per pair marked ``*``."""
    head = (
        "| pair | set | system | lines | chrF | judged adequate % | proxy % | s/line |\n"
        "|---|---|---|---:|---:|---:|---:|---:|\n"
    )
    body = "".join(
        f"| {r.pair} | {r.set} | {r.system}{' *' if r.default else ''} | {r.lines} | {r.chrf:.1f} | "
        f"{_judged_cell(r)} | {r.proxy:.1f} | {r.seconds_per_line:.3f} |\n"
        for r in rows
    )
    return head + body


def _judged_cell(row: Row) -> str:
    if row.judged is None:
        return "–"
    return f"{row.judged:.1f}" + (f" ({row.unjudged} unjudged)" if row.unjudged else "")


def agreement(path: str = JUDGEMENTS) -> str:
    """How often the two judges agree, and how often the proxy agrees with them (en→es)."""
    rows = load_devset(path)
    same = sum(r["judge_1"] == r["judge_2"] for r in rows)
    refs = {r["en"]: r["es"] for p in SETS.values() for r in load_devset(p)}
    both = [r for r in rows if r["judge_1"] == r["judge_2"] and r["en"] in refs]
    proxy = verdicts([r["en"] for r in both], [r["es"] for r in both], [refs[r["en"]] for r in both], "es")
    hits = sum(p == (r["judge_1"] == "yes") for p, r in zip(proxy, both, strict=True))
    return (
        f"Judges: {len(rows)} en->es outputs judged blind by two readers each; they agree on {same} "
        f"({_share([r['judge_1'] == r['judge_2'] for r in rows]):.0f} %). The proxy agrees with their "
        f"shared verdict on {hits} of {len(both)}."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="chrF, adequacy and speed of the offline translators")
    parser.add_argument("--devset", default=DEVSET, help="tab-separated set: register, en, es, ca, gl")
    parser.add_argument("--heldout", default=HELDOUT, help="tab-separated set: register, en, es")
    args = parser.parse_args(argv)
    print(markdown(evaluate({"dev": args.devset, "held-out": args.heldout})), end="")
    print(
        "\n`*` default (DUBBING_TRANSLATOR=auto). Judged: both blind judges found the line adequate "
        f"(judgements.tsv). Proxy: line chrF >= {ADEQUATE_CHRF:.0f} and no word unknown to hunspell "
        "that is not in the source."
    )
    print(agreement())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
