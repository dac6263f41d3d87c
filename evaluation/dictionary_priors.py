"""The dictionary priors swept with the document prior on, on whole documents given their spinner's dictionary.

    python -m evaluation.dictionary_priors --testsets data/testsets/documents-dev-dict-moby.jsonl \
        data/testsets/documents-dev-dict-wordnet.jsonl --limit 15 --out reports/dictionary-priors-dev.json

Each set's spinner is its profile's (`training.spin.dictionary_spinner`; the set's `profile` field), and the
pipeline is given that spinner's dictionary. Every piece is scored once (stages 1-4, `Pipeline.score`); each
(`dictionary_prior`, `dictionary_key_prior`, threshold) is then ranked again (`Pipeline.rank`, cheap) and restored
through the real `Restorer` path with the checkpoint's document prior (`evaluation.calibrate.Replay`);
`--dictionary-ks` replays a cap on the dictionary's candidates rescored per span (`PipelineConfig.dictionary_k`,
`evaluation.prerank_k.truncate`). Use dev sets
to choose, held-out sets (`documents-dict-mythes-*`) to report.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
from pathlib import Path

from evaluation.calibrate import Replay, measure, pool
from evaluation.prerank_k import truncate
from evaluation.testsets import load_testset
from normalizer.engines.pipeline import Pipeline
from training.spin import dictionary_spinner


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default=None)
    parser.add_argument("--testsets", nargs="+", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=15)
    parser.add_argument("--priors", type=float, nargs="+", default=[-4.0, -3.0, -2.0, -1.5, -1.0, 0.0])
    parser.add_argument("--key-priors", type=float, nargs="+", default=[-7.0, -6.0, -5.0, -4.0, -3.0])
    parser.add_argument("--thresholds", type=float, nargs="+", default=None, help="default: the pipeline's own")
    parser.add_argument(
        "--dictionary-ks",
        type=int,
        nargs="+",
        default=None,
        help="replay `dictionary_k` (a dictionary's candidates rescored beyond prerank_k), each <= the scoring's",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    pipeline = Pipeline.from_pretrained(args.pipeline)
    base = pipeline.config
    sets = {}
    for path in args.testsets:
        rows = load_testset(path)[: args.limit]
        spinner = dictionary_spinner(rows[0]["profile"])
        dictionary = spinner.dictionary()
        pipeline.dictionary = dictionary
        texts = [r["spun"] for r in rows]
        pieces = list(dict.fromkeys(texts[d][a:b] for d, a, b in pipeline.pieces(texts)))
        scored = dict(zip(pieces, pipeline.score(pieces, progress=True)))
        sets[path.stem.removeprefix("documents-")] = (rows, dictionary, scored)
    results = []
    thresholds = args.thresholds or [pipeline.threshold]
    dictionary_ks = args.dictionary_ks or [base.dictionary_k]
    for dk, prior, key_prior in itertools.product(dictionary_ks, args.priors, args.key_priors):
        pipeline.config = dataclasses.replace(base, dictionary_prior=prior, dictionary_key_prior=key_prior)
        per_threshold: dict[float, dict] = {t: {} for t in thresholds}
        for name, (rows, dictionary, scored) in sets.items():
            pipeline.dictionary = dictionary
            kept = {piece: truncate(pipeline, found, base.prerank_k, None, dk) for piece, found in scored.items()}
            store = {piece: pipeline.rank(found) for piece, found in kept.items()}
            for t in thresholds:
                m = measure(Replay(pipeline, store, t, pipeline.document_prior), rows)
                m["rescored_per_piece"] = sum(map(len, kept.values())) / max(len(kept), 1)
                per_threshold[t][name] = m
        for t, per_set in per_threshold.items():
            entry = {"dictionary_k": dk, "dictionary_prior": prior, "dictionary_key_prior": key_prior, "threshold": t}
            entry["pooled"] = pool(list(per_set.values()))
            entry["sets"] = per_set
            results.append(entry)
            print(
                json.dumps(
                    {
                        k: entry[k]
                        for k in ("dictionary_k", "dictionary_prior", "dictionary_key_prior", "threshold", "pooled")
                    }
                )
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
