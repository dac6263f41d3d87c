"""The runner end to end on a tiny model and a 5-line test set; the baselines; the benchmark on a tiny model."""

from __future__ import annotations

import json
from collections import Counter

from evaluation.baselines import LexiconBaseline, identity
from evaluation.run import evaluate_all, metrics_only, write_report
from normalizer.metrics import evaluate
from training.lexicon import Lexicon

ROWS = [
    {"spun": "The firm mentioned profits climbed.", "original": "The firm said profits rose."},
    {"spun": "Nothing was spun here.", "original": "Nothing was spun here."},
    {"spun": "He mentioned it.", "original": "He said it."},
    {"spun": "", "original": ""},
    {"spun": "Shares climbed 5% on Tuesday.", "original": "Shares rose 5% on Tuesday."},
]


def test_runner_end_to_end(tmp_path, saved_model_dir):
    from normalizer.engines.seq2seq import Seq2SeqRestorer

    path = tmp_path / "tiny.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    path.with_suffix(".meta.json").write_text(json.dumps({"kind": "synthetic", "profile": "x", "held_out": True}))
    model = Seq2SeqRestorer.from_pretrained(saved_model_dir, device="cpu", threshold=0.0)
    results = evaluate_all({"tiny": model}, {"identity": identity}, [path], batch_size=2)
    entry = results["testsets"]["tiny"]
    assert entry["rows"] == 5
    assert entry["systems"]["identity"]["metrics"]["err"] == 0.0
    assert len(entry["systems"]["tiny"]["pr_curve"]) > 3
    report = write_report(results, tmp_path / "report", "Tiny")
    text = report.read_text()
    assert "| identity |" in text and "Held-out" in text
    assert (tmp_path / "report" / "results.json").exists() and (tmp_path / "report" / "pr_curve.png").exists()
    assert (tmp_path / "report" / "metrics.json").exists()
    # Deterministic: a second run gives the same numbers.
    again = evaluate_all({"tiny": model}, {"identity": identity}, [path], batch_size=2)
    assert again["testsets"]["tiny"]["systems"]["tiny"]["metrics"] == entry["systems"]["tiny"]["metrics"]
    # Reported metrics are the outputs users get, at the model's own settings (left as they were).
    model.threshold, model.config.passes = 0.3, 2
    third = evaluate_all({"tiny": model}, {}, [path], batch_size=2)["testsets"]["tiny"]["systems"]["tiny"]
    spun = [r["spun"] for r in ROWS]
    expected = evaluate(spun, model.normalize_batch(spun), [r["original"] for r in ROWS])
    assert third["metrics"] == expected and (model.threshold, model.config.passes) == (0.3, 2)
    # The committable copy keeps every number but no example sentence.
    public = json.dumps(metrics_only(results))
    assert ROWS[0]["original"] not in public and ROWS[0]["spun"] not in public
    assert (
        metrics_only(results)["testsets"]["tiny"]["systems"]["tiny"]["metrics"] == entry["systems"]["tiny"]["metrics"]
    )


def test_lexicon_baseline_restores_in_context():
    lex = Lexicon({"moby": {"say": {"": ["mention"]}, "rise": {"": ["climb"]}}}, {"mention": 4.0, "climb": 4.0})
    corpus = ["The firm said profits rose."] * 20 + ["He said it rose."] * 20
    uni, bi = Counter(), Counter()
    from normalizer.edits import tokenize

    for text in corpus:
        toks = ["<s>"] + [t.text.lower() for t in tokenize(text)] + ["</s>"]
        uni.update(toks)
        bi.update(f"{a} {b}" for a, b in zip(toks, toks[1:]))
    base = LexiconBaseline({"uni": uni, "bi": bi}, lexicon=lex, margin=1.0)
    assert base(["The firm mentioned profits climbed."]) == ["The firm said profits rose."]
    assert base(["Nothing to change here."]) == ["Nothing to change here."]


def test_bench_runs_on_tiny_model(tmp_path, saved_model_dir):
    from evaluation.bench import bench

    result = bench(str(saved_model_dir), [r["spun"] for r in ROWS if r["spun"]], "cpu", [1, 4], latency_n=3)
    assert result["sentences"] == 4 and len(result["throughput"]) == 2
    assert all(t["sentences_per_s"] > 0 and t["ratio_to_plain_generate"] > 0 for t in result["throughput"])


def test_prerank_k_replay_keeps_the_best_k_per_span_and_takes_the_gap_again():
    from types import SimpleNamespace

    from evaluation.prerank_k import truncate
    from normalizer.engines.pipeline import Scored
    from normalizer.stages.candidates import Candidate

    def scored(first, after, prerank, gain, dictionary=False):
        c = Candidate(0, 1, first, first + 1, "x", after, "thesaurus", dictionary=dictionary)
        return Scored(c, [1], {"prerank": prerank, "lm_gain": gain, "gain_gap": 0.0})

    found = [
        scored(0, "a", -1.0, 1.0),
        scored(0, "b", -0.5, 3.0),
        scored(0, "c", -3.0, 5.0),
        scored(0, "d", -4.0, 9.0, dictionary=True),  # a dictionary's candidate is always kept
        scored(1, "e", -2.0, 2.0),
    ]
    pipe = SimpleNamespace(evidenced=lambda c: c.dictionary)
    kept = {(s.candidate.first, s.candidate.after): s.features["gain_gap"] for s in truncate(pipe, found, 1)}
    assert kept == {(0, "b"): 3.0 - 9.0, (0, "d"): 0.0, (1, "e"): 0.0}
    kept = {(s.candidate.first, s.candidate.after) for s in truncate(pipe, found, 2)}
    assert kept == {(0, "b"), (0, "a"), (0, "d"), (1, "e")}
    assert found[1].features["gain_gap"] == 0.0  # the scored features are not changed
    # A higher gate drops the candidates under it before the top k (a dictionary's stays); a span left with none
    # has no candidate at all.
    kept = {(s.candidate.first, s.candidate.after): s.features["gain_gap"] for s in truncate(pipe, found, 2, -1.5)}
    assert kept == {(0, "b"): 3.0 - 9.0, (0, "a"): 1.0 - 9.0, (0, "d"): 0.0}


def test_rankers_cut_of_a_feature_cache_agrees_with_the_replay_cut():
    import numpy as np

    from evaluation.prerank_k import truncate
    from evaluation.rankers import cut_features
    from normalizer.engines.pipeline import Scored
    from normalizer.stages.candidates import Candidate
    from normalizer.stages.features import FEATURES

    rng = np.random.default_rng(0)
    col = {name: i for i, name in enumerate(FEATURES)}
    x = rng.normal(size=(40, len(FEATURES)))
    x[:, col["prerank"]] = rng.uniform(-8, 0, size=40)
    y = (rng.random(40) < 0.3).astype(float)
    groups = [(k % 3, k % 5, k % 5 + 1) for k in range(40)]  # (sentence, span): 15 spans
    pipe = type("P", (), {"evidenced": staticmethod(lambda c: False)})()
    for gate, k in [(-5.0, 2), (-3.0, 1), (-100.0, 4)]:
        cx, cy, cg = cut_features(x, y, groups, gate, k)
        scored = [
            Scored(Candidate(0, 1, g[1], g[2], "w", f"c{i}", "thesaurus"), [i], dict(zip(FEATURES, x[i])))
            for i, g in enumerate(groups)
        ]
        expect = {}
        for sentence in {g[0] for g in groups}:
            found = [s for s, g in zip(scored, groups) if g[0] == sentence]
            for s in truncate(pipe, found, k, gate):
                expect[(sentence, s.candidate.after)] = s.features["gain_gap"]
        got = {}
        for row, g in zip(cx, cg):
            i = next(i for i in range(40) if groups[i] == g and x[i, col["lm_gain"]] == row[col["lm_gain"]])
            got[(g[0], f"c{i}")] = row[col["gain_gap"]]
        assert got == expect and len(cy) == len(cx) == len(expect)
        assert all(row[col["prerank"]] >= gate for row in cx)
