"""The spinner simulator, on a small in-memory lexicon (no Debian packages needed)."""

from __future__ import annotations

import random

import pytest

from training.lexicon import Lexicon
from training.spin import PROFILES, Spinner

TABLE = {
    "say": ["mention", "state"],
    "attack": ["assault"],
    "war": ["struggle"],
    "train": ["practice"],
    "rise": ["climb"],
    "firm": ["agency"],
    "big": ["massive"],
    "quick": ["speedy"],
    "share": ["portion"],
}


@pytest.fixture(scope="module")
def lexicon():
    sources = {name: {w: {"": syns} for w, syns in TABLE.items()} for name in ("moby", "wordnet", "mythes")}
    zipf = {w: 4.0 for syns in TABLE.values() for w in syns} | {w: 5.0 for w in TABLE}
    return Lexicon(sources, zipf)


TEXT = "The firm said on Tuesday that attacks rose 5% after the war. See https://example.com/war for more."


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_deterministic_for_seed(lexicon, profile):
    a = Spinner(profile, 0.5, seed=3, lexicon=lexicon).spin(TEXT)
    b = Spinner(profile, 0.5, seed=3, lexicon=lexicon).spin(TEXT)
    assert a == b


def test_rate_zero_is_identity(lexicon):
    r = Spinner("spinbot", 0.0, lexicon=lexicon).spin(TEXT)
    assert r.spun == TEXT and r.swaps == []


@pytest.mark.parametrize("seed", range(5))
def test_alignment_reproduces_spun(lexicon, seed):
    r = Spinner("spinrewriter", 0.6, seed=seed, lexicon=lexicon).spin(TEXT)
    rebuilt, pos = [], 0
    for s in r.swaps:
        assert TEXT[s.orig_start : s.orig_end] == s.original and r.spun[s.spun_start : s.spun_end] == s.spun
        rebuilt += [TEXT[pos : s.orig_start], s.spun]
        pos = s.orig_end
    assert "".join(rebuilt + [TEXT[pos:]]) == r.spun


@pytest.mark.parametrize(
    "text,expected",
    [
        ("He said no", "He mentioned no"),
        ("The attacks ended", "The assaults ended"),
        ("Said the man", "Mentioned the man"),
        ("They are saying so", "They are mentioning so"),
        ("Prices rose", "Prices climbed"),
        ("a quick war", "a speedy struggle"),
    ],
)
def test_inflection_and_capitals(lexicon, text, expected):
    profile = PROFILES["spinbot"].__class__(name="t", sources=("moby",), temperature=0.01, tables=())
    assert Spinner(profile, 0.6, seed=0, lexicon=lexicon).spin(text).spun in (expected, text)
    # At the top rate some seed swaps every word that has a synonym.
    outs = {Spinner(profile, 0.6, seed=s, lexicon=lexicon).spin(text).spun for s in range(30)}
    assert expected in outs


def test_numbers_urls_and_names_untouched(lexicon):
    for seed in range(20):
        r = Spinner("spinrewriter", 0.6, seed=seed, lexicon=lexicon).spin(TEXT + " War Office said 12 things.")
        for s in r.swaps:
            assert not any(ch.isdigit() for ch in s.original)
            assert "example.com" not in s.original
        assert "https://example.com/war" in r.spun and "5%" in r.spun and "War Office" in r.spun


def test_phrase_and_institution_swaps(lexicon):
    text = "Shares on Wall Street rose, according to traders, but then fell."
    seen = set()
    for seed in range(40):
        seen.update(s.original for s in Spinner("spinbot", 0.6, seed=seed, lexicon=lexicon).spin(text).swaps)
    assert {"Wall Street", "according to", "but"} <= seen


def test_bad_arguments(lexicon):
    with pytest.raises(ValueError, match="rate"):
        Spinner("spinbot", 0.9, lexicon=lexicon)
    with pytest.raises(ValueError, match="profile"):
        Spinner("nope", 0.3, lexicon=lexicon)


def test_per_item_rng_is_order_independent(lexicon):
    s = Spinner("wordai", 0.5, lexicon=lexicon)
    a = s.spin(TEXT, rng=random.Random(7))
    s.spin("something else entirely")
    assert s.spin(TEXT, rng=random.Random(7)) == a


def test_inflection_looked_up_once_per_lemma_is_lemminflects():
    from lemminflect import getInflection
    from wordfreq import top_n_list

    from normalizer.inflection import inflection

    words = [w for w in top_n_list("en", 3000) if w.isalpha()][::3] + ["Obama", "Paris", "grec", "xqzv", "octopus"]
    tags = ["NN", "NNS", "NNP", "NNPS", "VB", "VBD", "VBG", "VBN", "VBP", "VBZ", "JJ", "JJR", "JJS", "RB", "RBR", "RP"]
    for word in words:
        for tag in tags:
            assert inflection(word, tag) == getInflection(word, tag=tag), (word, tag)
