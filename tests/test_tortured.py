"""Real spun phrase pairs (`training.tortured`): cleaning, the split by original phrase, the links they give, and
the pipeline's prior for those links, on made-up pairs and a tiny LM."""

from __future__ import annotations

import json

import pytest
from helpers import tiny_lm_dir
from test_pipeline import ranker_trusting

from normalizer.edits import tokenize
from normalizer.engines.pipeline import Pipeline, PipelineConfig
from normalizer.stages.candidates import PPS_SOURCE, CandidateTable
from normalizer.stages.lm import LanguageModel
from normalizer.stages.ranker import Channel
from training import tortured


def write_pairs(path, rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_pairs_are_cleaned_deduplicated_and_junk_left_out(tmp_path):
    path = write_pairs(
        tmp_path / "p.jsonl",
        [
            {"spun": "Key Segment Investigation", "original": "principal component analysis (PCA)"},
            {"spun": "key segment investigation", "original": "principal component analysis"},
            {"spun": "haze finding", "original": "fog/mist/cloud computing"},
            {"spun": "???", "original": "???"},
            {"spun": "deep learning", "original": "deep  learning"},
            "",
        ],
    )
    assert tortured.read_pairs(path) == [("key segment investigation", "principal component analysis")]
    bad = write_pairs(tmp_path / "bad.jsonl", [{"spun": "a b"}, ["not", "an object"]])
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        tortured.read_pairs(bad)


def test_split_is_by_original_phrase_and_the_test_split_is_never_learnt(tmp_path):
    originals = [f"original phrase {i}" for i in range(200)]
    rows = [{"spun": f"{v} spun {i}", "original": o} for i, o in enumerate(originals) for v in ("first", "second")]
    path = write_pairs(tmp_path / "p.jsonl", rows)
    splits = tortured.split_pairs(tortured.read_pairs(path))
    for name, pairs in splits.items():
        assert {tortured.split_of(o) for _, o in pairs} == {name}
    seen = {o for name in ("train", "dev") for _, o in splits[name]}
    held = {o for _, o in splits["test"]}
    assert not seen & held and 20 < len(held) < 70  # about one original in five, every variant with it
    learnt = tortured.learning_pairs(path)
    assert {o for _, o in learnt} == seen and tortured.split_of("original phrase 3") == tortured.split_of(
        "original phrase 3"
    )
    with pytest.raises(ValueError, match="test"):
        tortured.learning_pairs(path, ("train", "test"))


def test_word_links_align_equal_length_pairs_as_lemmas():
    pairs = [
        ("profound highlights", "deep features"),
        ("profound learning", "deep learning"),
        ("convolutional neural structure", "convolutional neural network"),
        ("gatherings clustering", "clustering"),  # unequal: no word links
        ("calculation 2", "algorithm 3"),  # 2 -> 3 is a code, not a word choice
    ]
    links = tortured.word_links(pairs)
    assert links == {
        ("profound", "deep"): 2,
        ("highlights", "features"): 1,
        ("structure", "network"): 1,
        ("calculation", "algorithm"): 1,
    }
    lemma = tortured.lemma_links(pairs)
    assert lemma[("highlight", "feature")] == 0 and lemma[("profound", "deep")] == 0
    assert tortured.phrase_links(pairs)["profound highlights"] == ["deep features"]
    assert "gatherings clustering" in tortured.phrase_links(pairs)  # a spun phrase with an original of one word


def test_channel_merge_counts_once():
    base = Channel({"said\tmentioned": 3}, {"said": 3})
    merged = base.merged(Channel.from_pairs([("vitality market", "energy market")]), "tortured", 1)
    assert merged.swaps["energy\tvitality"] == 1 and merged.parts == {"tortured": 1}
    with pytest.raises(ValueError, match="already counts"):
        merged.merged(Channel(), "tortured", 1)


def test_pps_prior_lets_a_real_spinner_link_through_a_ranker_that_trusts_nothing(tmp_path):
    lm = LanguageModel.from_pretrained(tiny_lm_dir(tmp_path / "lm"), device="cpu")
    # "vitality" -> "energy" only from the real pairs (the pps bit); "firm" -> "company" from a thesaurus.
    table = CandidateTable.from_pairs({("vitality", "energy"): (PPS_SOURCE, 0), ("firm", "company"): (1, 0)})
    spun = "The vitality firm grew."
    nothing = ranker_trusting("no_such_feature")
    off = Pipeline(table, lm, nothing, None, None, PipelineConfig(gate=-100.0, threshold=0.5))
    assert off.normalize(spun) == spun
    on = Pipeline(table, lm, nothing, None, None, PipelineConfig(gate=-100.0, threshold=0.5, pps_prior=50.0))
    assert on.normalize(spun) == "The energy firm grew."  # the thesaurus link stays with the ranker
    low = Pipeline(table, lm, nothing, None, None, PipelineConfig(gate=-100.0, threshold=0.5, pps_prior=-50.0))
    assert low.normalize(spun) == spun


def test_tortured_sets_put_held_out_phrases_in_carrier_sentences(tmp_path):
    from evaluation.testsets import CARRIERS, build_tortured_sets, load_testset

    rows = [{"spun": f"spun words {i}", "original": f"original words {i}"} for i in range(100)]
    paths = build_tortured_sets(tmp_path / "sets", per_set=10, pairs=write_pairs(tmp_path / "p.jsonl", rows))
    sets = {p.stem: load_testset(p) for p in paths}
    assert set(sets) == {"tortured-dev", "tortured-test"}
    for name, found in sets.items():
        assert len(found) == 10
        for k, row in enumerate(found):
            carrier = CARRIERS[k % len(CARRIERS)]
            assert row["spun"] == carrier.format(row["spun_phrase"]) and row["original"] == carrier.format(
                row["original_phrase"]
            )
            assert tortured.split_of(row["original_phrase"]) == name.removeprefix("tortured-")
    meta = json.loads((tmp_path / "sets" / "tortured-test.meta.json").read_text())
    assert meta["held_out"] and "Problematic Paper Screener" in meta["credit"]


def test_built_table_holds_the_pairs_links_as_the_pps_source(tmp_path):
    import numpy as np

    from training.candidates import build_table

    pairs = [("vitality market", "energy market"), ("profound highlights", "deep features")]
    arrays = build_table(sources=(), tables=(), tortured=pairs)
    path = tmp_path / "candidates.npz"
    np.savez_compressed(path, **arrays)
    table = CandidateTable.load(path)
    assert table.meta["sources"] == ["pps"] and table.meta["tortured_pairs"] == 2
    links = {o: mask for o, mask, _ in table.originals("highlight")}
    assert links == {"feature": PPS_SOURCE}
    text = "The vitality market uses profound highlights."
    found = {(c.before, c.after, c.kind) for c in table.propose(text, tokenize(text))}
    assert ("highlights", "features", "thesaurus") in found  # inflected like the spun word
    assert ("vitality market", "energy market", "phrase") in found  # the whole spun phrase


def test_ranker_fold_is_learnt_by_no_table_and_carried_in_sentences_of_its_own(tmp_path):
    from evaluation.testsets import CARRIERS

    rows = [{"spun": f"spun words {i}", "original": f"original words {i}"} for i in range(400)]
    path = write_pairs(tmp_path / "p.jsonl", rows)
    train = tortured.split_pairs(tortured.read_pairs(path))["train"]
    fold, table = tortured.ranker_pairs(path), tortured.learning_pairs(path, ("table",))
    assert sorted(fold + table) == sorted(train) and not {o for _, o in fold} & {o for _, o in table}
    assert 0.15 < len(fold) / len(train) < 0.35  # about one original in four
    carriers = tortured.carrier_pairs(20, seed=3, path=path)
    assert carriers == tortured.carrier_pairs(20, seed=3, path=path) and len(carriers) == 20
    assert len({o for _, o in carriers}) == 20 and not set(tortured.TRAIN_CARRIERS) & set(CARRIERS)
    for spun, original in carriers:
        template = next(t for t in tortured.TRAIN_CARRIERS if original.startswith(t.split("{}")[0]))
        phrase = original.removeprefix(template.split("{}")[0]).removesuffix(template.split("{}")[1])
        assert spun == template.format(next(s for s, o in fold if o == phrase))
    with pytest.raises(ValueError, match="table"):
        tortured.learning_pairs(path, ("ranker",))


def test_a_ranker_on_the_pairs_link_features_weighs_them_and_rescores_them_first(tmp_path):
    from normalizer.stages.features import PPS_FEATURES, SCHEMAS
    from normalizer.stages.ranker import Ranker

    lm = LanguageModel.from_pretrained(tiny_lm_dir(tmp_path / "lm"), device="cpu")
    table = CandidateTable.from_pairs({("vitality", "energy"): (PPS_SOURCE, 0), ("firm", "company"): (1, 0)})
    spun = "The vitality firm grew."
    ranker = ranker_trusting("pps", names=SCHEMAS[2])
    pipe = Pipeline(table, lm, ranker, None, None, PipelineConfig(gate=-100.0, threshold=0.5))
    r = pipe.restore(spun)
    assert r.text == "The energy firm grew."
    scores = dict(r.edits[0].scores)
    assert set(scores) == set(SCHEMAS[2]) and scores["pps"] == 1.0
    assert scores["pps_gain"] == scores["lm_gain"]
    (tmp_path / "ck").mkdir()
    ranker.save(tmp_path / "ck")
    assert Ranker.load(tmp_path / "ck", SCHEMAS).features == (*SCHEMAS[0], *PPS_FEATURES)
    # The pps link is evidence of a spinner's habit for such a ranker: rescored beyond prerank_k; a ranker without
    # the features leaves it to the pre-ranker.
    found = {c.after: c for c in table.propose(spun, tokenize(spun))}
    assert pipe.evidenced(found["energy"]) and not pipe.evidenced(found["company"])
    plain = Pipeline(table, lm, ranker_trusting("wordnet"), None, None, PipelineConfig(gate=-100.0))
    assert not plain.evidenced(found["energy"])
