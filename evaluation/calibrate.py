"""Document-level calibration (`normalizer.restorer.DocumentPrior`) swept on whole-document sets, from one scoring.

    python -m evaluation.testsets --document-sets --out data/testsets
    python -m evaluation.calibrate --pipeline models/default --proposals runs/calibrate/proposals.jsonl \
        --testsets data/testsets/documents-*.jsonl --limit 30 --out reports/calibrate.json

Scoring (the slow part) runs once: every piece's proposals are stored in `--proposals` (JSONL, one piece a line,
appended as each set is done, so a killed run resumes where it stopped). Then each setting of the grid (thresholds
x document priors, "none" included) restores every set through the real `Restorer` path with those proposals
replayed, and reports the metrics per set, pooled over the dev sets and over the held-out ones, with paragraph-level
"unchanged" for the clean sets (a document is many paragraphs: one edit anywhere changes it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from evaluation.testsets import load_testset
from normalizer.edits import Edit, words
from normalizer.engines.pipeline import Pipeline
from normalizer.metrics import edit_distance, word_counts
from normalizer.restorer import DocumentPrior, Restorer
from normalizer.wordrates import WordRates

logger = logging.getLogger(__name__)


class Replay(Restorer):
    """A restorer that proposes what an engine proposed before (`store`: piece -> edits), asking the engine only
    for pieces it has not seen; pieces, guard and passes as the engine's."""

    def __init__(self, engine: Restorer, store: dict[str, list[Edit]], threshold: float, prior: DocumentPrior | None):
        self.engine, self.store = engine, store
        self.threshold, self.document_prior = threshold, prior
        self.max_words, self.max_piece_tokens = engine.max_words, engine.max_piece_tokens
        self.guard, self.passes, self.cache_size = engine.guard, engine.passes, 0
        self.word_rates = engine.word_rates

    def piece_tokens(self, text: str) -> int:
        return self.engine.piece_tokens(text)

    def propose(self, pieces, *, batch_size=None, progress=False, documents=None):
        missing = [p for p in dict.fromkeys(pieces) if p not in self.store]
        if missing:
            self.store.update(zip(missing, self.engine.propose(missing, batch_size=batch_size, progress=progress)))
        return [self.store[p] for p in pieces]


def write_results(path: Path, module: str, argv: list[str] | None, results: list) -> None:
    """Write a sweep's `results` as JSON with the command that made them (`python -m <module> <argv>`)."""
    command = " ".join([f"python -m {module}", *(argv if argv is not None else sys.argv[1:])])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"command": command, "results": results}, indent=1) + "\n")


def read_store(path: Path) -> dict[str, list[Edit]]:
    store: dict[str, list[Edit]] = {}
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                store[row["piece"]] = [
                    Edit(**{**e, "scores": tuple(tuple(s) for s in e["scores"])}) for e in row["edits"]
                ]
    return store


def append_store(path: Path, store: dict[str, list[Edit]], pieces: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        for piece in pieces:
            f.write(json.dumps({"piece": piece, "edits": [asdict(e) for e in store[piece]]}, ensure_ascii=False) + "\n")


def paragraph_unchanged(spun: list[str], outputs: list[str]) -> float:
    pairs = [(a, b) for s, o in zip(spun, outputs) for a, b in zip(s.split("\n"), o.split("\n"))]
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else 1.0


def pool(entries: list[dict]) -> dict:
    """Word-level metrics pooled over sets (counts summed), ERR from summed word errors."""
    keys = ("word_tp", "word_sys", "word_gold", "err_in", "err_out")
    total = {k: sum(e[k] for e in entries) for k in keys}
    return {
        "word_precision": total["word_tp"] / total["word_sys"] if total["word_sys"] else 1.0,
        "word_recall": total["word_tp"] / total["word_gold"] if total["word_gold"] else 0.0,
        "err": 1 - total["err_out"] / total["err_in"] if total["err_in"] else 0.0,
    }


def measure(restorer: Restorer, rows: list[dict], lines: str = "document") -> dict:
    """Word-level counts (precision, recall), word errors before and after, and paragraphs left unchanged.
    `lines`: "document" restores each row whole; "alone" each of its lines (paragraphs) as its own text; "grouped"
    each line as a text, a row's lines one group (`restore_batch(groups=...)`, `normalize --document file`)."""
    spun = [r["spun"] for r in rows]
    original = [r["original"] for r in rows]
    if lines == "document":
        outputs = [r.text for r in restorer.restore_batch(spun)]
    else:
        split = [(k, line) for k, text in enumerate(spun) for line in text.split("\n")]
        groups = [k for k, _ in split] if lines == "grouped" else None
        done = restorer.restore_batch([line for _, line in split], groups=groups)
        joined: dict[int, list[str]] = {}
        for (k, _), r in zip(split, done):
            joined.setdefault(k, []).append(r.text)
        outputs = ["\n".join(joined[k]) for k in range(len(spun))]
    tp, n_sys, n_gold = word_counts(spun, outputs, original)
    m = {"word_tp": tp, "word_sys": n_sys, "word_gold": n_gold}
    m["err_in"] = sum(edit_distance(words(s), words(o)) for s, o in zip(spun, original))
    m["err_out"] = sum(edit_distance(words(s), words(o)) for s, o in zip(outputs, original))
    m["paragraphs_unchanged"] = paragraph_unchanged(spun, outputs)
    m["exact"] = sum(o == g for o, g in zip(outputs, original)) / max(len(rows), 1)
    return {**m, **pool([m])}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default=None)
    parser.add_argument(
        "--dictionary", action="append", default=[], help="spinner dictionary given to the pipeline (its own store)"
    )
    parser.add_argument("--testsets", nargs="+", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--proposals", type=Path, nargs="+", required=True, help="the first one is appended to")
    parser.add_argument("--thresholds", type=float, nargs="+", default=None, help="default: the pipeline's own")
    parser.add_argument("--rates", type=float, nargs="+", default=[0.02, 0.05, 0.1])
    parser.add_argument("--strengths", type=float, nargs="+", default=[5.0, 20.0, 80.0])
    parser.add_argument("--max-shifts", type=float, nargs="+", default=[2.0, 4.0])
    parser.add_argument(
        "--pair-strengths", nargs="+", default=["none", "1", "4"], help="DocumentPrior.pair_strength values; none: off"
    )
    parser.add_argument("--key-weights", nargs="+", default=["none"], help="DocumentPrior.key_weight values; none: off")
    parser.add_argument("--key-maxes", type=float, nargs="+", default=[3.0], help="DocumentPrior.key_max values")
    parser.add_argument(
        "--key-pairs", nargs="+", default=["yes"], choices=("yes", "no"), help="DocumentPrior.key_pairs"
    )
    parser.add_argument("--word-rates", type=Path, default=None, help="a word-rate table instead of the pipeline's")
    parser.add_argument(
        "--adapt", action="store_true", help="restore each set after adapting on it (clean sets: on it and the spun)"
    )
    parser.add_argument(
        "--lines",
        choices=("document", "alone", "grouped"),
        default="document",
        help="restore each row whole, each of its lines alone, or its lines as one group (see measure)",
    )
    parser.add_argument("--adapt-docs", type=int, default=0, help="adapt on only the first N documents of each set")
    parser.add_argument("--score-only", action="store_true", help="score the sets into --proposals and stop")
    parser.add_argument("--lm", default="smollm2", help="the pipeline's language model (a name or a local path)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    pipeline = Pipeline.from_pretrained(args.pipeline, lm=args.lm, dictionaries=args.dictionary)
    if args.word_rates is not None:
        pipeline.word_rates = WordRates.load(args.word_rates)
    store = {k: v for path in args.proposals for k, v in read_store(path).items()}
    sets = {p.stem.removeprefix("documents-"): load_testset(p)[: args.limit] for p in args.testsets}
    for name, rows in sets.items():
        before = set(store)
        Replay(pipeline, store, pipeline.threshold, None).restore_batch([r["spun"] for r in rows], progress=True)
        append_store(args.proposals[0], store, [p for p in store if p not in before])
        logger.info("%s: %d pieces scored (%d stored)", name, len(store) - len(before), len(store))
    if args.score_only:
        return

    keys = [
        (None, 3.0, True) if k == "none" else (float(k), m, pairs == "yes")
        for k in args.key_weights
        for m in args.key_maxes
        for pairs in args.key_pairs
    ]
    priors = [None] + [
        DocumentPrior(
            rate,
            strength,
            shift,
            pair_strength=None if pair == "none" else float(pair),
            key_weight=kw,
            key_max=km,
            key_pairs=kp,
        )
        for rate, strength, shift, pair, (kw, km, kp) in itertools.product(
            args.rates, args.strengths, args.max_shifts, args.pair_strengths, dict.fromkeys(keys)
        )
    ]
    results = []
    for threshold in args.thresholds or [pipeline.threshold]:
        for prior in priors:
            replay = Replay(pipeline, store, threshold, prior)
            if args.adapt and prior is not None:
                # Each set restored after adapting on itself; a clean set on itself plus every spun set (a feed
                # that mixes clean and spun documents).
                spun_rows = [r for n, rows in sets.items() if "clean" not in n for r in rows]
                per_set = {
                    name: measure(
                        replay.adapt(
                            [r["spun"] for r in rows + (spun_rows if "clean" in name else [])],
                            max_docs=args.adapt_docs or 10**9,
                        ),
                        rows,
                    )
                    for name, rows in sets.items()
                }
            else:
                per_set = {name: measure(replay, rows, args.lines) for name, rows in sets.items()}
            entry = {
                "threshold": threshold,
                "prior": asdict(prior) if prior else None,
                "adapted": bool(args.adapt and prior is not None),
                "adapt_docs": args.adapt_docs if args.adapt else None,
                "dev": pool([m for n, m in per_set.items() if n.startswith("dev-") and "clean" not in n]),
                "held_out": pool([m for n, m in per_set.items() if not n.startswith("dev-") and "clean" not in n]),
                "sets": per_set,
            }
            results.append(entry)
            line = {k: entry[k] for k in ("threshold", "prior", "dev", "held_out")}
            line["clean"] = {n: round(m["paragraphs_unchanged"], 4) for n, m in per_set.items() if "clean" in n}
            line["sets"] = {n: (round(m["word_precision"], 3), round(m["word_recall"], 3)) for n, m in per_set.items()}
            print(json.dumps(line))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
