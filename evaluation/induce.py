"""A spinner dictionary induced from the corpus itself (`normalizer.induce`): the links it finds, and restoration
with them against without.

    python -m evaluation.induce --pipeline models/default \
        --testsets data/testsets/documents-dict-mythes-once.jsonl data/testsets/documents-clean.jsonl \
        --out evaluation/results/induce/heldout.json
    python -m evaluation.induce --pipeline DIR --spinner dict-moby --docs 30 --seed 9001 --out ...

For each set: the links read from its spun texts (`Pipeline.induce_dictionary`), how many are right (the spun word
aligned to that original somewhere in the set: equal-length replaced blocks, word by word) and how many gold swapped
words they cover; then word precision / recall / ERR of the pipeline without them and with them (one pass each:
`passes` and `dictionary_passes` 1, unless `--passes 2`). `--spinner` builds a set on the fly instead: `--docs`
held-out (test split) documents spun by a `training.spin.DICTIONARY_PROFILES` spinner, `--restore N` of them
restored (the links are read from all of them: a larger corpus shows more of its spinner's keys missing).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

from evaluation.calibrate import measure
from evaluation.testsets import load_testset
from normalizer.edits import words
from normalizer.metrics import extract_edits


def gold_links(rows: list[dict]) -> Counter:
    """(spun word, original word) of every one-word swap, lower case, as `normalizer.metrics` finds word edits
    (equal-length replaced blocks split word by word)."""
    out: Counter = Counter()
    for r in rows:
        spun = words(r["spun"])
        for start, end, after in extract_edits(r["spun"], r["original"]):
            if end - start == 1 and len(after) == 1 and spun[start].isalpha() and after[0].isalpha():
                if spun[start].lower() != after[0].lower():
                    out[(spun[start].lower(), after[0].lower())] += 1
    return out


def spun_documents(profile: str, docs: int, seed: int) -> list[dict]:
    from evaluation.testsets import documents_of
    from training.spin import dictionary_spinner

    spin = dictionary_spinner(profile).spin
    rng = random.Random(seed + 1)
    return [
        {"id": i, "spun": spin(text, rng=rng).spun, "original": text} for i, text in documents_of("test", docs, seed)
    ]


def evaluate(pipeline, name: str, rows: list[dict], restore: list[dict], passes: int) -> dict:
    gold = gold_links(rows)
    t = time.perf_counter()
    induced, links = pipeline.induce_dictionary([r["spun"] for r in rows], max_docs=len(rows))
    induce_seconds = time.perf_counter() - t
    right = [link for link in links if (link.alternative, link.key) in gold]
    result = {
        "set": name,
        "documents": len(rows),
        "restored_documents": len(restore),
        "links": len(links),
        "links_right": len(right),
        "gold_words_covered": sum(gold[(link.alternative, link.key)] for link in right),
        "gold_words": sum(gold.values()),
        "induce_seconds": round(induce_seconds, 1),
        "found": [
            {
                "alternative": link.alternative,
                "key": link.key,
                "right": (link.alternative, link.key) in gold,
                "predicted": round(link.predicted, 3),
                "places": link.places,
            }
            for link in links
        ],
    }
    base_config = pipeline.config
    for label, restorer in (("without", pipeline), ("with", induced)):
        restorer.config = dataclasses.replace(base_config, passes=passes, dictionary_passes=passes)
        t = time.perf_counter()
        m = measure(restorer, restore)
        m["seconds"] = round(time.perf_counter() - t, 1)
        result[label] = m
        restorer.config = base_config
    shown = ("word_precision", "word_recall", "err", "paragraphs_unchanged", "seconds")
    print(
        json.dumps(
            {
                **{k: v for k, v in result.items() if k not in ("found", "without", "with")},
                **{f"{label}_{k}": round(result[label][k], 3) for label in ("without", "with") for k in shown},
            }
        ),
        flush=True,
    )
    return result


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", default="models/default")
    parser.add_argument("--testsets", nargs="*", type=Path, default=[])
    parser.add_argument("--limit", type=int, default=0, help="first N rows of each test set (0: all)")
    parser.add_argument("--spinner", help="build a held-out set spun by this dictionary profile instead")
    parser.add_argument("--docs", type=int, default=30, help="with --spinner: documents to read links from")
    parser.add_argument("--restore", type=int, default=30, help="with --spinner: documents restored of those")
    parser.add_argument("--seed", type=int, default=9001)
    parser.add_argument("--passes", type=int, default=1, choices=(1, 2))
    parser.add_argument("--lm-dtype", default="auto")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from normalizer.engines.pipeline import Pipeline

    pipeline = Pipeline.from_pretrained(args.pipeline, lm_dtype=args.lm_dtype)
    results = []
    if args.spinner:
        rows = spun_documents(args.spinner, args.docs, args.seed)
        name = f"{args.spinner}-test-{len(rows)}docs-seed{args.seed}"
        results.append(evaluate(pipeline, name, rows, rows[: args.restore], args.passes))
    for path in args.testsets:
        rows = load_testset(path)
        rows = rows[: args.limit] if args.limit else rows
        results.append(evaluate(pipeline, path.stem, rows, rows, args.passes))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"command": "python -m evaluation.induce " + " ".join(argv), "results": results}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
