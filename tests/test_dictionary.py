"""User-supplied spinner dictionaries: the reader on good and bad files, the candidates they give, a dictionary
spinner's output restored by a pipeline given its dictionary, and the dictionary spinner of the simulator."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest
from helpers import tiny_lm_dir
from test_pipeline import pipeline_checkpoint, ranker_trusting, table  # noqa: F401 (fixtures)

from normalizer.edits import tokenize
from normalizer.engines.pipeline import Pipeline, PipelineConfig
from normalizer.stages import dictionary as dictionary_module
from normalizer.stages.dictionary import DictionaryError, SpinnerDictionary
from normalizer.stages.lm import LanguageModel
from training.spin import DictionarySpinner

ENTRIES = [("according to", ["in accordance with"]), ("said", ["mentioned", "stated"]), ("firm", ["agency"])]


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_reads_key_alt_lines_and_spintax_groups(tmp_path):
    f = write(tmp_path / "d.txt", "\ufeffsaid|mentioned|stated\r\n{big|large|huge}\r\nwar|struggle\r\n".encode())
    d = SpinnerDictionary.load([f])
    assert d.originals["mentioned"] == ["said"] and d.originals["stated"] == ["said"]
    assert d.originals["large"] == ["big", "huge"] and d.originals["big"] == ["large", "huge"]
    assert d.is_key("Said") and not d.is_key("mentioned") and d.skipped == 0


def test_duplicate_keys_merge_without_repeats(tmp_path):
    f = write(tmp_path / "d.txt", b"said|mentioned\nsaid|mentioned|stated\nclaimed|mentioned\n")
    d = SpinnerDictionary.load(f)
    assert d.originals["mentioned"] == ["said", "claimed"] and d.originals["stated"] == ["said"]


def test_bad_lines_are_skipped_and_counted_in_one_warning(tmp_path, caplog):
    lines = ["said|mentioned", "no bar here", "|orphan", "key|", "x" * 2000 + "|y", "ctl\x07|bell", "", "war|struggle"]
    f = write(tmp_path / "d.txt", "\n".join(lines).encode())
    with caplog.at_level(logging.WARNING):
        d = SpinnerDictionary.load(f)
    assert set(d.originals) == {"mentioned", "struggle"} and d.skipped == 5
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "5 lines" in warnings[0].getMessage()


def test_empty_file_is_an_empty_dictionary(tmp_path):
    assert len(SpinnerDictionary.load(write(tmp_path / "d.txt", b""))) == 0


@pytest.mark.parametrize("data,says", [(b"said|men\x00tioned\n", "NUL"), (b"said|\xff\xfe\n", "UTF-8")])
def test_binary_files_are_refused(tmp_path, data, says):
    with pytest.raises(DictionaryError, match=says):
        SpinnerDictionary.load(write(tmp_path / "d.bin", data))


def test_oversized_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(dictionary_module, "MAX_BYTES", 10)
    with pytest.raises(DictionaryError, match="limit"):
        SpinnerDictionary.load(write(tmp_path / "d.txt", b"said|mentioned|stated\n"))


def test_missing_file_is_an_oserror(tmp_path):
    with pytest.raises(OSError):
        SpinnerDictionary.load(tmp_path / "nope.txt")


def test_candidates_cover_phrases_and_copy_the_case():
    d = SpinnerDictionary.from_lines(["according to|in accordance with", "said|mentioned", "firm|agency"])
    text = "In accordance with the Agency, he mentioned it."
    found = {(c.before, c.after, c.kind) for c in d.propose(text, tokenize(text))}
    assert found == {
        ("In accordance with", "According to", "dictionary"),
        ("Agency", "Firm", "dictionary"),
        ("mentioned", "said", "dictionary"),
    }


def test_dictionary_spinner_is_deterministic_and_consistent():
    text = "He said the firm said so, according to the firm. A firm said it at https://said.com/firm."
    once = DictionarySpinner(ENTRIES, "once", seed=3)
    a, b = once.spin(text), DictionarySpinner(ENTRIES, "once", seed=3).spin(text)
    assert a.spun == b.spun  # deterministic for a seed
    assert "https://said.com/firm" in a.spun  # URLs untouched
    assert "in accordance with" in a.spun and "according to" not in a.spun  # phrase lines first
    said = {s.spun for s in a.swaps if s.original.lower() == "said"}
    assert len(said) == 1 and "said" not in a.spun.split("https")[0]  # once per key, every occurrence
    assert a.spun.startswith("He ") and "A agency" in a.spun  # "a"/"an" left as it was, case copied
    each = {DictionarySpinner(ENTRIES, "each", seed=s).spin(text).spun for s in range(8)}
    assert len(each) > 1
    inverted = once.dictionary()  # the spinner's dictionary as a user's file of it is read
    assert inverted.originals["mentioned"] == ["said"] and inverted.is_key("According to")
    with pytest.raises(ValueError):
        DictionarySpinner(ENTRIES, "sometimes")


def test_pipeline_given_the_dictionary_restores_its_spinner(table, tmp_path):  # noqa: F811
    lm = LanguageModel.from_pretrained(tiny_lm_dir(tmp_path / "lm"), device="cpu")
    entries = [("said", ["mentioned"]), ("firm", ["agency"])]
    original = "The firm said it."
    spun = DictionarySpinner(entries, "once").spin(original).spun
    assert spun == "The agency mentioned it."
    # A ranker that trusts nothing: only the dictionary's own confidence can apply an edit.
    config = PipelineConfig(gate=-100.0, threshold=0.5, dictionary_prior=50.0)
    without = Pipeline(table, lm, ranker_trusting("no_such_feature"), None, None, config)
    assert without.normalize(spun) == spun
    given = Pipeline(table, lm, ranker_trusting("no_such_feature"), None, None, config,
                     dictionary=SpinnerDictionary.from_lines(["said|mentioned", "firm|agency"]))  # fmt: skip
    r = given.restore(spun)
    assert r.text == original and all(dict(e.scores)["lm_gain"] is not None for e in r.edits)


def test_cli_dictionary_flag(tmp_path, pipeline_checkpoint, capsys):  # noqa: F811
    from normalizer.cli import main

    lm = tiny_lm_dir(tmp_path / "lm")
    src, out = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("The agency mentioned it.\n")
    good = write(tmp_path / "d.txt", b"firm|agency\n")
    args = [str(src), "-o", str(out), "--model", str(pipeline_checkpoint), "--lm", str(lm), "--device", "cpu"]
    assert main([*args, "--no-progress", "--dictionary", str(good), "--min-confidence", "0.0"]) == 0
    assert "firm" in out.read_text().lower()
    capsys.readouterr()
    assert main([*args, "--dictionary", str(tmp_path / "missing\x1b[31m.txt")]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "dictionary" in err and "\x1b" not in err


def test_heldout_checkpoint_forgets_the_left_out_lexicon():
    from evaluation.heldout import cut_channel
    from normalizer.stages.candidates import CandidateTable
    from normalizer.stages.ranker import Channel

    small = CandidateTable.from_pairs({("mention", "say"): (1, 0)}, {"final 12 months": ["last year"]})
    channel = Channel(
        {"said\tmentioned": 3, "war\tstruggle": 2, "last year\tfinal 12 months": 1},
        {"said": 3, "war": 2, "last year": 1},
    )
    cut = cut_channel(channel, small)
    assert cut.swaps == {"said\tmentioned": 3, "last year\tfinal 12 months": 1}  # "struggle" only the other lexicon
    assert cut.originals == {"said": 3, "last year": 1}


def test_spun_documents_keep_their_sentences_aligned(tmp_path):
    from test_spin import TABLE

    from training.lexicon import Lexicon
    from training.pairs import spin_documents
    from training.ranker import gold_from_target

    sources = {name: {w: {"": syns} for w, syns in TABLE.items()} for name in ("moby", "wordnet", "mythes")}
    lexicon = Lexicon(sources, {w: 4.0 for syns in TABLE.values() for w in syns} | {w: 5.0 for w in TABLE})
    corpus = tmp_path / "news.jsonl"  # a corpus of its own: the test needs no shared corpora
    corpus.write_text(
        "".join(
            json.dumps({"text": f"Report {k}: the firm will train staff. The war was big, officials say.\n"
                        f"Shares rise at a quick pace in city {k}. The attack was big and the firm says so."})
            + "\n"
            for k in range(400)
        )
    )  # fmt: skip
    docs = spin_documents(
        "dev", ("spinbot", "dict-moby"), n=4, seed=1, clean_share=0.0, sources=[str(corpus)], lexicon=lexicon
    )
    assert len(docs) == 4 and {d.profile for d in docs} == {"spinbot", "dict-moby"}
    for d in docs:
        assert d.text == " ".join(s for s, _, _ in d.sentences)
        for spun, original, target in d.sentences:
            assert (spun == original) == (target == "")
            gold = gold_from_target(spun, target)
            assert all(a < b for a, b in gold)


def test_dictionary_priors_are_chosen_for_precision_then_recall():
    from training.tune_dictionary import evaluate

    rows = [
        # a key standing in the text: right even with a weak LM gain
        {"span": (0, 0, 1, 2), "p": 0.1, "gain": -1.0, "dictionary": True, "key": True, "label": 1.0},
        # not a key: the text's own word, the LM does not want the dictionary's key
        {"span": (0, 0, 3, 4), "p": 0.1, "gain": -1.0, "dictionary": True, "key": False, "label": 0.0},
        {"span": (0, 0, 5, 6), "p": 0.9, "gain": 2.0, "dictionary": False, "key": False, "label": 1.0},
        {"gold": 3},
    ]
    strict = evaluate(rows, prior=0.0, key_prior=0.0, threshold=0.8)
    assert (strict["edits"], strict["right"]) == (1, 1)
    keyed = evaluate(rows, prior=0.0, key_prior=4.0, threshold=0.8)
    assert (keyed["edits"], keyed["right"], keyed["precision"]) == (2, 2, 1.0)
    loose = evaluate(rows, prior=4.0, key_prior=4.0, threshold=0.8)
    assert (
        loose["edits"] == 3 and loose["precision"] == pytest.approx(2 / 3) and loose["recall"] == pytest.approx(2 / 3)
    )


@pytest.mark.parametrize("cap", [None, 0, 1, 2])
def test_dictionary_k_caps_the_dictionary_candidates_rescored_per_span(table, tmp_path, cap):  # noqa: F811
    # "mentioned" is an alternative of five keys: without a cap all five are rescored, with one only the best
    # `cap` of them beyond prerank_k.
    lm = LanguageModel.from_pretrained(tiny_lm_dir(tmp_path / "lm"), device="cpu")
    keys = ["said", "noted", "told", "added", "stated"]
    dictionary = SpinnerDictionary.from_lines([f"{k}|mentioned" for k in keys])
    config = PipelineConfig(gate=-100.0, prerank_k=1, dictionary_k=cap)
    pipe = Pipeline(table, lm, ranker_trusting("no_such_feature"), None, None, config, dictionary=dictionary)
    found = pipe.score(["He mentioned it."])[0]
    linked = [s for s in found if s.candidate.before == "mentioned" and s.candidate.dictionary]
    assert len(linked) == (5 if cap is None else min(5, 1 + cap))
    with pytest.raises(ValueError):
        PipelineConfig(dictionary_k=-1)


def test_dictionary_passes_propose_changed_pieces_again(table, tmp_path):  # noqa: F811
    lm = LanguageModel.from_pretrained(tiny_lm_dir(tmp_path / "lm"), device="cpu")
    dictionary = SpinnerDictionary.from_lines(["said|mentioned", "firm|agency"])
    config = PipelineConfig(gate=-100.0, threshold=0.5, dictionary_prior=50.0, dictionary_passes=2)
    pipe = Pipeline(table, lm, ranker_trusting("no_such_feature"), None, None, config, dictionary=dictionary)
    seen, propose = [], pipe.propose
    pipe.propose = lambda pieces, **kw: seen.append(list(pieces)) or propose(pieces, **kw)
    assert pipe.normalize("The agency mentioned it. Nothing here.") == "The firm said it. Nothing here."
    # The changed piece is proposed again with its edits applied; the unchanged one is not.
    assert seen == [["The agency mentioned it.", "Nothing here."], ["The firm said it."]]
    assert pipe.passes == 2
    pipe.dictionary = None
    assert pipe.passes == 1  # without a dictionary, `passes` (1 here) whatever dictionary_passes says
    pipe.config = replace(config, passes=2)
    seen.clear()
    pipe.normalize("The agency mentioned it.")
    assert pipe.passes == 2 and len(seen) in (1, 2)  # a second call only where the first pass changed the piece
    for bad in (0, 4):
        with pytest.raises(ValueError):
            PipelineConfig(dictionary_passes=bad)
        with pytest.raises(ValueError):
            PipelineConfig(passes=bad)
