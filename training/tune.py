"""Choose a checkpoint's inference defaults on dev data: `suppress_empty`, `min_confidence` and `passes`.

    python -m training.tune models/default --pairs data/pairs --n 400

Runs the model once per `suppress_empty` setting over `n` dev pairs with every edit kept and scores each confidence
threshold, then scores a second pass (`passes=2`) at the best of those; writes the setting with the best F0.5
(precision counts twice as much as recall) into the checkpoint's `normalizer_config.json`, with the table it chose
from in `tuning.json`. Only dev data is used: test sets stay unseen.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from normalizer.core import Normalizer
from normalizer.metrics import THRESHOLDS, apply_edits, evaluate


def tune(
    model_dir: Path, pairs: Path, n: int = 400, seed: int = 0, batch_size: int = 64, rerank: str | None = None
) -> dict:
    from training.pairs import load_pairs

    ds = load_pairs(pairs, "dev").shuffle(seed=seed).select(range(n))
    spun, original = list(ds["spun"]), list(ds["original"])
    normalizer = Normalizer.from_pretrained(model_dir, min_confidence=0.0)
    table = []
    for suppress in (False, True):
        # One pass (a tuned checkpoint may say 2): the threshold table is for one pass.
        one_pass = normalizer.with_options(passes=1, suppress_empty=suppress)
        restorations = one_pass.restore_batch(spun, batch_size=batch_size)
        for t in THRESHOLDS:
            outputs = [apply_edits(s, r, t) for s, r in zip(spun, restorations)]
            m = evaluate(spun, outputs, original, sacrebleu_scores=False)
            table.append({"suppress_empty": suppress, "min_confidence": t, "passes": 1, **m})
    best = {**max(table, key=lambda row: (row["f0.5"], row["err"])), "passes": 1}
    # A second pass depends on which first-pass edits were applied, so it is scored at the chosen setting only.
    two_pass = normalizer.with_options(
        passes=2, suppress_empty=best["suppress_empty"], min_confidence=best["min_confidence"]
    )
    m = evaluate(spun, two_pass.normalize_batch(spun, batch_size=batch_size), original, sacrebleu_scores=False)
    second = {"suppress_empty": best["suppress_empty"], "min_confidence": best["min_confidence"], "passes": 2, **m}
    table.append(second)
    if (second["f0.5"], second["err"]) > (best["f0.5"], best["err"]):
        best = second
    config = dataclasses.replace(
        normalizer.config,
        suppress_empty=best["suppress_empty"],
        min_confidence=best["min_confidence"],
        passes=best["passes"],
    )
    config.save(model_dir)
    report = {"dev_pairs": n, "seed": seed, "chosen": best, "table": table}
    if rerank:
        report["rerank"] = rerank_table(normalizer, config, spun, original, rerank, batch_size)
    (model_dir / "tuning.json").write_text(json.dumps(report, indent=2) + "\n")
    return best


def rerank_table(normalizer, config, spun, original, rerank: str, batch_size: int) -> list[dict]:
    """The chosen setting without and with the language-model reranker at a few margins (the reranker is opt-in at
    run time, so this only informs its `--rerank-margin` default)."""
    from normalizer.rerank import LmReranker

    reranker = LmReranker.from_pretrained(rerank)
    rows = []
    for margin in (None, -2.0, 0.0, 2.0):
        reranker.margin = margin or 0.0
        chosen = normalizer.with_options(
            passes=config.passes,
            suppress_empty=config.suppress_empty,
            min_confidence=config.min_confidence,
            reranker=None if margin is None else reranker,
        )
        start = time.time()
        outputs = chosen.normalize_batch(spun, batch_size=batch_size)
        seconds = time.time() - start
        m = evaluate(spun, outputs, original, sacrebleu_scores=False)
        rows.append({"rerank": rerank if margin is not None else None, "margin": margin, "seconds": seconds, **m})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--pairs", type=Path, default=Path("data/pairs"))
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--rerank", metavar="LM", help="also measure the chosen setting with this reranker")
    args = parser.parse_args(argv)
    best = tune(args.model, args.pairs, args.n, rerank=args.rerank)
    print(
        f"chose suppress_empty={best['suppress_empty']} min_confidence={best['min_confidence']} "
        f"passes={best['passes']}: "
        f"dev F0.5 {best['f0.5']:.3f}, ERR {best['err']:.3f}, precision {best['precision']:.3f}, "
        f"recall {best['recall']:.3f}"
    )


if __name__ == "__main__":
    main()
