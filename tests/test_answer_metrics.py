"""Answer metrics against hand-computed SQuAD v1.1 cases and ROUGE-L by hand."""

from __future__ import annotations

import pytest

from genreg.core.answers import (
    exact_match,
    normalize_answer,
    repeat_spread,
    rouge_l,
    score_answer,
    score_answers,
    token_f1,
)
from genreg.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "norm"),
    [
        ("The  Cat, sat!", "cat sat"),
        ("An apple a day", "apple day"),
        ("theater the", "theater"),  # "the" only as a whole word
        ("  Denver\tBroncos. ", "denver broncos"),
        ("U.S.A.", "usa"),
    ],
)
def test_normalize_answer_is_squads(text: str, norm: str) -> None:
    assert normalize_answer(text) == norm


def test_exact_match_after_normalisation() -> None:
    assert exact_match("the Eiffel Tower", "Eiffel tower.") == 1.0
    assert exact_match("Eiffel Tower in Paris", "Eiffel Tower") == 0.0


def test_token_f1_hand_computed() -> None:
    # pred: cat sat on mat (4) / gold: cat sat (2) -> P = 2/4, R = 2/2, F1 = 2/3
    assert token_f1("the cat sat on the mat", "a cat sat") == pytest.approx(2 / 3)
    # multiplicity: x x y vs x y y share {x: 1, y: 1} -> P = R = 2/3
    assert token_f1("x x y", "x y y") == pytest.approx(2 / 3)
    assert token_f1("Broncos", "Denver Broncos") == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert token_f1("", "Denver Broncos") == 0.0
    assert token_f1("the", "a") == 0.0  # both normalise to nothing: nothing shared


def test_max_over_gold_answers() -> None:
    golds = ["Denver Broncos", "Broncos"]
    assert score_answer("exact_match", "broncos", golds) == 1.0
    assert score_answer("token_f1", "the Denver team", golds) == pytest.approx(
        max(2 * 0.5 * 0.5 / 1.0, 0.0)
    )
    assert score_answer("token_f1", None, golds) == 0.0  # a failed call scores 0


def test_rouge_l_is_the_lcs_f_measure() -> None:
    # LCS(the cat sat on the mat, the cat was on the mat) = the cat on the mat = 5 of 6 each
    assert rouge_l("the cat sat on the mat", "the cat was on the mat") == pytest.approx(5 / 6)
    assert rouge_l("Hello, world!", "hello world") == 1.0  # tokenizer drops punctuation, case
    # pred 2 tokens, gold 4, LCS 2: P = 1, R = 0.5 -> F = 2/3
    assert rouge_l("refund fee", "the refund plan fee") == pytest.approx(2 / 3)
    assert rouge_l("", "anything") == 0.0


def test_rows_without_gold_are_excluded_and_counted_and_repeats_average() -> None:
    rows = [
        {"id": "a", "answer": "Denver Broncos"},
        {"id": "b", "answer": ["fourteen days", "14 days"]},
        {"id": "c"},  # no gold
        {"id": "d", "answer": ""},  # empty gold counts as none
        {"id": "e", "answer": "blue"},
    ]
    preds = {
        "a": ["Denver Broncos", "Broncos"],
        "b": ["within 14 days", "14 days"],
        "e": [None, "blue"],
    }
    s = score_answers(["exact_match", "token_f1"], rows, preds)
    assert s.no_gold == 2 and s.no_gold_ids == ["c", "d"] and s.scored == 3
    assert s.per_query["exact_match"] == {"a": 0.5, "b": 0.5, "e": 0.5}
    f1_b1 = 2 * (2 / 3) * 1 / (2 / 3 + 1)  # "within 14 days" vs "14 days"
    assert s.per_query["token_f1"]["b"] == pytest.approx((f1_b1 + 1.0) / 2)
    assert s.mean["exact_match"] == pytest.approx(0.5)
    spread = repeat_spread(["exact_match"], rows, preds, 2)["exact_match"]
    assert spread["repeat_means"] == pytest.approx([1 / 3, 2 / 3])
    assert spread["std"] == pytest.approx(1 / 6)


def test_unknown_answer_metric_is_a_config_error() -> None:
    from genreg.core.answers import check_answer_metrics

    with pytest.raises(ConfigError, match=r"answer_metrics.1: unknown answer metric 'bleu'"):
        check_answer_metrics(["token_f1", "bleu"], "answer_metrics")
