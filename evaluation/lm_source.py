"""Can the language model's own top words be trusted as candidates? The `lm` source, rescored and fitted on its own.

    python -m evaluation.lm_source --candidates runs/cand-no-moby/candidates.npz \
        --testsets data/testsets/thesaurus-moby-only-r0.3.jsonl data/testsets/documents-dev-dict-moby.jsonl \
        --clean data/testsets/clean.jsonl --limit 20 --k 10 --out evaluation/results/lm-source/no-moby.json

With `lm_candidates` k, every open word of every sentence gets the LM's k likeliest whole words there as `lm`
candidates (`normalizer.engines.pipeline.Pipeline.lm_proposals`); here every one of them is rescored (span plus
right context, as the pipeline rescores), so their full features are known. `--candidates` swaps in another table:
one built without the spinner's lexicon makes the spinner's links ones our thesauri lack, the case this source is
for; `--no-channel` empties the channel too (it learnt from simulated spinners, Moby's among them, so it knows
links that a spinner with a lexicon we lack would make and we would not know).

Reported per set: the one-word swaps whose original the table has, and how many the LM source has right; then,
from a logistic model on the `lm` candidates' features fitted in two folds by sentence (every set's sentences,
clean ones included, so that the model sees what it must leave alone), per threshold: the `lm` edits the model
would make (the best of each span) and how many restore the original, on spun and on clean text.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from evaluation.testsets import load_testset
from normalizer.engines.pipeline import Pipeline
from normalizer.segment import sentence_spans
from normalizer.stages.candidates import CandidateTable
from normalizer.stages.features import FEATURES, LM_FEATURES
from normalizer.stages.ranker import Channel, Ranker
from training.ranker import gold_spans, label_of

NAMES = (*FEATURES, *LM_FEATURES)
THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95)


def sentences(rows: list[dict], limit: int) -> list[tuple[str, str]]:
    """(spun, original) sentence pairs of rows whose spun and original have as many sentences (so that they pair up)."""
    out = []
    for row in rows[:limit]:
        s, o = row["spun"], row["original"]
        a, b = [s[x:y] for x, y in sentence_spans(s)], [o[x:y] for x, y in sentence_spans(o)]
        if len(a) == len(b):
            out += list(zip(a, b))
    return out


def collect(pipe: Pipeline, pairs: list[tuple[str, str]], group: int) -> list[dict]:
    """Every `lm` candidate of every sentence, rescored, with its features and label; and every one-word gold swap
    with where its original was found."""
    found = pipe.score([s for s, _ in pairs])
    out = []
    for k, ((spun, original), cands) in enumerate(zip(pairs, found)):
        gold = {span: after for span, after in gold_spans(spun, original, None).items() if span[1] == span[0] + 1}
        table_hits = {(c.candidate.first, c.candidate.after.lower()) for c in cands if c.candidate.kind != "lm"}
        for (i, _), after in gold.items():
            if len(after) == 1:
                out.append({"gold": True, "group": (group, k), "in_table": (i, after[0]) in table_hits})
        for s in cands:
            if s.candidate.kind == "lm":
                out.append(
                    {
                        "gold": False,
                        "group": (group, k),
                        "span": (group, k, s.candidate.first),
                        "x": [s.features[n] for n in NAMES],
                        "y": label_of(gold, s.candidate),
                    }
                )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="models/default")
    parser.add_argument("--candidates", type=Path, default=None, help="a candidate table to use instead")
    parser.add_argument("--testsets", nargs="+", type=Path, required=True)
    parser.add_argument("--clean", type=Path, default=None, help="a clean set: every lm edit there is wrong")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--no-channel",
        action="store_true",
        help="an empty channel: links our thesauri lack are links our simulated spinners never made either",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    pipe = Pipeline.from_pretrained(args.pipeline)
    if args.candidates:
        pipe.table = CandidateTable.load(args.candidates)
    if args.no_channel:
        pipe.channel = Channel()
    pipe.config = replace(pipe.config, lm_candidates=args.k, dictionary_k=None)
    real_evidenced = pipe.evidenced
    pipe.evidenced = lambda c: c.kind == "lm" or real_evidenced(c)  # every lm candidate rescored, for the fit
    report = {"command": " ".join(["python -m evaluation.lm_source", *(argv if argv is not None else sys.argv[1:])])}
    records, names = [], []
    sets = [*args.testsets, *([args.clean] if args.clean else [])]
    for g, path in enumerate(sets):
        pairs = sentences(load_testset(path), args.limit)
        got = collect(pipe, pairs, g)
        records += got
        names.append(path.stem)
        gold = [r for r in got if r["gold"]]
        lm_hits = {(r["group"], r["span"][2]) for r in got if not r["gold"] and r["y"] == 1}
        report[path.stem] = {
            "sentences": len(pairs),
            "one_word_swaps": len(gold),
            "table": sum(r["in_table"] for r in gold) / max(len(gold), 1),
            "lm_candidates_per_sentence": sum(not r["gold"] for r in got) / max(len(pairs), 1),
            "lm_right_candidates": len(lm_hits),
        }
        print(path.stem, json.dumps(report[path.stem]), flush=True)
    cands = [r for r in records if not r["gold"]]
    x = np.array([r["x"] for r in cands], dtype=np.float64)
    y = np.array([r["y"] for r in cands])
    fold = np.array([hash(r["group"]) % 2 for r in cands])
    probs = np.zeros(len(cands))
    for f in (0, 1):
        model = Ranker.fit(x[fold != f], y[fold != f], NAMES)
        probs[fold == f] = model.prob(x[fold == f])
    best: dict[tuple, tuple[float, float, int]] = {}
    for p, r in zip(probs.tolist(), cands):
        if r["span"] not in best or p > best[r["span"]][0]:
            best[r["span"]] = (p, r["y"], r["group"][0])
    clean_group = len(sets) - 1 if args.clean else -1
    table = []
    for t in THRESHOLDS:
        row = {"threshold": t}
        for g, name in enumerate(names):
            made = [(y_, grp) for p, y_, grp in best.values() if p >= t and grp == g]
            gold = sum(1 for r in records if r["gold"] and r["group"][0] == g)
            right = sum(y_ for y_, _ in made)
            row[name] = {"edits": len(made), "right": int(right)}
            if g != clean_group:
                row[name]["recall_of_one_word_swaps"] = right / max(gold, 1)
        table.append(row)
        print(json.dumps(row), flush=True)
    full = Ranker.fit(x, y, NAMES)
    report["decisions"] = table
    report["weights"] = dict(zip(NAMES, np.round(full.weights, 3).tolist()))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
