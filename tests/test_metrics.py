"""Metrics against hand-computed cases."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normalizer.metrics import edit_counts, edit_distance, evaluate, extract_edits, f_beta, over_correction, wer


def table_distance(a, b):
    """The textbook dynamic programme, for checking the bit-parallel one."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from("abcde"), max_size=80), st.lists(st.sampled_from("abcdef"), max_size=80))
def test_edit_distance_equals_the_table(a, b):
    assert edit_distance(a, b) == table_distance(a, b) == edit_distance(b, a)


def test_edit_distance():
    assert edit_distance("a b c".split(), "a x c".split()) == 1
    assert edit_distance([], "a b".split()) == 2
    assert edit_distance("a b".split(), []) == 2


def test_wer_and_err_hand_computed():
    spun = ["He mentioned the struggle ended ."]
    original = ["He said the war ended ."]
    # Input: 2 substitutions over 6 reference words.
    assert wer(spun, original) == pytest.approx(2 / 6)
    out = ["He said the struggle ended ."]
    m = evaluate(spun, out, original, sacrebleu_scores=False)
    assert m["wer_out"] == pytest.approx(1 / 6)
    assert m["err"] == pytest.approx(0.5)
    assert (m["precision"], m["recall"]) == (1.0, 0.5)
    assert m["over_correction"] == 0.0


def test_err_negative_when_system_harms():
    spun = ["The firm said profits rose ."]
    out = ["The company stated profits rose ."]
    m = evaluate(spun, out, spun, sacrebleu_scores=False)  # nothing was spun
    assert m["wer_in"] == 0.0 and m["err"] == -math.inf
    spun2, original2 = ["He mentioned it ."], ["He said it ."]
    m2 = evaluate(spun2, ["She stated that ."], original2, sacrebleu_scores=False)
    assert m2["err"] < 0
    assert m2["precision"] == 0.0
    assert m2["over_correction"] == pytest.approx(2 / 3)  # "He" and "it" were left alone by the spinner; both changed


def test_alternatives_credit_acceptable_outputs():
    spun, original, out = ["the big struggle"], ["the great war"], ["the large war"]
    tp, n_sys, n_gold = edit_counts(spun, out, original)
    assert (tp, n_sys, n_gold) == (1, 2, 2)
    tp, n_sys, n_gold = edit_counts(spun, out, original, alternatives=[["the large war"]])
    assert (tp, n_sys, n_gold) == (2, 2, 2)


def test_empty_strings():
    m = evaluate(["", ""], ["", ""], ["", ""], sacrebleu_scores=False)
    assert m["wer_in"] == 0.0 and m["err"] == 0.0 and m["precision"] == 1.0 and m["exact_match"] == 1.0
    assert evaluate([], [], [], sacrebleu_scores=False)["n"] == 0
    assert over_correction([""], ["x"], [""]) == 0.0


def test_extract_edits_splits_equal_length_replacements():
    assert extract_edits("a b c d", "a x y d") == {(1, 2, ("x",)), (2, 3, ("y",))}
    assert extract_edits("a b c", "a x y z c") == {(1, 2, ("x", "y", "z"))}


def test_f_beta():
    p, r, f = f_beta(1, 2, 4)
    assert (p, r) == (0.5, 0.25)
    assert f == pytest.approx(1.25 * 0.5 * 0.25 / (0.25 * 0.5 + 0.25))


def test_length_mismatch_raises():
    with pytest.raises(ValueError):
        evaluate(["a"], ["a", "b"], ["a"])


def test_sacrebleu_scores_present():
    s = ["the firm said profits rose sharply on tuesday"]  # BLEU needs 4-grams
    m = evaluate(s, s, s)
    assert m["chrf"] == pytest.approx(100.0) and m["bleu"] == pytest.approx(100.0)
