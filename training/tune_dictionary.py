"""Choose the pipeline's dictionary priors on dev documents spun by training dictionary spinners given their dictionary.

    python -m training.tune_dictionary --checkpoint models/default --docs 8

For each training dictionary profile (`training.spin.TRAIN_DICTIONARY_PROFILES`), dev documents are spun with it
and restored by the checkpoint's pipeline given that spinner's dictionary; every rescored candidate is kept with
its ranker probability, LM gain, whether a dictionary proposed it and whether the spun span is itself a key. Then
`dictionary_prior` and `dictionary_key_prior` are chosen from a grid: the pair with the most right edits among
those whose dev precision at the checkpoint's threshold reaches `--min-precision` (per span, the surest candidate
is applied, as the pipeline does). The pair goes into the checkpoint's `pipeline_config.json`, the table into
`dictionary_tuning.json`. Only dev documents and training dictionaries are used: the held-out ones stay unseen.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from normalizer.engines.pipeline import Pipeline, PipelineConfig
from training.spin import TRAIN_DICTIONARY_PROFILES, dictionary_spinner

PRIORS = tuple(np.round(np.arange(-4.0, 6.01, 0.5), 2).tolist())


def collect(pipeline: Pipeline, profiles, docs: int, seed: int) -> list[dict]:
    """One row per rescored candidate of the dev documents: span id, probabilities' parts and the label."""
    from training.pairs import spin_documents
    from training.ranker import gold_spans, label_of

    rows = []
    for profile in profiles:
        spinner = dictionary_spinner(profile)
        pipeline.dictionary = spinner.dictionary()
        documents = spin_documents("dev", (profile,), docs, seed=seed, clean_share=0.0)
        spun = [s for d in documents for s, _, _ in d.sentences]
        texts = [d.text for d in documents for _ in d.sentences]
        scored = pipeline.score(spun, progress=True, documents=texts if pipeline.reads_documents else None)
        k = 0
        for d in documents:
            for s, o, t in d.sentences:
                gold = gold_spans(s, o, t)
                found = scored[k]
                probs = pipeline.ranker.prob_records([x.features for x in found]) if found else []
                for x, p in zip(found, probs):
                    c = x.candidate
                    rows.append(
                        {
                            "span": (profile, k, c.first, c.last),
                            "p": float(p),
                            "gain": x.features["lm_gain"],
                            "dictionary": c.dictionary,
                            "key": c.dictionary_key,
                            "label": label_of(gold, c),
                        }
                    )
                rows.append({"gold": len(gold)})
                k += 1
    return rows


def evaluate(rows: list[dict], prior: float, key_prior: float, threshold: float) -> dict:
    """Span-level precision and recall at `threshold` with these priors (the surest candidate per span)."""
    best: dict = {}
    n_gold = 0
    for r in rows:
        if "gold" in r:
            n_gold += r["gold"]
            continue
        p = r["p"]
        if r["dictionary"]:
            z = r["gain"] + (key_prior if r["key"] else prior)
            p = max(p, 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0))))
        if r["span"] not in best or p > best[r["span"]][0]:
            best[r["span"]] = (p, r["label"])
    applied = [label for p, label in best.values() if p >= threshold]
    right = sum(applied)
    return {
        "prior": prior,
        "key_prior": key_prior,
        "edits": len(applied),
        "right": right,
        "precision": right / len(applied) if applied else 1.0,
        "recall": right / n_gold if n_gold else 1.0,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("models/default"))
    parser.add_argument("--lm", default="smollm2")
    parser.add_argument("--profiles", nargs="+", default=list(TRAIN_DICTIONARY_PROFILES))
    parser.add_argument("--docs", type=int, default=8, help="dev documents per profile")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--min-precision", type=float, default=0.95)
    args = parser.parse_args(argv)
    start = time.time()
    pipeline = Pipeline.from_pretrained(args.checkpoint, lm=args.lm)
    rows = collect(pipeline, args.profiles, args.docs, args.seed)
    threshold = pipeline.threshold
    table = [evaluate(rows, a, b, threshold) for a in PRIORS for b in PRIORS]
    sure = [r for r in table if r["precision"] >= args.min_precision and r["edits"]]
    best = max(sure, key=lambda r: (r["right"], r["precision"])) if sure else max(table, key=lambda r: r["precision"])
    config = dataclasses.replace(
        PipelineConfig.load(args.checkpoint), dictionary_prior=best["prior"], dictionary_key_prior=best["key_prior"]
    )
    config.save(args.checkpoint)
    report = {
        "command": "python -m training.tune_dictionary " + " ".join(sys.argv[1:] if argv is None else argv),
        "profiles": args.profiles,
        "docs_per_profile": args.docs,
        "threshold": threshold,
        "chosen": best,
        "candidates": sum(1 for r in rows if "gold" not in r),
        "table": table,
        "seconds": round(time.time() - start, 1),
    }
    (args.checkpoint / "dictionary_tuning.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(best))


if __name__ == "__main__":
    main()
