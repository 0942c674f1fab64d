"""The pivot translator's pure parts: Apertium's unknown-word marks, foreign-word candidates, replacing."""

from dubbing_pipeline.translation.pivot import (
    _capitalised,
    english_leftovers,
    foreign_candidates,
    mid_sentence_capitals,
    replace_words,
    spanish_marks,
    split_marks,
)
from dubbing_pipeline.translation.spelling import enclitic_stems, words


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


def test_a_placeholder_is_never_a_foreign_word_even_split_in_two() -> None:
    # the words of "Zqx1qz" are "Zqx" and "qz" (digits split them): hunspell knows neither, and the
    # combined translator took every line with a name or glossary term for one with foreign words
    text, source = "Hola Zqx1qz, la torneira.", "Hi Zqx1qz, the faucet."
    assert foreign_candidates(text, source, (), {"Zqx", "qz", "torneira"}) == ("torneira",)
    assert english_leftovers("Hola Zqx1qz.", "Hi Zqx1qz.", {"Zqx", "qz"}) == ()


def test_enclitic_stems_are_the_verb_under_the_pronouns() -> None:
    assert "pegue" in enclitic_stems("péguelo", "es")
    assert "Mantenga" in enclitic_stems("Manténgalos", "es")
    assert "Certifique" in enclitic_stems("Certifíquese", "es")
    assert enclitic_stems("torneira", "es") == [] and enclitic_stems("péguelo", "gl") == []
    assert enclitic_stems("lose", "es") == []  # a stem of fewer than 3 letters is no verb


def test_capitalised_skips_opening_marks() -> None:
    assert _capitalised("¡feliz cumpleaños!") == "¡Feliz cumpleaños!"
    assert _capitalised("contraseña") == "Contraseña" and _capitalised("") == ""


def test_replace_words_whole_words_keeping_the_initial_case() -> None:
    assert (
        replace_words("Torneira y torneiras, la torneira.", {"torneira": "grifo"})
        == "Grifo y torneiras, la grifo."
    )


def test_spanish_marks_open_questions_and_exclamations_sentence_by_sentence() -> None:
    assert (
        spanish_marks("Usted tiene hambre? Yo puedo hacer pasta.")
        == "¿Usted tiene hambre? Yo puedo hacer pasta."
    )
    assert (
        spanish_marks("Feliz cumpleaños! Espero que te guste.") == "¡Feliz cumpleaños! Espero que te guste."
    )
    assert spanish_marks("Hola, ¿qué tal?") == "Hola, ¿qué tal?"  # already opened: left alone
    assert (
        spanish_marks("Vale. Lo que quieres?") == "Vale. ¿Qué quieres?"
    )  # Portuguese "O que …?" read as "Lo que"
    assert spanish_marks("Lo que dices es verdad.") == "Lo que dices es verdad."  # not a question: kept


def test_english_leftovers_are_lower_case_unknown_source_words() -> None:
    found = english_leftovers(
        "Olvidé mi charger y el Download en Dagster.",
        "I forgot my charger and the Download in Dagster.",
        unknown={"charger", "Download", "Dagster"},
    )
    assert found == ("charger",)  # capitalised words may be names


def test_mid_sentence_capitals_are_the_names_of_a_portuguese_line() -> None:
    assert mid_sentence_capitals("Ontem a Maria e o Pedro foram ao Porto. Depois voltaram.") == [
        "Maria", "Pedro", "Porto",
    ]  # fmt: skip
    assert mid_sentence_capitals("Bom dia, João!") == ["João"]
