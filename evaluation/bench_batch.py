"""Throughput of `normalize-batch` (Ray Data) with 1 and 2 workers against the plain `normalize` CLI on the same
file, in one run, and the engine's fixed cost on a small file. Every run is a fresh process timed from start to
exit (model loading and Ray's start included), as a user would see it.

    python -m evaluation.bench_batch --model models/default --engine seq2seq --records 480 \
        --out evaluation/results/bench-batch.json

Input: the spun paragraphs of the synthetic test sets (`data/testsets`), as JSONL. Also reports how many restored
texts of each batch run equal the CLI's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evaluation.bench import machine
from normalizer.segment import segment


def make_input(testsets: Path, n: int, path: Path) -> tuple[int, int]:
    """Write `n` spun paragraphs to `path`; (records, sentences)."""
    texts = []
    for f in sorted(testsets.glob("synthetic-*.jsonl")):
        texts += [json.loads(line)["spun"] for line in f.open()]
    if len(texts) < n:
        texts = (texts * (n // max(len(texts), 1) + 1))[:n]
    texts = texts[:n]
    path.write_text("".join(json.dumps({"id": k, "text": t}) + "\n" for k, t in enumerate(texts)))
    return len(texts), sum(len(segment(t)) for t in texts)


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def cli(src: Path, out: Path, args) -> tuple[float, list[str]]:
    cmd = [sys.executable, "-m", "normalizer.cli", str(src), "-o", str(out), "--jsonl", "--field", "text"]
    cmd += ["--output-field", "restored", "--model", args.model, "--engine", args.engine, "--no-progress"]
    seconds = timed(cmd)
    return seconds, [json.loads(line)["restored"] for line in out.open()]


def batch(src: Path, out: Path, workers: int, args) -> tuple[float, list[str]]:
    cmd = [sys.executable, "-m", "normalizer.batch", str(src), "-o", str(out), "--workers", str(workers)]
    cmd += ["--model", args.model, "--engine", args.engine, "--shard-size", str(args.shard_size), "--no-progress"]
    seconds = timed(cmd)
    import pyarrow.parquet as pq

    rows = [r for f in sorted(out.glob("part-*.parquet")) for r in pq.read_table(f).to_pylist()]
    return seconds, [r["restored"] for r in sorted(rows, key=lambda r: r["position"])]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/default")
    p.add_argument("--engine", default="seq2seq", choices=("auto", "pipeline", "seq2seq"))
    p.add_argument("--testsets", type=Path, default=Path("data/testsets"))
    p.add_argument("--records", type=int, default=480)
    p.add_argument("--small", type=int, default=20, help="records in the small file (engine overhead)")
    p.add_argument("--shard-size", type=int, default=60)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)

    report = {"machine": machine(), "model": args.model, "engine": args.engine, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for label, n in (("small", args.small), ("main", args.records)):
            src = tmp / f"{label}.jsonl"
            records, sentences = make_input(args.testsets, n, src)
            seconds, reference = cli(src, tmp / f"{label}-cli.jsonl", args)
            runs = [("normalize (CLI)", seconds, reference)]
            for w in args.workers if label == "main" else [1]:
                seconds, restored = batch(src, tmp / f"{label}-batch-{w}", w, args)
                runs.append((f"normalize-batch, {w} worker{'s' * (w > 1)}", seconds, restored))
            for name, seconds, restored in runs:
                row = {
                    "file": label,
                    "run": name,
                    "records": records,
                    "sentences": sentences,
                    "seconds": round(seconds, 2),
                    "records_per_s": round(records / seconds, 2),
                    "sentences_per_s": round(sentences / seconds, 2),
                    "same_as_cli": sum(a == b for a, b in zip(restored, reference)) / records,
                }
                report["runs"].append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
