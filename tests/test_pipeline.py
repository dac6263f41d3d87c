"""The restoration pipeline, stage by stage on tiny fixtures (a ten-word table, a random one-layer Llama), then end
to end."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import tiny_lm_dir

from normalizer.checkpoint import refuse_custom_code
from normalizer.edits import tokenize
from normalizer.engines.pipeline import Pipeline, PipelineConfig
from normalizer.stages.candidates import CandidateTable, spintax_candidates
from normalizer.stages.dictionary import SpinnerDictionary
from normalizer.stages.features import (
    CHEAP_FEATURES,
    DOCUMENT_FEATURES,
    FEATURES,
    LM_FEATURES,
    PPS_FEATURES,
)
from normalizer.stages.lm import LanguageModel
from normalizer.stages.ranker import Channel, Ranker, gold_edits

LINKS = {("mention", "say"): (1, 0), ("practice", "train"): (2, 3), ("firm", "company"): (4, 1)}
PHRASES = {"final 12 months": ["last year"], "wall avenue": ["wall street"]}


@pytest.fixture(scope="module")
def table():
    return CandidateTable.from_pairs(LINKS, PHRASES)


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return LanguageModel.from_pretrained(tiny_lm_dir(tmp_path_factory.mktemp("lm")), device="cpu")


def afters(cands, first):
    return {c.after for c in cands if c.first == first}


def test_candidates_invert_the_thesaurus_with_inflection(table):
    text = "He mentioned the practices of the firm."
    cands = table.propose(text, tokenize(text))
    assert "said" in afters(cands, 1)  # mentioned <- said (past tense carried over)
    assert "trains" in afters(cands, 3)  # practices <- trains
    assert "company" in afters(cands, 6)
    assert all(text[c.start : c.end] == c.before for c in cands)


def test_candidates_phrases_case_and_names(table):
    text = "Mentioned final 12 months on Wall Avenue by Firm officials."
    cands = table.propose(text, tokenize(text))
    assert "Said" in afters(cands, 0)  # sentence-initial capital carried over
    assert any(c.after == "last year" and c.kind == "phrase" and c.last - c.first == 3 for c in cands)
    assert any(c.after == "Wall Street" for c in cands)  # institution: phrase table applies to names
    assert not afters(cands, 7)  # "Firm" mid-sentence is a name: no thesaurus candidate


def test_spintax_alternatives():
    text = "The {good|great} news and {the} end."
    cands = spintax_candidates(text, tokenize(text))
    assert {(c.before, c.after) for c in cands} == {
        ("{good|great}", "good"),
        ("{good|great}", "great"),
        ("{the}", "the"),
    }


def naive_continuation(lm, seq, p, cont):
    full, prefix = lm.sequence_logprob([seq[:p] + cont])[0], lm.sequence_logprob([seq[:p]])[0]
    return full - prefix


def test_cached_continuations_equal_full_rescoring(lm):
    seqs = [[lm.start_id, 5, 6, 7, 8, 9], [lm.start_id, 10, 11]]
    state = lm.first_pass(seqs, [[(2, 7), (3, 7)], []])
    # gathered: log P(token 7 next after seqs[0][:p]); at p=3 the token there is 7, so it is token_lp[0][3] too.
    assert state.gathered[0][0] == pytest.approx(naive_continuation(lm, seqs[0], 2, [7]), abs=1e-4)
    assert state.gathered[0][1] == pytest.approx(state.token_lp[0][3], abs=1e-5)
    assert state.gathered[0][0] != pytest.approx(state.gathered[0][1], abs=1e-3)
    # Fed again from the prefix's last token (not gathered) and taken from the first pass (gathered: (2, 7), (3, 7)).
    items = [(0, 2, [12, 13]), (0, 6, [5]), (1, 1, [6, 7, 8]), (1, 3, [9]), (0, 2, [7, 8, 9]), (0, 3, [7, 12])]
    got = lm.continuations(state, items)
    for (b, p, cont), g in zip(items, got):
        assert g == pytest.approx(naive_continuation(lm, seqs[b], p, cont), abs=1e-4)
    # One row per forward call: each reads only its own prefix of the cache (the rest of the width is left out).
    lm.continuation_batch, batch = 1, lm.continuation_batch
    try:
        assert lm.continuations(state, items) == pytest.approx(got, abs=1e-5)
    finally:
        lm.continuation_batch = batch
    # A one-token continuation the first pass gathered needs no forward call at all.
    before = lm.passes
    assert lm.continuations(state, [(0, 3, [7]), (0, 2, [7])]) == pytest.approx(state.gathered[0][::-1], abs=1e-6)
    assert lm.passes == before


def test_lm_counts_the_arithmetic_it_was_asked_for(lm):
    from evaluation.bench_pipeline import arithmetic

    vocab = lm.model.config.vocab_size
    per_token, per_projection = lm.linear_flops()
    # The tiny Llama: q, k, v, o of 16x16 and gate, up, down of 16x32 in its one layer; the head 16 x vocab.
    assert (per_token, per_projection) == (2 * (4 * 16 * 16 + 3 * 16 * 32), 2 * 16 * vocab)
    fed, projected = lm.tokens_fed, lm.positions_projected
    state = lm.first_pass([[lm.start_id, 5, 6, 7, 8, 9], [lm.start_id, 10, 11]], [[], []])
    assert (lm.tokens_fed - fed, lm.positions_projected - projected) == (12, 12)  # 2 rows padded to 6, all projected
    fed, projected = lm.tokens_fed, lm.positions_projected
    lm.continuations(state, [(0, 2, [12, 13]), (1, 1, [6, 7, 8])])  # fed with the prefix's last token: 3 and 4
    assert (lm.tokens_fed - fed, lm.positions_projected - projected) == (2 * 4, 2 * 3)  # padded to 4, 3 predict
    work = arithmetic(lm, 100, 10, 2.0, 5)
    floor = (100 * per_token + 10 * per_projection) / (work["gemm_gflops"] * 1e9)
    assert work["gemm_gflops"] > 0 and work["linear_seconds_at_gemm_rate"] == pytest.approx(floor)
    assert work["linear_gflop_per_sentence"] == pytest.approx((100 * per_token + 10 * per_projection) / 5e9)
    assert work["bound_sentences_per_s"] == pytest.approx(5 / floor)
    assert work["linear_share_of_wall"] == pytest.approx(floor / 2.0)


@pytest.mark.parametrize("shape", [(3, 17, 50), (1, 1, 7), (9, 50), (0, 4, 11), (2, 0, 5)])
def test_log_normaliser_in_row_blocks_equals_logsumexp(shape):
    from normalizer.stages.lm import log_normaliser

    logits = (torch.randn(shape) * 4).bfloat16()
    got = log_normaliser(logits)
    assert got.dtype == torch.float32 and got.shape == logits.shape[:-1]
    assert torch.allclose(got, torch.logsumexp(logits.float(), -1), atol=1e-5, rtol=0)


def test_chunk_ids_many_equals_one_at_a_time(lm):
    chunks = [" said", " mentioned", "", " said", " Wall Street", " firm's"]
    one = [lm.chunk_ids(c) for c in chunks]
    lm._chunks.clear()
    assert lm.chunk_ids_many(chunks) == one
    assert lm.chunk_ids_many(chunks[:2]) == one[:2]  # from the cache now


def test_a_surface_gets_the_same_candidates_wherever_it_stands(table):
    first = "Mentioned the firm. The firm mentioned it."
    cands = table.propose(first, tokenize(first))
    fresh = CandidateTable.from_pairs(LINKS, PHRASES)  # nothing cached yet
    again = fresh.propose(first, tokenize(first))
    assert cands == again
    # "Firm" at a sentence start reads as a word, mid-sentence as a name: the cache keeps the two apart.
    text = "Firm officials met the Firm."
    cands = fresh.propose(text, tokenize(text))
    assert afters(cands, 0) == {"Company"} and not afters(cands, 4)


def test_pair_features_memo_gives_what_computing_them_gives(table):
    from normalizer.stages.features import cheap_features

    channel = Channel({"said\tmentioned": 3}, {"said": 3})
    text = "A mentioned the firm, and an firm mentioned."
    tokens = tokenize(text)
    memo: dict = {}
    for c in table.propose(text, tokens):
        plain = cheap_features(c, tokens, -2.0, -5.0, channel, table)
        assert cheap_features(c, tokens, -2.0, -5.0, channel, table, memo) == plain
        assert cheap_features(c, tokens, -2.0, -5.0, channel, table, memo) == plain  # from the memo
        assert set(plain) >= set(CHEAP_FEATURES)
    assert memo


def ranker_trusting(feature: str, names=FEATURES) -> Ranker:
    """A ranker that applies exactly the candidates where `feature` is 1."""
    weights = [10.0 if f == feature else 0.0 for f in names]
    return Ranker(weights, -5.0, [0.0] * len(names), [1.0] * len(names), tuple(names), 0.5)


@pytest.fixture()
def pipeline(table, lm):
    channel = Channel({"say\tmention": 0, "said\tmentioned": 3, "company\tfirm": 2}, {"said": 3, "company": 2})
    return Pipeline(table, lm, ranker_trusting("channel_seen"), channel, None, PipelineConfig(gate=-100.0))


def test_pipeline_end_to_end_keeps_bytes(pipeline):
    text = "He  mentioned the practices,\tsaid the firm.\r\n\nNothing  here 12."
    r = pipeline.restore(text)
    assert r.text == "He  said the practices,\tsaid the company.\r\n\nNothing  here 12."
    assert [(e.before, e.after) for e in r.edits] == [("mentioned", "said"), ("firm", "company")]
    for e in r.edits:
        assert text[e.start : e.end] == e.before and 0.5 <= e.confidence <= 1.0
        assert dict(e.scores)["channel_seen"] == 1.0 and set(dict(e.scores)) == set(FEATURES)


def test_pipeline_batch_equals_single_and_passes_through(pipeline):
    docs = ["He mentioned it.", "", "  \n", "The firm mentioned final 12 months.", "12 34 %"]
    assert pipeline.normalize_batch(iter(docs)) == [pipeline.normalize(d) for d in docs]
    assert pipeline.normalize("") == "" and pipeline.normalize("12 34 %") == "12 34 %"


def test_pipeline_resolves_spintax(pipeline):
    out = pipeline.normalize("The {good|great} news.")
    assert out in ("The good news.", "The great news.")


def test_lm_passes_per_batch_are_bounded(pipeline):
    docs = ["He mentioned the practices of the firm."] * 5 + ["The firm mentioned it."] * 5
    before = pipeline.lm.passes
    pipeline.restore_batch(docs)
    # One first pass per batch of sentences and one continuation batch per 64 rescored candidates: never one pass
    # per candidate.
    assert pipeline.lm.passes - before <= 2


def test_threshold_override_per_call(pipeline):
    text = "He mentioned it."
    assert pipeline.restore_batch([text], threshold=1.0)[0].edits == []
    assert pipeline.restore_batch([text])[0].edits  # the stored default is untouched


def test_ranker_and_channel_survive_save_load(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, len(FEATURES)))
    y = (x[:, 0] + 0.5 * rng.normal(size=200) > 0).astype(float)
    ranker = Ranker.fit(x, y, FEATURES)
    assert ((ranker.prob(x) > 0.5) == (y > 0)).mean() > 0.8
    ranker.save(tmp_path)
    assert np.allclose(Ranker.load(tmp_path, FEATURES).prob(x), ranker.prob(x))
    channel = Channel.from_pairs([("He mentioned it.", "He said it."), ("They mentioned it.", "They said it.")])
    channel.save(tmp_path)
    loaded = Channel.load(tmp_path)
    assert loaded == channel and loaded.log_prob("said", "mentioned")[1]
    assert loaded.log_prob("said", "mentioned")[0] > loaded.log_prob("said", "stated")[0]


@pytest.mark.parametrize(
    "change",
    [{"features": list(CHEAP_FEATURES)}, {"weights": "oops"}, {"bias": None}, {"extra": 1}],
)
def test_ranker_file_is_validated(tmp_path, change):
    ranker_trusting("channel_seen").save(tmp_path)
    path = tmp_path / "ranker.json"
    data = json.loads(path.read_text())
    data.update(change)
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="ranker.json"):
        Ranker.load(tmp_path, FEATURES)


def test_gold_edits_split_equal_length_replacements():
    assert gold_edits("He mentioned the final 12 months.", "He said the last year.") == {
        (1, 2): ("said",),
        (3, 6): ("last", "year"),
    }
    assert gold_edits("They stated a war.", "They said a struggle.") == {(1, 2): ("said",), (3, 4): ("struggle",)}


def test_labels_come_from_the_spinner_alignment_when_there_is_one():
    from training.ranker import gold_from_target

    # Adjacent swaps merge in a word alignment; the spinner's own edit list keeps them apart.
    spun, target = "He mentioned final 12 months.", "mentioned<to> said<sep> final 12 months<to> last year"
    assert gold_edits(spun, "He said last year.") == {(1, 5): ("said", "last", "year")}
    assert gold_from_target(spun, target) == {(1, 2): ("said",), (2, 5): ("last", "year")}


@pytest.mark.parametrize("name", ["config.json", "tokenizer_config.json"])
def test_model_folders_asking_for_code_are_refused(tmp_path, name):
    d = tiny_lm_dir(tmp_path / "lm")
    path = d / name
    data = json.loads(path.read_text())
    data["auto_map"] = {"AutoTokenizer": ["evil.Tok", None]}
    path.write_text(json.dumps(data))
    (d / "evil.py").write_text("open('marker', 'w').write('ran')\n")
    with pytest.raises(ValueError, match="auto_map"):
        refuse_custom_code(d)
    with pytest.raises(ValueError, match="auto_map"):
        LanguageModel.from_pretrained(d, device="cpu")


def test_missing_language_model_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LanguageModel.from_pretrained(tmp_path / "nope", device="cpu")


def test_float32_and_bfloat16_both_run(tmp_path):
    d = tiny_lm_dir(tmp_path / "lm")
    for dtype in ("float32", "bfloat16"):
        lm = LanguageModel.from_pretrained(d, device="cpu", dtype=dtype)
        assert lm.dtype == getattr(torch, dtype)
        assert np.isfinite(lm.sequence_logprob([[lm.start_id, 5, 6]])[0])


@pytest.fixture()
def pipeline_checkpoint(tmp_path, saved_model_dir, table):
    """The seq2seq test checkpoint plus the pipeline's files (tiny table, a ranker trusting the channel)."""
    import shutil

    d = tmp_path / "ckpt"
    shutil.copytree(saved_model_dir, d)
    table.save(d / "candidates.npz")
    ranker_trusting("channel_seen").save(d)
    ranker_trusting("phrase", CHEAP_FEATURES).save(d, "preranker.json")
    Channel({"said\tmentioned": 3}, {"said": 3}).save(d)
    PipelineConfig(gate=-100.0).save(d)
    return d


def cli(tmp_path, *args):
    from normalizer.cli import main

    src = tmp_path / "in.txt"
    src.write_text("He mentioned it.\n")
    out = tmp_path / "out.txt"
    code = main([str(src), "-o", str(out), "--device", "cpu", "--no-progress", *args])
    return code, out.read_text() if out.exists() else None


def test_cli_runs_the_pipeline_when_the_checkpoint_has_one(tmp_path, pipeline_checkpoint, capsys):
    lm_dir = tiny_lm_dir(tmp_path / "lm")
    capsys.readouterr()
    code, out = cli(tmp_path, "--model", str(pipeline_checkpoint), "--lm", str(lm_dir))
    assert code == 0 and out == "He said it.\n"
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_cli_runs_the_pipeline_in_the_precision_asked_for(tmp_path, pipeline_checkpoint, monkeypatch, dtype):
    from normalizer import cli as cli_module
    from normalizer.api import load as real_load

    loaded = []
    monkeypatch.setattr(cli_module, "load", lambda *a, **k: loaded.append(real_load(*a, **k)) or loaded[-1])
    code, out = cli(tmp_path, "--model", str(pipeline_checkpoint), "--lm", str(tiny_lm_dir(tmp_path / "lm")),
                    "--lm-dtype", dtype)  # fmt: skip
    assert code == 0 and out == "He said it.\n"
    assert loaded[0].lm.precision == dtype


def test_cli_falls_back_to_seq2seq_in_one_line_when_the_lm_is_missing(tmp_path, pipeline_checkpoint, caplog):
    code, out = cli(tmp_path, "--model", str(pipeline_checkpoint), "--lm", str(tmp_path / "no-lm"))
    assert code == 0 and out is not None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "seq2seq" in warnings[0] and "no-lm" in warnings[0]


def test_cli_pipeline_engine_without_lm_is_an_error(tmp_path, pipeline_checkpoint, capsys):
    code, out = cli(
        tmp_path, "--model", str(pipeline_checkpoint), "--engine", "pipeline", "--lm", str(tmp_path / "no-lm")
    )
    assert code == 1 and out is None
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_second_pass_maps_edits_back_to_the_input(pipeline):
    from normalizer.edits import apply_with_repairs, map_back, unrepaired

    text = "The firm mentioned profits."
    pipeline.cache_size = 0  # count every proposal
    one = pipeline.restore(text)
    # The Restorer's second pass, on the pipeline (it makes one only given a spinner dictionary: an empty one here).
    pipeline.dictionary = SpinnerDictionary()
    pipeline.config = replace(pipeline.config, dictionary_passes=2)
    calls = []
    real = pipeline.propose
    pipeline.propose = lambda pieces, **kw: calls.append((list(pieces), kw.get("focus"))) or real(pieces, **kw)
    two = pipeline.restore(text)
    repaired, repairs = apply_with_repairs(text, one.edits)
    # The changed piece is proposed again, repaired, and asked only where an edit can be kept: off the repairs.
    assert calls == [([text], None), ([one.text], [unrepaired(repaired, repairs)])]
    assert two.text == one.text and [e.before for e in two.edits] == [e.before for e in one.edits]
    assert repaired == one.text
    k = repaired.index("profits")
    assert map_back(k, k + 7, repairs) == (text.index("profits"), text.index("profits") + 7)
    said = repaired.index("said")
    assert map_back(said, said + 4, repairs) is None  # a span over a repair has no place in the input


def test_seq2seq_proposals_join_the_candidates(table, lm, normalizer):
    from helpers import scripted

    from normalizer.edits import Span, make_target

    s2s = scripted(
        normalizer, lambda piece: make_target([Span("mentioned", "declared")]) if "mentioned" in piece else ""
    )
    p = Pipeline(table, lm, ranker_trusting("seq2seq_proposed"), None, None, PipelineConfig(gate=-100.0), seq2seq=s2s)
    batch = p.candidates(["He mentioned it.", "Shares fell."])
    proposed = [[(s.candidate.start, s.candidate.end, s.candidate.after, s.candidate.seq2seq) for s in piece.candidates
                 if s.candidate.seq2seq >= 0] for piece in batch.pieces]  # fmt: skip
    assert proposed == [[(3, 12, "declared", 1.0)], []]
    r = p.restore("He mentioned it.")
    assert r.text == "He declared it." and r.edits[0].after == "declared"


def test_candidates_in_focus_are_the_candidates_inside_it(pipeline):
    text = "He mentioned the practices of the firm."
    (everywhere,) = pipeline.candidates([text]).pieces
    k = text.index("the firm")
    (focused,) = pipeline.candidates([text], focus=[[(0, 2), (k, len(text))]]).pieces
    inside = [(s.candidate.start, s.candidate.after) for s in everywhere.candidates if s.candidate.start >= k]
    assert inside and [(s.candidate.start, s.candidate.after) for s in focused.candidates] == inside
    assert "said" in {s.candidate.after for s in everywhere.candidates}  # "mentioned" lies outside the focus


def test_stages_one_by_one(pipeline):
    """Each stage is a public method on one batch type: features accumulate by name, pruning happens in prerank."""
    batch = pipeline.candidates(["He mentioned the practices of the firm."])
    (piece,) = batch.pieces
    assert {s.candidate.after for s in piece.candidates} >= {"said", "trains", "company"}
    assert all(s.features == {} for s in piece.candidates)
    pipeline.first_pass(batch)
    one_pass = set(CHEAP_FEATURES) | {"pps"} | set(LM_FEATURES)  # the ranker reads no document features
    assert all(set(s.features) == one_pass for s in piece.candidates) and piece.row == 0
    assert all(s.features["lm_candidate"] == 0 for s in piece.candidates)  # lm_candidates is 0: none added
    pipeline.prerank(batch)
    assert all("prerank" in s.features for s in piece.candidates)
    pipeline.rescore(batch)
    after = set(FEATURES) | set(PPS_FEATURES) | set(LM_FEATURES)
    assert all(set(s.features) == after for s in piece.candidates)
    by_span = {}
    for s in piece.candidates:
        by_span.setdefault((s.candidate.first, s.candidate.last), []).append(s.features["lm_gain"])
    for s in piece.candidates:  # gain_gap: 0 for the best of its span, negative for the others
        gap = s.features["lm_gain"] - max(by_span[(s.candidate.first, s.candidate.last)])
        assert s.features["gain_gap"] == pytest.approx(gap)
    edits = pipeline.rank(piece.candidates)
    assert len({(e.start, e.end) for e in edits}) == len(edits)  # one proposal per span
    assert all(dict(e.scores).keys() == set(FEATURES) for e in edits)


def test_table_relates_words_either_way_and_in_two_hops():
    table = CandidateTable.from_pairs(
        {("mention", "say"): (1, 0), ("state", "say"): (1, 0), ("practice", "train"): (2, 3)}
    )
    assert table.related("mention", "say") and table.related("say", "mention")  # either direction
    assert table.related("mentioned", "stated")  # both stand in say's list (readings: mention, state)
    assert not table.related("mention", "train") and not table.related("zebra", "say")


def test_lm_features_say_what_the_lm_proposed():
    from normalizer.stages.features import lm_features

    f = lm_features(3, 0.5, True, "triggered", "caused")
    assert f == {"lm_candidate": 1.0, "lm_rank": pytest.approx(np.log1p(3)), "lm_cosine": 0.5, "lm_related": 1.0,
                 "lm_same_tag": 1.0}  # fmt: skip
    assert lm_features(0, 0.0, False, "triggered", "of")["lm_same_tag"] == 0.0  # a past tense is not a preposition


def test_lm_candidates_are_the_lms_own_top_words(pipeline):
    """With `lm_candidates`, each open word gets the LM's likeliest whole words there that are not candidates yet,
    each scored from the first pass (its first sub-token's log-probability is the top-k entry's)."""
    lm = pipeline.lm
    text = "He mentioned the practices of the firm."
    pipeline.config = replace(pipeline.config, lm_candidates=5)
    batch = pipeline.first_pass(pipeline.candidates([text]))
    (piece,) = batch.pieces
    added = [s for s in piece.candidates if s.candidate.kind == "lm"]
    words = lm.word_tokens()
    assert added and all(words[s.ids[0]] == s.candidate.after.lower() for s in added)
    assert all(s.features["lm_candidate"] == 1 and s.candidate.before != s.candidate.after for s in added)
    keys = [(s.candidate.first, s.candidate.after.lower()) for s in piece.candidates]
    assert len(keys) == len(set(keys))  # never a second copy of a table candidate
    top = batch.state.top[0]
    for s in added:
        at = piece.starts[s.candidate.first]
        (lp,) = [v for t, v in top[at] if t == s.ids[0]]
        assert s.features["cand_first_lp"] == pytest.approx(lp)
        assert s.features["lm_rank"] == pytest.approx(np.log1p([t for t, _ in top[at]].index(s.ids[0])))
    # The first pass's top-k are the LM's own: the likeliest next tokens after the prefix, best first.
    state = lm.first_pass([piece.seq], [[]], [[piece.starts[1]]], 3)
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([piece.seq[: piece.starts[1]]])).logits[0, -1].float()
    assert [t for t, _ in state.top[0][piece.starts[1]]] == torch.topk(logits, 3).indices.tolist()
    assert lm.first_pass([piece.seq], [[]]).top is None
    with pytest.raises(ValueError):
        PipelineConfig(lm_candidates=-1)


def test_ranker_reads_features_by_name_not_position(pipeline):
    """A ranker stored with its features in another order gives the same probabilities: values are looked up by
    name, so no computation order can shift a value into another feature's weight."""
    found = pipeline.score(["He mentioned the practices of the firm."])[0]
    ranker = pipeline.ranker
    order = list(reversed(ranker.features))
    moved = Ranker([ranker.weights[ranker.features.index(n)] for n in order], ranker.bias,
                   [ranker.mean[ranker.features.index(n)] for n in order],
                   [ranker.std[ranker.features.index(n)] for n in order], tuple(order), ranker.threshold)  # fmt: skip
    records = [s.features for s in found]
    assert np.allclose(moved.prob_records(records), ranker.prob_records(records))


def test_identical_pieces_are_scored_once_and_cached_across_calls(pipeline):
    docs = ["He mentioned the practices of the firm.", "The firm mentioned it."] * 30 + ["Nothing here."]
    fresh = [r.edits for r in Pipeline.restore_batch(pipeline, docs)]  # the reference, computed once per call
    calls = []
    real = pipeline.propose
    pipeline.propose = lambda pieces, **kw: calls.append(list(pieces)) or real(pieces, **kw)
    pipeline.cache_size = 4096
    pipeline.__dict__.pop("_proposal_cache", None)
    got = pipeline.restore_batch(docs)
    assert [r.edits for r in got] == fresh and len(calls) == 1 and len(calls[0]) == 3  # three distinct pieces
    again = pipeline.restore_batch(docs[:2], threshold=1.0)  # another threshold: the same proposals serve
    assert len(calls) == 1 and again[0].edits == []
    pipeline.config = PipelineConfig(gate=-100.0, document_prior={"rate": 0.05})  # acts after proposing: cached
    shifted = pipeline.restore_batch(docs[:1])
    seen = shifted[0].edits + [r.edit for r in shifted[0].rejected]
    assert len(calls) == 1 and seen and all("document_shift" in dict(e.scores) for e in seen)
    pipeline.config = PipelineConfig(gate=-100.0, right_context=1)  # other settings: proposed afresh
    pipeline.restore_batch(docs[:1])
    assert len(calls) == 2
    for bad in ({"rate": 2.0}, {"rate": "0.1"}, {"speed": 1}, [0.1]):
        with pytest.raises(ValueError):
            PipelineConfig(document_prior=bad)


def test_document_features_count_the_whole_document(pipeline, table):
    from normalizer.stages.features import DocumentStats, document_features

    doc = "He mentioned it. She mentioned it too. They mentioned the firm."
    # A ranker that reads none: the documents are not counted, the candidates get none.
    assert not pipeline.reads_documents and not pipeline.counts_documents
    batch = pipeline.first_pass(pipeline.candidates(["He mentioned it."], [doc]))
    assert batch.pieces[0].document is None
    assert all(not set(DOCUMENT_FEATURES) & set(s.features) for s in batch.pieces[0].candidates)
    pipeline.document_features = True  # as for training a ranker that will
    batch = pipeline.first_pass(pipeline.candidates(["He mentioned it."], [doc]))
    said = next(s for s in batch.pieces[0].candidates if s.candidate.after == "said")
    assert said.features["doc_before"] == pytest.approx(np.log1p(3))  # "mentioned" three times in the document
    assert said.features["doc_after"] == 0.0  # and "said" never
    with_said = document_features(said.candidate, DocumentStats(doc + " He said so."), table)
    assert with_said["doc_after"] == pytest.approx(np.log1p(1))
    assert said.features["doc_after_excess"] < with_said["doc_after_excess"]  # the candidate missing counts


def test_training_features_with_document_ones_are_computed_for_a_ranker_that_reads_none(pipeline):
    from normalizer.stages.features import SCHEMAS
    from training.ranker import labelled_features

    x, y, groups = labelled_features(pipeline, ["He mentioned it."], ["He said it."], None, None, SCHEMAS[1])
    assert x.shape == (len(groups), len(SCHEMAS[1])) and len(groups) > 0 and y.sum() == 1
    assert pipeline.document_features is None  # put back


def test_a_ranker_with_document_features_reads_the_documents(pipeline):
    from normalizer.stages.features import SCHEMAS

    names = SCHEMAS[1]
    pipeline.ranker = ranker_trusting("channel_seen", names)
    assert pipeline.reads_documents and pipeline.features == names
    docs = ["He mentioned it. The firm mentioned it.", "He mentioned it."]
    r = pipeline.restore_batch(docs)
    assert [e.after for e in r[1].edits] == ["said"] and set(dict(r[1].edits[0].scores)) == set(names)
    # the same sentence in two documents is scored in each (its document features differ)
    first = dict(r[0].edits[0].scores)["doc_before"]
    assert first != dict(r[1].edits[0].scores)["doc_before"]
    # an extra pass (given a dictionary) proposes each repaired piece in its document and in its focus
    pipeline.dictionary = SpinnerDictionary()
    pipeline.config = replace(pipeline.config, dictionary_passes=2)
    assert [x.text for x in pipeline.restore_batch(docs)] == [x.text for x in r]


def test_funnel_counts_where_swaps_are_lost(pipeline):
    from evaluation.funnel import funnel

    rows = [{"spun": "He mentioned the practices of the firm.", "original": "He said the trains of the business."}]
    counts = funnel(pipeline, rows)
    # three gold swaps; "business" is no candidate; the ranker trusts the channel, which knows only said and company
    assert counts["gold"] == 3 and counts["candidates"] == 2 and counts["prerank"] == 2
    assert counts["applied"] == 1 and counts["applied_share"] == pytest.approx(1 / 3)


def test_cli_adapt_on_stdin_keeps_lines_and_a_saved_channel_restores_the_same(
    tmp_path, pipeline_checkpoint, capsys, monkeypatch
):
    import io

    from normalizer.cli import main

    PipelineConfig(gate=-100.0, document_prior={"rate": 0.1, "strength": 5.0, "pair_strength": 1.0}).save(
        pipeline_checkpoint
    )
    lm_dir = tiny_lm_dir(tmp_path / "lm")
    lines = ["He mentioned it.", "", "The firm mentioned the practices.", "Nothing here.", "He mentioned it."] * 3
    data = ("\n".join(lines) + "\n").encode()
    base = ["--model", str(pipeline_checkpoint), "--lm", str(lm_dir), "--device", "cpu", "--no-progress"]

    def run(*args):
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
        out = tmp_path / "out.txt"
        code = main(["-", "-o", str(out), *base, *args])
        return code, out.read_text().split("\n")[:-1] if code == 0 else None

    saved = tmp_path / "adapted.json"
    code, adapted = run("--adapt", "--adapt-sample", "8", "--save-adapted", str(saved))
    assert code == 0 and len(adapted) == len(lines)  # stdin read for learning, then restored whole, in order
    assert [a == "" for a in adapted] == [x == "" for x in lines] and adapted[0] == "He said it."
    assert run("--channel", str(saved)) == (0, adapted)  # what was learnt, reused
    code, whole = run("--adapt", "--document", "file")  # the input as one document, learnt and restored so
    assert code == 0 and len(whole) == len(lines) and [w == "" for w in whole] == [x == "" for x in lines]
    saved.write_text('{"format": "normalizer-corpus-evidence", "version": 1, "rate": "high"}')
    capsys.readouterr()
    assert run("--channel", str(saved))[0] == 1
    err = capsys.readouterr().err
    assert "not a usable corpus estimate" in err and len(err.strip().splitlines()) == 1
    assert main(["-", *base, "--engine", "seq2seq", "--adapt"]) == 1  # no document prior to adapt


def test_induced_links_join_a_users_dictionary_and_keep_the_passes_of_restoring_without_one(pipeline, monkeypatch):
    from normalizer.engines import pipeline as pipeline_module
    from normalizer.induce import Link
    from normalizer.wordrates import WordRates

    with pytest.raises(ValueError, match="word_rates"):
        pipeline.induce_dictionary(["He stated it."])
    found = [Link("said", "stated", 0.9, 4, 4, 0, 5.0, 4, 0.0)]
    monkeypatch.setattr(pipeline_module, "induce_links", lambda lm, texts, rates, progress=False: found)
    pipeline.word_rates = WordRates(1000, {"said": 10})
    pipeline.config = replace(pipeline.config, passes=1, dictionary_passes=2)
    induced, links = pipeline.induce_dictionary(["He stated it."])
    assert links == found and induced.dictionary.originals == {"stated": ["said"]} and pipeline.dictionary is None
    assert induced.passes == 1 and induced.restore("He stated it.").text == "He said it."
    given = pipeline.with_dictionary(["company|firm"])
    both, _ = given.induce_dictionary(["He stated it."])
    assert both.dictionary.originals == {"firm": ["company"], "stated": ["said"]} and both.passes == 2
    monkeypatch.setattr(pipeline_module, "induce_links", lambda lm, texts, rates, progress=False: [])
    assert pipeline.induce_dictionary(["He said it."])[0].dictionary is None  # nothing found: nothing changes


def test_cli_induce_dictionary_writes_the_links_and_restores_with_them(
    tmp_path, pipeline_checkpoint, capsys, monkeypatch
):
    import io

    from normalizer.cli import main
    from normalizer.engines import pipeline as pipeline_module
    from normalizer.induce import Link
    from normalizer.wordrates import WordRates

    lm_dir = tiny_lm_dir(tmp_path / "lm")
    lines = ["He stated it.", "", "Nothing here."] * 4
    data = ("\n".join(lines) + "\n").encode()
    base = ["--model", str(pipeline_checkpoint), "--lm", str(lm_dir), "--device", "cpu", "--no-progress"]
    read = []

    def links(lm, texts, rates, progress=False):  # what the corpus gives away: its own tests are in test_induce
        read.append(list(texts))
        return [Link("said", "stated", 0.9, 4, 4, 0, 5.0, 4, 0.0)]

    monkeypatch.setattr(pipeline_module, "induce_links", links)

    def run(*args):
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
        out = tmp_path / "out.txt"
        code = main(["-", "-o", str(out), *base, *args])
        return code, out.read_text().split("\n")[:-1] if code == 0 else None

    found = tmp_path / "found.txt"
    capsys.readouterr()
    assert run("--induce-dictionary", str(found))[0] == 1  # the checkpoint has no news word rates
    err = capsys.readouterr().err
    assert "word_rates.json" in err and len(err.strip().splitlines()) == 1 and not found.exists()
    WordRates(1000, {"said": 10, "he": 10, "it": 10}).save(pipeline_checkpoint / "word_rates.json")
    assert run() == (0, lines)  # "stated" is no candidate of the table
    code, out = run("--induce-dictionary", str(found), "--adapt-sample", "3")
    assert code == 0 and out == [x.replace("stated", "said") for x in lines]  # stdin read once, then restored whole
    assert read == [["He stated it.", "Nothing here.", "He stated it."]] and found.read_text() == "said|stated\n"
    assert "1 dictionary links induced from 3 texts" in capsys.readouterr().err
    assert main(["-", *base, "--engine", "seq2seq", "--induce-dictionary", str(found)]) == 1


def test_rankers_replay_from_a_kept_scoring_equals_restoring(tmp_path, pipeline):
    from evaluation.calibrate import measure
    from evaluation.rankers import evaluate, scored_sets

    rows = [
        {"spun": "He mentioned the practices of the firm.", "original": "He said the trains of the company."},
        {"spun": "The firm mentioned it.", "original": "The company said it."},
    ]
    path = tmp_path / "tiny.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    first = scored_sets(pipeline, [path], 10, tmp_path / "scores")
    # kept with the document features (for any ranker), though the pipeline's own ranker reads none and keeps so
    assert all(set(DOCUMENT_FEATURES) <= set(s.features) for f in first["tiny"][1].values() for s in f)
    assert pipeline.document_features is None
    passes = pipeline.lm.passes
    again = scored_sets(pipeline, [path], 10, tmp_path / "scores")  # read back from the kept scoring: no LM pass
    assert pipeline.lm.passes == passes
    assert {p: [(s.candidate, s.ids, s.features) for s in f] for p, f in again["tiny"][1].items()} == {
        p: [(s.candidate, s.ids, s.features) for s in f] for p, f in first["tiny"][1].items()
    }
    # A damaged kept scoring is not used: the set is scored again (and kept again).
    (kept,) = (tmp_path / "scores").iterdir()
    kept.write_bytes(kept.read_bytes()[:40])
    rescored = scored_sets(pipeline, [path], 10, tmp_path / "scores")
    assert pipeline.lm.passes > passes and rescored["tiny"][1].keys() == first["tiny"][1].keys()
    direct = measure(pipeline, rows)
    got = evaluate(pipeline, pipeline.ranker, again, pipeline.threshold)
    assert got["sets"]["tiny"]["word_tp"] == direct["word_tp"] > 0
    assert got["sets"]["tiny"]["word_sys"] == direct["word_sys"]
    # Another ranker in the pipeline's place: one that trusts nothing edits nothing; the pipeline keeps its own.
    silent = evaluate(pipeline, ranker_trusting("no_such_feature_weight"), again, pipeline.threshold)
    assert silent["sets"]["tiny"]["word_sys"] == 0 and pipeline.ranker.weights != [0.0] * len(FEATURES)


def test_rankers_clean_limit_applies_to_clean_sets_alone(tmp_path, pipeline):
    from evaluation.rankers import scored_sets

    for name in ("clean", "spun"):
        (tmp_path / f"{name}.jsonl").write_text(
            "".join(json.dumps({"spun": f"The firm mentioned {k}.", "original": f"The firm said {k}."}) + "\n"
                    for k in range(5))
        )  # fmt: skip
    sets = scored_sets(pipeline, [tmp_path / "clean.jsonl", tmp_path / "spun.jsonl"], 2, None, clean_limit=4)
    assert len(sets["clean"][0]) == 4 and len(sets["spun"][0]) == 2


def test_pipeline_loads_its_lm_in_the_precision_asked_for(tmp_path, pipeline_checkpoint):
    lm_dir = tiny_lm_dir(tmp_path / "lm")
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        assert Pipeline.from_pretrained(pipeline_checkpoint, lm=lm_dir, device="cpu", lm_dtype=name).lm.dtype == dtype
    with pytest.raises(ValueError, match="dtype must be"):
        Pipeline.from_pretrained(pipeline_checkpoint, lm=lm_dir, device="cpu", lm_dtype="int4")


def test_a_checkpoints_lm_delta_is_laid_over_smollm2_and_checked(tmp_path, pipeline_checkpoint, monkeypatch, caplog):
    """`lm_delta.safetensors` (training.lm_news --export) replaces the named tensors of the default LM when the
    pipeline loads; with another LM it is left out with a warning; a damaged delta is an error, nothing replaced."""
    from safetensors.torch import save_file

    from normalizer.stages import lm as lm_module

    lm_dir = tiny_lm_dir(tmp_path / "lm")
    base = LanguageModel.from_pretrained(lm_dir, device="cpu", dtype="float32")
    name = "model.layers.0.mlp.down_proj.weight"
    weight = base.model.state_dict()[name]
    tuned = (weight + 0.5).to(torch.float16)
    save_file({name: tuned}, str(pipeline_checkpoint / "lm_delta.safetensors"))
    real = lm_module.LanguageModel.from_pretrained
    monkeypatch.setattr(
        lm_module.LanguageModel,
        "from_pretrained",
        classmethod(lambda cls, path, **kw: real(lm_dir if path == lm_module.SMOLLM2 else path, **kw)),
    )
    pipe = Pipeline.from_pretrained(pipeline_checkpoint, device="cpu", lm_dtype="float32")
    assert torch.equal(pipe.lm.model.state_dict()[name], tuned.float())
    other = Pipeline.from_pretrained(pipeline_checkpoint, lm=lm_dir, device="cpu", lm_dtype="float32")
    assert torch.equal(other.lm.model.state_dict()[name], weight)
    assert any("not applied" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    for bad, match in (
        ({"model.no_such.weight": tuned}, "not one of"),
        ({name: tuned[:2]}, "not one of"),
        ({name: torch.full_like(tuned, float("nan"))}, "non-finite"),
    ):
        path = tmp_path / "bad.safetensors"
        save_file(bad, str(path))
        with pytest.raises(ValueError, match=match):
            base.apply_delta(path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        base.apply_delta(path)
    assert torch.equal(base.model.state_dict()[name], weight)
