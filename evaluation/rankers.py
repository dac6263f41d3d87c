"""Rankers compared from one scoring: each set is scored once by a checkpoint (stages 1-4, its pre-ranker's choices),
then every ranker given restores it through the real `Restorer` path (document prior and threshold as the
checkpoint's, or the thresholds swept).

    python -m evaluation.rankers --pipeline models/default --scores runs/scores \
        --testsets data/testsets/dictionary-dict-mythes-*.jsonl data/testsets/synthetic-bestspinner-*.jsonl \
        data/testsets/clean.jsonl --limit 40 --rankers models/default runs/rk --thresholds 0.8 0.85 0.9 \
        --out reports/rankers.json

`--refit CACHE --gates G ...` (a stricter pre-ranker gate: fewer candidates rescored, issue 23) refits the logistic
ranker per gate from a `training.ranker --cache` feature file cut as that gate would cut it (each span's best
`prerank_k` by pre-ranker score at or above the gate, `gain_gap` taken again), picks its threshold on those dev
pairs (the lowest reaching the dev precision the checkpoint's gate reaches at the checkpoint's threshold), and
restores the sets cut the same way (`evaluation.prerank_k.truncate`).

`--scores DIR` keeps each set's scored candidates as JSON (`<set>.scored.json.gz`: the candidates, their LM ids and
their features), so a second run with other rankers costs no scoring; keep one folder per scoring checkpoint (a
kept file is read back by set name and row count alone). A ranker is a checkpoint folder holding a
`ranker.json` trained on the features the scoring computed. Reported per ranker and threshold: word P / R, ERR and
clean paragraphs unchanged per set, pooled over the spun ones (a set named clean takes `--clean-limit` rows).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np

from evaluation.calibrate import Replay, measure, pool, write_results
from evaluation.prerank_k import truncate
from evaluation.testsets import load_testset
from normalizer.engines.pipeline import Pipeline, Scored
from normalizer.stages.candidates import Candidate
from normalizer.stages.features import FEATURES, SCHEMAS
from normalizer.stages.lm import SMOLLM2
from normalizer.stages.ranker import Ranker
from training.ranker import decision_table

logger = logging.getLogger(__name__)


def scored_sets(
    pipeline: Pipeline, paths: list[Path], limit: int, scores: Path | None, clean_limit: int | None = None
) -> dict:
    """{set name: (rows, {piece: scored candidates})}, scored once per set and kept under `scores`; a set named
    clean takes its first `clean_limit` rows (default `limit`)."""
    sets = {}
    for path in paths:
        n = clean_limit if clean_limit and "clean" in path.stem else limit
        rows = load_testset(path)[:n]
        cache = scores / f"{path.stem}.{n}.scored.json.gz" if scores else None
        found = read_scored(cache) if cache and cache.is_file() else None
        if found is None:
            texts = [r["spun"] for r in rows]
            pieces = list(dict.fromkeys(texts[d][a:b] for d, a, b in pipeline.pieces(texts)))
            with pipeline.document_features_on():  # kept for any ranker to read
                found = dict(zip(pieces, pipeline.score(pieces, progress=True)))
            if cache:
                cache.parent.mkdir(parents=True, exist_ok=True)
                data = {piece: [asdict(s) for s in items] for piece, items in found.items()}
                with gzip.open(cache, "wt", encoding="utf-8") as f:
                    json.dump(data, f)
        sets[path.stem.removeprefix("documents-")] = (rows, found)
    return sets


def read_scored(path: Path) -> dict | None:
    """A kept scoring, or None (with a warning) when the file is damaged: it is then scored again."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
        return {
            piece: [Scored(Candidate(**s["candidate"]), list(s["ids"]), dict(s["features"])) for s in items]
            for piece, items in data.items()
        }
    except (OSError, EOFError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
        logger.warning("%s: damaged kept scoring (%s); scoring again", path, e)
        return None


def evaluate(pipeline: Pipeline, ranker: Ranker, sets: dict, threshold: float, gate: float | None = None) -> dict:
    """Per set and pooled, the sets restored with `ranker` in the pipeline's place at `threshold` (and, given,
    only the candidates a pre-ranker `gate` keeps)."""
    saved, pipeline.ranker = pipeline.ranker, ranker
    try:
        per_set = {}
        for name, (rows, found) in sets.items():
            if gate is not None:
                k = pipeline.config.prerank_k
                found = {piece: truncate(pipeline, items, k, gate) for piece, items in found.items()}
            store = {piece: pipeline.rank(items) for piece, items in found.items()}
            per_set[name] = measure(Replay(pipeline, store, threshold, pipeline.document_prior), rows)
            per_set[name]["rescored_per_piece"] = sum(map(len, found.values())) / max(len(found), 1)
    finally:
        pipeline.ranker = saved
    spun = [m for n, m in per_set.items() if "clean" not in n]
    clean = {n: m["paragraphs_unchanged"] for n, m in per_set.items() if "clean" in n}
    return {"spun": pool(spun), "clean": clean, "sets": per_set}


def cut_features(x: np.ndarray, y: np.ndarray, groups: list, gate: float, k: int):
    """A feature cache as a pre-ranker `gate` and `prerank_k` = k would have left it: per span the best k by
    `prerank` at or above the gate, each one's `gain_gap` taken again against the best `lm_gain` kept."""
    col = {name: i for i, name in enumerate(FEATURES)}
    by_span: dict[tuple, list[int]] = {}
    for i, g in enumerate(groups):
        if x[i, col["prerank"]] >= gate:
            by_span.setdefault(g, []).append(i)
    x = x.copy()
    keep = []
    for rows in by_span.values():
        rows = sorted(rows, key=lambda i: -x[i, col["prerank"]])[:k]
        best = max(x[i, col["lm_gain"]] for i in rows)
        x[rows, col["gain_gap"]] = x[rows, col["lm_gain"]] - best
        keep += rows
    keep.sort()
    return x[keep], y[keep], [groups[i] for i in keep]


def refit_at_gates(pipeline: Pipeline, cache: Path, gates: list[float], sets: dict) -> list[dict]:
    """Per gate: the ranker refitted on the cut cache, its dev threshold, and the sets restored at that gate. The
    dev precision each threshold must reach is the refit's at the checkpoint's own gate and threshold."""
    data = np.load(cache, allow_pickle=False)
    x, y, groups = data["x"], data["y"], [tuple(g) for g in data["groups"].tolist()]
    n_gold = int(json.loads((cache.parent / "ranker_training.json").read_text())["gold_edits"])
    k, grid = (
        pipeline.config.prerank_k,
        sorted({round(t, 2) for t in np.arange(0.5, 0.995, 0.01)} | {pipeline.threshold}),
    )
    results, target = [], None
    for gate in [pipeline.config.gate, *gates]:
        cx, cy, cg = cut_features(x, y, groups, gate, k)
        ranker = Ranker.fit(cx, cy, features=FEATURES)
        table = decision_table(ranker.prob(cx), cy, cg, n_gold, grid)
        if target is None:
            target = next(row for row in table if row["threshold"] == pipeline.threshold)["precision"]
        dev = next((row for row in table if row["precision"] >= target), table[-1])
        entry = {"gate": gate, "threshold": dev["threshold"], "dev": dev, "dev_candidates": len(cy)}
        entry.update(evaluate(pipeline, ranker, sets, dev["threshold"], gate))
        results.append(entry)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default=None, help="the checkpoint that scores (default: the shipped one)")
    parser.add_argument("--lm", default=SMOLLM2, help="the language model that scores (smollm2, .gguf or a folder)")
    parser.add_argument("--testsets", nargs="+", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--clean-limit", type=int, default=100, help="rows of a set named clean")
    parser.add_argument("--scores", type=Path, help="folder keeping each set's scored candidates")
    parser.add_argument("--rankers", nargs="+", type=Path, default=[], help="checkpoint folders with ranker.json")
    parser.add_argument("--refit", type=Path, help="a training.ranker --cache feature file, to refit per --gates")
    parser.add_argument("--gates", type=float, nargs="+", default=[], help="pre-ranker gates to refit the ranker at")
    parser.add_argument(
        "--thresholds", type=float, nargs="+", help="default: the checkpoint's (else each ranker's own)"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    pipeline = Pipeline.from_pretrained(args.pipeline, lm=args.lm)
    if bool(args.refit) != bool(args.gates) or not (args.rankers or args.refit):
        parser.error("give --rankers, or --refit with --gates")
    sets = scored_sets(pipeline, args.testsets, args.limit, args.scores, args.clean_limit)
    results = []
    for folder in args.rankers:
        ranker = Ranker.load(folder, SCHEMAS)
        own = pipeline.config.threshold if pipeline.config.threshold is not None else ranker.threshold
        for threshold in args.thresholds or [own]:
            entry = {"ranker": str(folder), "threshold": threshold, **evaluate(pipeline, ranker, sets, threshold)}
            results.append(entry)
            print(json.dumps({k: entry[k] for k in ("ranker", "threshold", "spun", "clean")}), flush=True)
    if args.refit:
        for entry in refit_at_gates(pipeline, args.refit, args.gates, sets):
            results.append(entry)
            print(json.dumps({k: entry[k] for k in ("gate", "threshold", "spun", "clean")}), flush=True)
    write_results(args.out, "evaluation.rankers", argv, results)


if __name__ == "__main__":
    main()
