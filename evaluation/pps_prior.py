"""The prior of the real spinner pairs' links (`PipelineConfig.pps_prior`) swept, from one scoring per set.

    python -m evaluation.pps_prior --pipeline runs/tortured/train \
        --testsets data/testsets/tortured-dev.jsonl data/testsets/documents-dev-clean.jsonl --limit 200 \
        --out reports/pps-prior-dev.json

Every piece is scored once (stages 1-4, `Pipeline.score`, with the links always rescored); each (`pps_prior`,
threshold) is ranked again (`Pipeline.rank`) and restored through the real `Restorer` path with the checkpoint's
document prior (`evaluation.calibrate.Replay`). Choose on a build that learnt from the train split only, against
the dev sets; report on the test sets with the shipped build (train and dev learnt).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from evaluation.calibrate import Replay, measure, write_results
from evaluation.testsets import load_testset
from normalizer.engines.pipeline import Pipeline


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default=None)
    parser.add_argument("--testsets", nargs="+", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--priors", nargs="+", default=["none", "-6", "-5", "-4", "-3", "-2"])
    parser.add_argument("--thresholds", type=float, nargs="+", default=None, help="default: the pipeline's own")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    pipeline = Pipeline.from_pretrained(args.pipeline)
    base = pipeline.config
    pipeline.config = dataclasses.replace(base, pps_prior=0.0)  # score with the links always rescored
    sets = {}
    for path in args.testsets:
        rows = load_testset(path)[: args.limit]
        texts = [r["spun"] for r in rows]
        pieces = list(dict.fromkeys(texts[d][a:b] for d, a, b in pipeline.pieces(texts)))
        sets[path.stem] = (rows, dict(zip(pieces, pipeline.score(pieces, progress=True))))
    results = []
    thresholds = args.thresholds or [pipeline.threshold]
    for prior in args.priors:
        value = None if prior == "none" else float(prior)
        pipeline.config = dataclasses.replace(base, pps_prior=value)
        for t in thresholds:
            per_set = {}
            for name, (rows, scored) in sets.items():
                store = {piece: pipeline.rank(found) for piece, found in scored.items()}
                per_set[name] = measure(Replay(pipeline, store, t, pipeline.document_prior), rows)
            results.append({"pps_prior": value, "threshold": t, "sets": per_set})
            print(
                f"prior {prior:>5} t={t:.2f} "
                + "  ".join(
                    f"{n}: P {m['word_precision']:.3f} R {m['word_recall']:.3f} ERR {m['err']:.3f} "
                    f"exact {m['exact']:.3f} unch {m['paragraphs_unchanged']:.3f}"
                    for n, m in per_set.items()
                ),
                flush=True,
            )
    write_results(args.out, "evaluation.pps_prior", argv, results)


if __name__ == "__main__":
    main()
