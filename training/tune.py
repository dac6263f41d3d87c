"""Choose a seq2seq checkpoint's inference defaults on dev data: `suppress_empty`, `threshold` and `passes`.

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
from pathlib import Path

from normalizer.engines.seq2seq import Seq2SeqRestorer
from normalizer.metrics import THRESHOLDS, apply_edits, evaluate


def tune(model_dir: Path, pairs: Path, n: int = 400, seed: int = 0, batch_size: int = 64) -> dict:
    from training.pairs import load_pairs

    ds = load_pairs(pairs, "dev").shuffle(seed=seed).select(range(n))
    spun, original = list(ds["spun"]), list(ds["original"])
    normalizer = Seq2SeqRestorer.from_pretrained(model_dir, threshold=0.0)
    table = []
    for suppress in (False, True):
        # One pass (a tuned checkpoint may say 2): the threshold table is for one pass.
        one_pass = normalizer.with_options(passes=1, suppress_empty=suppress)
        restorations = one_pass.restore_batch(spun, batch_size=batch_size)
        for t in THRESHOLDS:
            outputs = [apply_edits(s, r, t) for s, r in zip(spun, restorations)]
            m = evaluate(spun, outputs, original, sacrebleu_scores=False)
            table.append({"suppress_empty": suppress, "threshold": t, "passes": 1, **m})
    best = {**max(table, key=lambda row: (row["f0.5"], row["err"])), "passes": 1}
    # A second pass depends on which first-pass edits were applied, so it is scored at the chosen setting only.
    two_pass = normalizer.with_options(passes=2, suppress_empty=best["suppress_empty"], threshold=best["threshold"])
    m = evaluate(spun, two_pass.normalize_batch(spun, batch_size=batch_size), original, sacrebleu_scores=False)
    second = {"suppress_empty": best["suppress_empty"], "threshold": best["threshold"], "passes": 2, **m}
    table.append(second)
    if (second["f0.5"], second["err"]) > (best["f0.5"], best["err"]):
        best = second
    config = dataclasses.replace(
        normalizer.config,
        suppress_empty=best["suppress_empty"],
        threshold=best["threshold"],
        passes=best["passes"],
    )
    config.save(model_dir)
    report = {"dev_pairs": n, "seed": seed, "chosen": best, "table": table}
    (model_dir / "tuning.json").write_text(json.dumps(report, indent=2) + "\n")
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--pairs", type=Path, default=Path("data/pairs"))
    parser.add_argument("--n", type=int, default=400)
    args = parser.parse_args(argv)
    best = tune(args.model, args.pairs, args.n)
    print(
        f"chose suppress_empty={best['suppress_empty']} threshold={best['threshold']} "
        f"passes={best['passes']}: "
        f"dev F0.5 {best['f0.5']:.3f}, ERR {best['err']:.3f}, precision {best['precision']:.3f}, "
        f"recall {best['recall']:.3f}"
    )


if __name__ == "__main__":
    main()
