"""int8 language model against float32, side by side on the same pieces.

    python -m evaluation.bench_quantize --testset data/testsets/synthetic-bestspinner-r0.3.jsonl --n 20 \
        --out evaluation/results/pipeline/bench-quantize-int8.json

Proposes every piece of the first `n` paragraphs with the shipped pipeline in float32, then with the LM's linear
layers in int8 (`lm_dtype="int8"`, `normalizer.stages.int8`: per-token activation scales), or with `--torch-dynamic`
torch's own dynamic quantisation (`torch.ao.quantization.quantize_dynamic`, one activation scale per batch), each
timed after a warm-up run, the cache off. Reports the times, and how far the confidences of the same proposals
moved.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from evaluation.testsets import load_testset
from normalizer.engines.pipeline import Pipeline


def timed(pipeline: Pipeline, pieces: list[str]):
    pipeline.propose(pieces)  # warm-up
    start = time.perf_counter()
    found = pipeline.propose(pieces)
    return time.perf_counter() - start, found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default=None)
    parser.add_argument("--testset", type=Path, required=True)
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--torch-dynamic", action="store_true", help="torch.ao's quantize_dynamic instead of ours")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pipeline = Pipeline.from_pretrained(args.pipeline, lm_dtype="float32")
    pipeline.cache_size = 0
    texts = [r["spun"] for r in load_testset(args.testset)[: args.n]]
    pieces = [texts[d][a:b] for d, a, b in pipeline.pieces(texts)]
    t_float, float_found = timed(pipeline, pieces)
    if args.torch_dynamic:
        pipeline.lm.model = torch.ao.quantization.quantize_dynamic(
            pipeline.lm.model, {torch.nn.Linear}, dtype=torch.qint8
        )
    else:
        pipeline.lm.quantize()
    t_int8, int8_found = timed(pipeline, pieces)
    moved = [
        abs(x.confidence - y.confidence)
        for a, b in zip(float_found, int8_found)
        for x, y in zip(a, b)
        if (x.start, x.after) == (y.start, y.after)
    ]
    result = {
        "method": "torch.ao quantize_dynamic" if args.torch_dynamic else "normalizer.stages.int8",
        "pieces": len(pieces),
        "threads": args.threads,
        "float32_seconds": round(t_float, 2),
        "int8_seconds": round(t_int8, 2),
        "speedup": round(t_float / t_int8, 2),
        "pieces_with_identical_proposals": sum(a == b for a, b in zip(float_found, int8_found)),
        "confidence_moved_median": round(statistics.median(moved), 4) if moved else None,
        "confidence_moved_max": round(max(moved), 4) if moved else None,
        f"proposals_at_or_over_{args.threshold}": {
            "float32": sum(e.confidence >= args.threshold for f in float_found for e in f),
            "int8": sum(e.confidence >= args.threshold for f in int8_found for e in f),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
