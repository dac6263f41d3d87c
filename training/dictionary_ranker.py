"""The dictionary ranker: P(a candidate that a user's spinner dictionary links restores the original |
`DICTIONARY_FEATURES`), in place of the two dictionary priors.

    python -m training.dictionary_ranker --pipeline models/default --docs 8 --out models/default

Training-split documents (`evaluation.testsets.documents_of`) are spun by each training dictionary spinner
(`training.spin.TRAIN_DICTIONARY_PROFILES`; the held-out spinners' MyThes dictionaries are never read) and scored by
the pipeline given that spinner's dictionary (stages 1-4, as `restore` scores them). Every candidate the dictionary
links is a row: its features, the sentence ranker's probability and the dictionary's structure (the spun span
standing as a key, how many keys write it, how many alternatives its key has); its label says whether it is the
original at that span. A logistic regression (`Ranker.fit`) is written to `dictionary_ranker.json` in `--out`, with a
report beside it. The pipeline reads it when present.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from normalizer.checkpoint import DICTIONARY_RANKER_FILE
from normalizer.edits import tokenize, words
from normalizer.engines.pipeline import Pipeline
from normalizer.stages.dictionary import SpinnerDictionary
from normalizer.stages.features import DICTIONARY_FEATURES, dictionary_features
from normalizer.stages.ranker import Ranker, gold_edits

REPORT_FILE = "dictionary_ranker_training.json"


def gold_char_spans(spun: str, original: str) -> set[tuple[int, int, tuple[str, ...]]]:
    """The gold word edits of a document as (start, end) characters of the spun text and the original's words
    (lower case), line by line (`gold_edits`)."""
    out, offset = set(), 0
    for s_line, o_line in zip(spun.split("\n"), original.split("\n")):
        toks = tokenize(s_line)
        for (i, j), after in gold_edits(s_line, o_line).items():
            if i < j:
                out.add((offset + toks[i].start, offset + toks[j - 1].end, tuple(w.lower() for w in after)))
        offset += len(s_line) + 1
    return out


def labelled_rows(pipeline: Pipeline, rows: list[dict], progress: bool = False) -> tuple[list[dict], list[float]]:
    """(records, labels) of every dictionary candidate the pipeline rescores in `rows` ({"spun", "original"})."""
    texts = [r["spun"] for r in rows]
    where = pipeline.pieces(texts)
    first: dict[str, tuple[int, int]] = {}
    for d, a, b in where:
        first.setdefault(texts[d][a:b], (d, a))
    pieces = list(first)
    gold = [gold_char_spans(r["spun"], r["original"]) for r in rows]
    records, labels = [], []
    for piece, found in zip(pieces, pipeline.score(pieces, progress=progress)):
        d, a = first[piece]
        linked = [s for s in found if s.candidate.dictionary]
        if not linked:
            continue
        probs = pipeline.ranker.prob_records([s.features for s in linked]).tolist()
        for s, p in zip(linked, probs):
            c = s.candidate
            key = (a + c.start, a + c.end, tuple(w.lower() for w in words(c.after)))
            records.append(dictionary_features(c, s.features, p, pipeline.dictionary))
            labels.append(float(key in gold[d]))
    return records, labels


def spun_documents(profile: str, n: int, seed: int) -> tuple[list[dict], SpinnerDictionary]:
    """`n` training-split documents spun by the dictionary spinner `profile`, and its dictionary."""
    from evaluation.testsets import documents_of
    from training.spin import dictionary_spinner

    spinner = dictionary_spinner(profile)
    rng = random.Random(seed)
    rows = [{"spun": spinner.spin(t, rng=rng).spun, "original": t} for _, t in documents_of("train", n, seed)]
    return rows, SpinnerDictionary.from_lines(["|".join([k, *a]) for k, a in spinner.entries.items()])


def main(argv: list[str] | None = None) -> None:
    from training.spin import TRAIN_DICTIONARY_PROFILES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default=None, help="pipeline checkpoint (default: the shipped model)")
    parser.add_argument("--profiles", nargs="+", default=list(TRAIN_DICTIONARY_PROFILES))
    parser.add_argument("--docs", type=int, default=8, help="training documents per profile")
    parser.add_argument("--seed", type=int, default=2468)
    parser.add_argument("--l2", type=float, default=1e-2)
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to write the ranker into")
    args = parser.parse_args(argv)
    held_out = [p for p in args.profiles if "mythes" in p]
    if held_out:
        parser.error(f"{held_out}: the held-out dictionary spinners are not trained on")
    pipeline = Pipeline.from_pretrained(args.pipeline)
    pipeline.dictionary_ranker = None  # the features are the sentence ranker's and the LM's, never its own
    records, labels, per_profile = [], [], {}
    start = time.perf_counter()
    for k, profile in enumerate(args.profiles):
        rows, pipeline.dictionary = spun_documents(profile, args.docs, args.seed + k)
        r, y = labelled_rows(pipeline, rows, progress=True)
        records += r
        labels += y
        per_profile[profile] = {"documents": len(rows), "candidates": len(y), "positives": int(sum(y))}
        print(json.dumps({profile: per_profile[profile]}), file=sys.stderr, flush=True)
    if not labels or not 0 < sum(labels) < len(labels):
        sys.exit("dictionary_ranker: the scored documents gave no positive or no negative candidate")
    x = np.array([[r[name] for name in DICTIONARY_FEATURES] for r in records])
    ranker = Ranker.fit(x, np.array(labels), DICTIONARY_FEATURES, l2=args.l2)
    args.out.mkdir(parents=True, exist_ok=True)
    ranker.save(args.out, DICTIONARY_RANKER_FILE)
    report = {
        "command": " ".join(["python -m training.dictionary_ranker", *(argv if argv is not None else sys.argv[1:])]),
        "profiles": per_profile,
        "seconds": time.perf_counter() - start,
        "weights": dict(zip(DICTIONARY_FEATURES, ranker.weights)),
    }
    (args.out / REPORT_FILE).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
