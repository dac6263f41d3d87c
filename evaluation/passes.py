"""One pass against two, on text spun by a dictionary spinner, the pipeline given that spinner's dictionary, or on
any text without one.

    python -m evaluation.passes --testsets data/testsets/documents-dev-dict-wordnet.jsonl \
        data/testsets/documents-dev-dict-moby.jsonl --limit 3 --out evaluation/results/dictionary/passes-dev.json
    python -m evaluation.passes --no-dictionary --thresholds 0.85 0.9 --testsets data/testsets/documents-dev-*.jsonl \
        --limit 6 --out evaluation/results/pipeline/passes-dev.json

Each set's spinner is its profile's (`training.spin.dictionary_spinner`; the set's `profile` field). The pipeline
restores every row (`evaluation.calibrate.measure`) with `dictionary_passes` 1, then 2 (`--no-dictionary`: no
dictionary and `passes` 1, then 2): the second run finds the first pass's pieces in the restorer's cache, so its
extra time is the second pass's own. Word precision, recall and ERR per set and pooled (sets named `*clean*` out of
the pool), paragraphs left unchanged, and the seconds each run took, at each of `--thresholds` (default the
pipeline's); `--profile` gives one spinner's dictionary to every set (clean text given a dictionary).
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
    parser.add_argument("--no-dictionary", action="store_true", help="no dictionary: vary `passes` instead")
    parser.add_argument("--thresholds", type=float, nargs="+", default=None)
    parser.add_argument(
        "--pass-thresholds",
        type=float,
        nargs="+",
        default=[None],
        help="with --no-dictionary: the extra passes' least confidence (`pass_threshold`; default the threshold)",
    )
    parser.add_argument(
        "--lm-dtype", default="auto", help="the LM's precision (auto, float32, bfloat16, float16, int8)"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    pipeline = Pipeline.from_pretrained(args.pipeline, lm_dtype=args.lm_dtype)
    pipeline.cache_size = 1 << 20
    base = pipeline.config
    field = "passes" if args.no_dictionary else "dictionary_passes"
    thresholds = args.thresholds or [pipeline.threshold]
    later = args.pass_thresholds if args.no_dictionary else [None]
    runs: dict[tuple, dict] = {(t, n, q): {} for t in thresholds for n in args.passes for q in later}
    for path in args.testsets:
        rows = load_testset(path)[: args.limit]
        if args.no_dictionary:
            pipeline.dictionary = None
        else:
            pipeline.dictionary = dictionary_spinner(args.profile or rows[0]["profile"]).dictionary()
        for t, n, q in runs:
            if n == 1 and q != later[0]:
                runs[(t, n, q)][path.stem] = runs[(t, n, later[0])][path.stem]  # one pass: no extra pass to gate
                continue
            pipeline.config = dataclasses.replace(base, threshold=t, pass_threshold=q, **{field: n})
            start = time.perf_counter()
            m = measure(pipeline, rows)
            m["seconds"] = round(time.perf_counter() - start, 1)
            runs[(t, n, q)][path.stem] = m
            shown = ("word_precision", "word_recall", "err", "paragraphs_unchanged", "seconds")
            setting = {"threshold": t, field: n, "pass_threshold": q}
            print(json.dumps({"set": path.stem, **setting, **{k: m[k] for k in shown}}), flush=True)
    results = []
    for (t, n, q), sets in runs.items():
        spun = [m for name, m in sets.items() if "clean" not in name]
        setting = {"threshold": t, field: n, "pass_threshold": q}
        results.append({**setting, "pooled": pool(spun) if spun else None, "sets": sets})
        print(json.dumps({**setting, "pooled": results[-1]["pooled"]}))
    write_results(args.out, "evaluation.passes", argv, results)


if __name__ == "__main__":
    main()
