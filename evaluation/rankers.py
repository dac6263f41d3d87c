"""Rankers compared from one scoring: each set is scored once by a checkpoint (stages 1-4, its pre-ranker's choices),
then every ranker given restores it through the real `Restorer` path (document prior and threshold as the
checkpoint's, or the thresholds swept).

    python -m evaluation.rankers --pipeline models/default --scores runs/scores \
        --testsets data/testsets/dictionary-dict-mythes-*.jsonl data/testsets/synthetic-bestspinner-*.jsonl \
        data/testsets/clean.jsonl --limit 40 --rankers models/default runs/rk-trees --thresholds 0.8 0.85 0.9 \
        --out reports/rankers.json

`--scores DIR` keeps each set's scored candidates as JSON (`<set>.scored.json.gz`: the candidates, their LM ids and
their features), so a second run with other rankers costs no scoring. A ranker is a checkpoint folder holding a
`ranker.json` trained on the features the scoring computed. Reported per ranker and threshold: word P / R, ERR and
clean paragraphs unchanged per set, pooled over the spun ones.
"""

from __future__ import annotations

import argparse
import gzip
import json
from dataclasses import asdict
from pathlib import Path

from evaluation.calibrate import Replay, measure, pool, write_results
from evaluation.testsets import load_testset
from normalizer.engines.pipeline import Pipeline, Scored
from normalizer.stages.candidates import Candidate
from normalizer.stages.features import SCHEMAS
from normalizer.stages.ranker import Ranker


def scored_sets(pipeline: Pipeline, paths: list[Path], limit: int, scores: Path | None) -> dict:
    """{set name: (rows, {piece: scored candidates})}, scored once per set and kept under `scores`."""
    sets = {}
    for path in paths:
        rows = load_testset(path)[:limit]
        cache = scores / f"{path.stem}.{limit}.scored.json.gz" if scores else None
        if cache and cache.is_file():
            with gzip.open(cache, "rt", encoding="utf-8") as f:
                data = json.load(f)
            found = {
                piece: [Scored(Candidate(**s["candidate"]), s["ids"], s["features"]) for s in items]
                for piece, items in data.items()
            }
        else:
            texts = [r["spun"] for r in rows]
            pieces = list(dict.fromkeys(texts[d][a:b] for d, a, b in pipeline.pieces(texts)))
            found = dict(zip(pieces, pipeline.score(pieces, progress=True)))
            if cache:
                cache.parent.mkdir(parents=True, exist_ok=True)
                data = {piece: [asdict(s) for s in items] for piece, items in found.items()}
                with gzip.open(cache, "wt", encoding="utf-8") as f:
                    json.dump(data, f)
        sets[path.stem.removeprefix("documents-")] = (rows, found)
    return sets


def evaluate(pipeline: Pipeline, ranker: Ranker, sets: dict, threshold: float) -> dict:
    """Per set and pooled, the sets restored with `ranker` in the pipeline's place at `threshold`."""
    saved, pipeline.ranker = pipeline.ranker, ranker
    try:
        per_set = {}
        for name, (rows, found) in sets.items():
            store = {piece: pipeline.rank(items) for piece, items in found.items()}
            per_set[name] = measure(Replay(pipeline, store, threshold, pipeline.document_prior), rows)
    finally:
        pipeline.ranker = saved
    spun = [m for n, m in per_set.items() if "clean" not in n]
    clean = {n: m["paragraphs_unchanged"] for n, m in per_set.items() if "clean" in n}
    return {"spun": pool(spun), "clean": clean, "sets": per_set}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default=None, help="the checkpoint that scores (default: the shipped one)")
    parser.add_argument("--testsets", nargs="+", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--scores", type=Path, help="folder keeping each set's scored candidates")
    parser.add_argument("--rankers", nargs="+", type=Path, required=True, help="checkpoint folders with ranker.json")
    parser.add_argument(
        "--thresholds", type=float, nargs="+", help="default: the checkpoint's (else each ranker's own)"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    pipeline = Pipeline.from_pretrained(args.pipeline)
    sets = scored_sets(pipeline, args.testsets, args.limit, args.scores)
    results = []
    for folder in args.rankers:
        ranker = Ranker.load(folder, SCHEMAS)
        own = pipeline.config.threshold if pipeline.config.threshold is not None else ranker.threshold
        for threshold in args.thresholds or [own]:
            entry = {"ranker": str(folder), "threshold": threshold, **evaluate(pipeline, ranker, sets, threshold)}
            results.append(entry)
            print(json.dumps({k: entry[k] for k in ("ranker", "threshold", "spun", "clean")}), flush=True)
    write_results(args.out, "evaluation.rankers", argv, results)


if __name__ == "__main__":
    main()
