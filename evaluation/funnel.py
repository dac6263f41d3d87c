"""Where a pipeline loses the swaps of a test set: the share of gold edits whose original is among the candidates
(the ceiling), survives the pre-ranker, is ranked first for its span, and is applied at the threshold.

    python -m evaluation.funnel --pipeline models/default --testsets data/testsets/synthetic-bestspinner-r0.3.jsonl \
        --limit 40 [--dictionary FILE] --out reports/funnel.json

Gold edits come from a word alignment of each line with its original (`gold_edits`); each line is scored as one
piece (a line over the pipeline's piece limits is scored whole here). "Applied" counts a first-ranked gold
original at or above the threshold, before the guard and overlaps (an upper bound on what `restore` applies).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evaluation.testsets import load_testset
from normalizer.edits import words
from normalizer.engines.pipeline import Pipeline
from normalizer.stages.ranker import gold_edits


def _key(c) -> tuple:
    return (c.first, c.last, tuple(w.lower() for w in words(c.after)))


def funnel(pipeline: Pipeline, rows: list[dict]) -> dict:
    """Counts of gold edits reaching each stage (see the module docstring)."""
    counts = dict.fromkeys(("gold", "candidates", "prerank", "ranked_first", "applied"), 0)
    threshold = pipeline.threshold
    for row in rows:
        spun, original = row["spun"], row["original"]
        if spun.count("\n") != original.count("\n"):
            continue
        for s_line, o_line in zip(spun.split("\n"), original.split("\n")):
            gold = {(i, j, tuple(w.lower() for w in after)) for (i, j), after in gold_edits(s_line, o_line).items()}
            counts["gold"] += len(gold)
            if not gold:
                continue
            batch = pipeline.first_pass(pipeline.candidates([s_line]))
            counts["candidates"] += len(gold & {_key(s.candidate) for s in batch.pieces[0].candidates})
            pipeline.rescore(pipeline.prerank(batch))
            found = batch.pieces[0].candidates
            counts["prerank"] += len(gold & {_key(s.candidate) for s in found})
            tokens = batch.pieces[0].tokens
            first = {t.start: k for k, t in enumerate(tokens)}
            last = {t.end: k + 1 for k, t in enumerate(tokens)}
            for e in pipeline.rank(found):
                key = (first.get(e.start), last.get(e.end), tuple(w.lower() for w in words(e.after)))
                if key in gold:
                    counts["ranked_first"] += 1
                    counts["applied"] += e.confidence >= threshold
    n = max(counts["gold"], 1)
    return {**counts, **{f"{k}_share": counts[k] / n for k in counts if k != "gold"}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("--lm", default="smollm2")
    parser.add_argument("--testsets", nargs="+", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--dictionary", action="append", default=[])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    pipeline = Pipeline.from_pretrained(args.pipeline, lm=args.lm, dictionaries=args.dictionary)
    result = {p.stem: funnel(pipeline, load_testset(p)[: args.limit]) for p in args.testsets}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
