"""The evaluation tool's bookkeeping: blind judgements are looked up, never guessed."""

from dubbing_pipeline.tooling import translation_eval as te


def test_every_judgement_has_two_verdicts_and_the_sets_have_their_registers() -> None:
    rows = te.load_devset(te.JUDGEMENTS)
    assert len(rows) >= 479
    assert all(r["judge_1"] in ("yes", "no") and r["judge_2"] in ("yes", "no") for r in rows)
    assert len({(r["en"], r["es"]) for r in rows}) == len(rows)  # one row per output
    dev, held = te.load_devset(te.DEVSET), te.load_devset(te.HELDOUT)
    assert len(dev) == 150 and len(held) == 80
    assert {r["register"] for r in held} == {"vlog", "tutorial", "interview", "conversation"}
    assert not {r["en"] for r in dev} & {r["en"] for r in held}


def test_an_output_nobody_judged_is_reported_not_guessed() -> None:
    table = {("Hello.", "Hola."): True, ("Bye.", "Adiós."): False}
    verdict = te.judged(["Hello.", "Bye.", "Thanks."], ["Hola.", "Adiós.", "Gracias."], table)
    assert verdict == [True, False, None]
    measured = te.Measured(50.0, [True, True, False], 0.01, ["Hola.", "Adiós.", "Gracias."])
    row = te._row("en-es", "dev", "pivot", measured, ["a", "b", "c"], verdict, True)
    assert row.judged == 50.0 and row.unjudged == 1
    assert "50.0 (1 unjudged)" in te.markdown([row]) and "pivot *" in te.markdown([row])
