"""How many candidates per span need full rescoring (`PipelineConfig.prerank_k`): quality per k from one scoring.

    python -m evaluation.prerank_k --testsets data/testsets/documents-dev-*.jsonl --limit 8 \
        --ks 1 2 3 4 --out reports/prerank-k-dev.json

Rescoring (the continuations) is most of the pipeline's time, and it grows with the candidates kept per span. Every
piece is scored once at the checkpoint's `prerank_k` (stages 1-4); a smaller k is then replayed exactly: per span
only the best k by pre-ranker score stay (with the candidates a dictionary always keeps), each one's `gain_gap` is
taken again against the best gain among those kept, and the ranker, the document prior and the threshold run
through the real `Restorer` path (`evaluation.calibrate.Replay`). Reported per k: word P / R, ERR, clean paragraphs
unchanged, and the candidates rescored per piece (the cost). `--gates` replays higher pre-ranker gates the same way
(a candidate under the gate is never rescored: the gate is the position gating of issue 23).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evaluation.calibrate import Replay, measure, pool, write_results
from evaluation.testsets import load_testset
from normalizer.engines.pipeline import Pipeline, Scored


def truncate(
    pipeline: Pipeline, found: list[Scored], k: int, gate: float | None = None, dictionary_k: int | None = None
) -> list[Scored]:
    """The candidates a pre-ranking to `k` per span (and, given, a `gate` at least the scoring's, and at most
    `dictionary_k` of a dictionary's beyond k) would have rescored, with `gain_gap` taken again. Exact: the gate and
    both cuts act on the same pre-ranker score."""
    by_span: dict[tuple[int, int], list[Scored]] = {}
    for s in found:
        always = s.candidate.kind == "spintax" or pipeline.evidenced(s.candidate)
        if gate is not None and s.features["prerank"] < gate and not always:
            continue
        by_span.setdefault((s.candidate.first, s.candidate.last), []).append(s)
    kept = []
    for group in by_span.values():
        group.sort(key=lambda s: -s.features["prerank"])
        spintax = [s for s in group[k:] if s.candidate.kind == "spintax"]
        linked = [s for s in group[k:] if s.candidate.kind != "spintax" and pipeline.evidenced(s.candidate)]
        chosen = group[:k] + spintax + linked[:dictionary_k]
        best = max(s.features["lm_gain"] for s in chosen)
        for s in chosen:
            kept.append(Scored(s.candidate, s.ids, {**s.features, "gain_gap": s.features["lm_gain"] - best}))
    return kept


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default=None)
    parser.add_argument("--testsets", nargs="+", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument(
        "--gates", type=float, nargs="+", default=None, help="pre-ranker gates, each >= the checkpoint's (default: it)"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    pipeline = Pipeline.from_pretrained(args.pipeline)
    if max(args.ks) > pipeline.config.prerank_k:
        parser.error(f"--ks up to the checkpoint's prerank_k ({pipeline.config.prerank_k})")
    gates = args.gates or [pipeline.config.gate]
    if min(gates) < pipeline.config.gate:
        parser.error(f"--gates from the checkpoint's gate ({pipeline.config.gate}) up")
    sets = {}
    for path in args.testsets:
        rows = load_testset(path)[: args.limit]
        texts = [r["spun"] for r in rows]
        pieces = list(dict.fromkeys(texts[d][a:b] for d, a, b in pipeline.pieces(texts)))
        sets[path.stem.removeprefix("documents-")] = (rows, dict(zip(pieces, pipeline.score(pieces, progress=True))))
    results = []
    for k, gate in [(k, g) for g in gates for k in args.ks]:
        per_set = {}
        for name, (rows, scored) in sets.items():
            kept = {piece: truncate(pipeline, found, k, gate) for piece, found in scored.items()}
            store = {piece: pipeline.rank(found) for piece, found in kept.items()}
            m = measure(Replay(pipeline, store, pipeline.threshold, pipeline.document_prior), rows)
            m["rescored_per_piece"] = sum(map(len, kept.values())) / max(len(kept), 1)
            per_set[name] = m
        spun = [m for n, m in per_set.items() if "clean" not in n]
        entry = {"prerank_k": k, "gate": gate, "spun": pool(spun), "sets": per_set}
        entry["clean"] = {n: m["paragraphs_unchanged"] for n, m in per_set.items() if "clean" in n}
        entry["rescored_per_piece"] = sum(m["rescored_per_piece"] for m in per_set.values()) / len(per_set)
        results.append(entry)
        print(
            json.dumps({key: entry[key] for key in ("prerank_k", "gate", "spun", "clean", "rescored_per_piece")}),
            flush=True,
        )
    write_results(args.out, "evaluation.prerank_k", argv, results)


if __name__ == "__main__":
    main()
