"""One pass against two, on text spun by a dictionary spinner, the pipeline given that spinner's dictionary.

    python -m evaluation.passes --testsets data/testsets/documents-dev-dict-wordnet.jsonl \
        data/testsets/documents-dev-dict-moby.jsonl --limit 3 --out evaluation/results/dictionary/passes-dev.json

Each set's spinner is its profile's (`training.spin.dictionary_spinner`; the set's `profile` field). The pipeline
restores every row (`evaluation.calibrate.measure`) with `dictionary_passes` 1, then 2: the second run finds the
first pass's pieces in the restorer's cache, so its extra time is the second pass's own. Word precision, recall and
ERR per set and pooled, paragraphs left unchanged, and the seconds each run took; `--profile` gives one spinner's
dictionary to every set (clean text given a dictionary).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from evaluation.calibrate import measure, pool, write_results
from evaluation.testsets import load_testset
from normalizer.engines.pipeline import Pipeline
from training.spin import dictionary_spinner


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default=None)
    parser.add_argument("--testsets", nargs="+", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=15)
    parser.add_argument("--passes", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--profile", default=None, help="the dictionary spinner whose dictionary is given (default: each set's own)"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    pipeline = Pipeline.from_pretrained(args.pipeline)
    pipeline.cache_size = 1 << 20
    base = pipeline.config
    per_passes: dict[int, dict] = {n: {} for n in args.passes}
    for path in args.testsets:
        rows = load_testset(path)[: args.limit]
        spinner = dictionary_spinner(args.profile or rows[0]["profile"])
        pipeline.dictionary = spinner.dictionary()
        for n in args.passes:
            pipeline.config = dataclasses.replace(base, dictionary_passes=n)
            start = time.perf_counter()
            m = measure(pipeline, rows)
            m["seconds"] = round(time.perf_counter() - start, 1)
            per_passes[n][path.stem] = m
            shown = ("word_precision", "word_recall", "err", "paragraphs_unchanged", "seconds")
            print(json.dumps({"set": path.stem, "passes": n, **{k: m[k] for k in shown}}), flush=True)
    results = [{"dictionary_passes": n, "pooled": pool(list(s.values())), "sets": s} for n, s in per_passes.items()]
    for r in results:
        print(json.dumps({"dictionary_passes": r["dictionary_passes"], "pooled": r["pooled"]}))
    write_results(args.out, "evaluation.passes", argv, results)


if __name__ == "__main__":
    main()
