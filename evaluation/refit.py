"""Refit a checkpoint's ranker from a cached feature file on a subset of its features (an ablation without a new
scoring run): `python -m evaluation.refit --cache runs/pipe-doc/feat.npz --checkpoint runs/pipe-doc --features
sentence --out runs/pipe-doc-sentence`. The threshold is chosen as `training.ranker` chooses it."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from normalizer.stages.features import FEATURES, SCHEMAS
from normalizer.stages.ranker import Ranker
from training.ranker import decision_table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--features", choices=("sentence", "document"), default="sentence")
    parser.add_argument("--min-precision", type=float, default=0.9)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    data = np.load(args.cache, allow_pickle=False)
    x, y, groups = data["x"], data["y"], [tuple(g) for g in data["groups"].tolist()]
    names = FEATURES if args.features == "sentence" else SCHEMAS[1]
    x = x[:, : len(names)]  # the cache holds the document features after the sentence ones
    n_gold = int(json.loads((args.checkpoint / "ranker_training.json").read_text())["gold_edits"])
    ranker = Ranker.fit(x, y, features=names)
    rows = decision_table(ranker.prob(x), y, groups, n_gold)
    sure = [r for r in rows if r["precision"] >= args.min_precision and r["edits"]]
    ranker.threshold = (sure[0] if sure else max(rows, key=lambda r: r["f0.5"]))["threshold"]
    shutil.copytree(args.checkpoint, args.out, dirs_exist_ok=True)
    ranker.save(args.out)
    print(json.dumps({"threshold": ranker.threshold, "features": len(names), "dev_table": rows}))


if __name__ == "__main__":
    main()
