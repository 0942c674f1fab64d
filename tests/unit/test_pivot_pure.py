"""The pivot translator's pure parts: Apertium's unknown-word marks, foreign-word candidates, replacing."""

from dubbing_pipeline.translation.pivot import foreign_candidates, replace_words, split_marks
from dubbing_pipeline.translation.spelling import words


def test_split_marks_keeps_placeholders_out() -> None:
    text, marked = split_marks("La *torneira está goteando y uso *Zqx0qz.")
    assert text == "La torneira está goteando y uso Zqx0qz."
    assert marked == ("torneira",)


def test_words_keep_inner_apostrophes_and_hyphens() -> None:
    assert words("L'aixeta, bem-vindo 42 ¿Qué?") == ["L'aixeta", "bem-vindo", "Qué"]


def test_foreign_candidates_skip_source_words_and_placeholders() -> None:
    found = foreign_candidates(
        "Dagster usa Zqx1qz y la torneira y el roteador.",
        "Dagster uses Zqx1qz and the faucet and the router.",
        marked=("torneira",),
        unknown={"Dagster", "roteador", "Zqx1qz"},
    )
    assert found == ("torneira", "roteador")


def test_replace_words_whole_words_keeping_the_initial_case() -> None:
    assert (
        replace_words("Torneira y torneiras, la torneira.", {"torneira": "grifo"})
        == "Grifo y torneiras, la grifo."
    )
