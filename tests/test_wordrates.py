"""A word's absence from a text as evidence of a dictionary spinner's key (`normalizer.wordrates`)."""

from __future__ import annotations

import json

import pytest
from test_pipeline import pipeline_checkpoint, table  # noqa: F401 (fixtures)
from test_restorer import Swaps

from normalizer.restorer import CorpusEvidence, DocumentPrior
from normalizer.wordrates import WordRates, key_evidence, restored_word, word_counts
from training.word_rates import count_rates


def test_absence_is_evidence_and_presence_is_none():
    assert key_evidence(0, 10.0) > key_evidence(0, 3.0) > key_evidence(0, 1.0) > 0  # the more expected, the surer
    assert key_evidence(1, 10.0) > 0  # a stray (another key's alternative) still points to a key
    assert key_evidence(10, 10.0) == 0.0  # as often as news has it: no evidence, never against
    assert key_evidence(30, 10.0) == 0.0
    assert key_evidence(0, 0.0) == 0.0  # a word news never has: nothing to read
    assert key_evidence(0, 10.0, dispersion=1.0) < key_evidence(0, 10.0, dispersion=8.0)  # overdispersion tempers it


def test_word_counts_and_the_restored_word():
    assert word_counts(["He said it", "SAID don't, 12 said-so"]) == {
        "he": 1,
        "said": 3,
        "it": 1,
        "don't": 1,
        "so": 1,
    }
    assert restored_word("said") == "said" and restored_word("Said") == "said"
    assert restored_word("according to") is None and restored_word("12") is None and restored_word("") is None


def test_word_rates_round_trip_and_a_damaged_table_is_refused(tmp_path, monkeypatch):
    rates = count_rates(["He said it. She said so.", "They said no."], min_count=2)
    assert rates.total == 9 and rates.counts == {"said": 3}  # words seen once are left out, rate 0
    assert rates.rate("said") == pytest.approx(3 / 9) and rates.rate("it") == 0.0
    path = tmp_path / "rates.json"
    rates.save(path)
    assert WordRates.load(path) == rates
    good = json.loads(path.read_text())
    for bad in [
        "{",
        json.dumps({**good, "format": "other"}),
        json.dumps({**good, "total": 0}),
        json.dumps({**good, "total": True}),
        json.dumps({**good, "counts": {"said": -1}}),
        json.dumps({**good, "counts": {"said": 99}}),  # more than the total
        json.dumps({**good, "counts": ["said"]}),
    ]:
        path.write_text(bad)
        with pytest.raises(ValueError, match="word-rate table"):
            WordRates.load(path)
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="word-rate table"):
        WordRates.load(path)
    rates.save(path)
    monkeypatch.setattr(WordRates, "MAX_BYTES", 10)
    with pytest.raises(ValueError, match="larger than"):
        WordRates.load(path)
    with pytest.raises(ValueError, match="no words"):
        count_rates(["12 34"])


# Clean news as the toy knows it: "said" is one word in twenty, the others rare.
NEWS = WordRates(1000, {"said": 50, "stated": 1, "simple": 1, "plain": 20, "dog": 20, "ran": 20, "home": 20})
KEYS = DocumentPrior(rate=0.05, strength=5.0, max_shift=3.0, key_weight=1.0)


def test_a_restored_word_the_document_lacks_is_trusted_more():
    # "stated" -> "said" at 0.5 (under the 0.8 threshold) in a document of 60 words that should hold "said" 3 times.
    spun = "He stated it. The plain dog." + " The dog ran home." * 13
    off, on = Swaps(DocumentPrior(rate=0.05, strength=5.0, max_shift=3.0)), Swaps(KEYS)
    on.word_rates = NEWS
    assert "stated" in off.normalize(spun)
    done = on.restore(spun)
    assert done.text.startswith("He said it.")
    assert dict(done.edits[0].scores)["key_shift"] > 1.0
    assert "plain" in done.text  # "simple" is rare in news: its absence says nothing
    # Where "said" stands as often as news has it, it is no key: the same proposal stays under the threshold.
    said = "He stated it. The plain dog." + " He said so." * 3 + " The dog ran home." * 10
    assert "stated" in on.normalize(said) and "stated" in off.normalize(said)
    without_rates = Swaps(KEYS)  # key_weight set, but the restorer has no word rates: off
    assert "stated" in without_rates.normalize(spun)


def test_an_adapted_corpus_lends_its_counts_to_a_short_spun_document():
    short = "He stated it. The dog ran home."  # 8 words: "said" expected 0.4 times, too few to tell
    r = Swaps(DocumentPrior(rate=0.05, strength=50.0, max_shift=3.0, key_weight=1.0))
    r.word_rates = NEWS
    assert "stated" in r.normalize(short)
    corpus = [f"He stated it on day {k}." + " The dog ran home." * 3 for k in range(20)]
    adapted = r.adapt(corpus)
    assert adapted.corpus.words["dog"] == 60 and "said" not in adapted.corpus.words
    assert adapted.normalize(short).startswith("He said it.")  # 360 words without "said": a key


def test_corpus_word_counts_survive_save_and_load(tmp_path):
    r = Swaps(KEYS)
    r.word_rates = NEWS
    corpus = r.adapt(["He stated it.", "The plain fact stood."]).corpus
    path = tmp_path / "c.json"
    corpus.save(path)
    assert (
        CorpusEvidence.load(path).words
        == corpus.words
        == {"he": 1, "stated": 1, "it": 1, "the": 1, "plain": 1, "fact": 1, "stood": 1}
    )
    data = json.loads(path.read_text())
    data["words"] = {"he": 0}
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="word count"):
        CorpusEvidence.load(path)
    del data["words"]
    data["version"] = 1  # a file saved before word counts were kept still loads, without them
    path.write_text(json.dumps(data))
    assert CorpusEvidence.load(path).words == {}


def test_key_settings_are_checked():
    with pytest.raises(ValueError, match="key_weight"):
        DocumentPrior(key_weight=0.0)
    with pytest.raises(ValueError, match="key_leak"):
        DocumentPrior(key_leak=1.5)


def test_a_checkpoint_s_word_rates_are_loaded_and_a_damaged_table_refused(tmp_path, pipeline_checkpoint):  # noqa: F811
    from helpers import tiny_lm_dir

    from normalizer.engines.pipeline import Pipeline

    lm_dir = tiny_lm_dir(tmp_path / "lm")
    assert Pipeline.from_pretrained(pipeline_checkpoint, lm=lm_dir).word_rates is None  # no table: the option is off
    NEWS.save(pipeline_checkpoint / "word_rates.json")
    assert Pipeline.from_pretrained(pipeline_checkpoint, lm=lm_dir).word_rates == NEWS
    (pipeline_checkpoint / "word_rates.json").write_text('{"format": "normalizer-word-rates", "version": 1}')
    with pytest.raises(ValueError, match="word-rate table"):
        Pipeline.from_pretrained(pipeline_checkpoint, lm=lm_dir)
