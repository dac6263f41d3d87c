"""Speed of the restoration pipeline, stage by stage, and of its LM scoring against naive full-sentence rescoring.

    python -m evaluation.bench_pipeline --pipeline models/default \
        --testset data/testsets/synthetic-bestspinner-r0.3.jsonl \
        --n 20 --out reports/bench-pipeline.json

Reports sentences/s of `Pipeline.restore_batch` as users run it; where the time goes (each stage's public method
timed on its own: candidates, first pass, pre-rank, rescore, rank); LM forward calls and rescored candidates per
sentence; and, on the same candidates, the time of the cached continuations against scoring each candidate by a full
pass over its own sentence (the naive way), with the largest difference between the two scores (they must agree);
and the arithmetic the LM's linear layers were asked for, against this machine's rate for a matrix product of the
model's shape (`arithmetic`): the bound on sentences/s that no change around the model beats.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

from evaluation.bench import machine
from evaluation.testsets import load_testset
from normalizer.engines.pipeline import Pipeline


def bench(pipeline: Pipeline, docs: list[str], naive_n: int = 300) -> dict:
    pieces = [docs[d][a:b] for d, a, b in pipeline.pieces(docs)]
    lm = pipeline.lm
    start, passes, fed, projected = time.perf_counter(), lm.passes, lm.tokens_fed, lm.positions_projected
    pipeline.restore_batch(docs)
    total = time.perf_counter() - start
    n_passes = lm.passes - passes
    work = arithmetic(lm, lm.tokens_fed - fed, lm.positions_projected - projected, total, len(pieces))
    # Stage times on the same pieces, one batch at a time as restore_batch does, each stage called on its own.
    times = dict.fromkeys(("candidates", "first_pass", "prerank", "rescore", "rank"), 0.0)
    rescored = 0
    sample = None
    order = sorted(pieces, key=len)
    step = pipeline.config.batch_size
    for k in range(0, len(order), step):
        texts = order[k : k + step]
        t = time.perf_counter()
        batch = pipeline.candidates(texts)
        times["candidates"] += time.perf_counter() - t
        for stage in ("first_pass", "prerank", "rescore"):
            t = time.perf_counter()
            batch = getattr(pipeline, stage)(batch)
            times[stage] += time.perf_counter() - t
        t = time.perf_counter()
        for piece in batch.pieces:
            pipeline.rank(piece.candidates)
        times["rank"] += time.perf_counter() - t
        rescored += sum(len(p.candidates) for p in batch.pieces)
        if sample is None and any(p.candidates for p in batch.pieces):
            sample = texts
    result = {
        "documents": len(docs),
        "sentences": len(pieces),
        "seconds": total,
        "sentences_per_s": len(pieces) / total,
        "lm_forward_calls": n_passes,
        "lm_forward_calls_per_sentence": n_passes / max(len(pieces), 1),
        "rescored_candidates_per_sentence": rescored / max(len(pieces), 1),
        "stage_seconds": times,
        "arithmetic": work,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if sample:
        result["cached_vs_naive"] = cached_vs_naive(pipeline, sample, naive_n)
    return result


def arithmetic(lm, fed: int, projected: int, seconds: float, sentences: int) -> dict:
    """What the LM's linear layers were asked to compute in `seconds` (`LanguageModel.linear_flops`), against this
    machine's own rate for a matrix product of the model's shape and dtype: `linear_seconds_at_gemm_rate` is the
    least time that arithmetic takes here, so `bound_sentences_per_s` is what no change to the code around the
    model can beat without asking for less of it (fewer tokens, fewer candidates, cheaper numbers)."""
    per_token, per_projection = lm.linear_flops()
    flops = fed * per_token + projected * per_projection
    rate = gemm_rate(lm)
    floor = flops / rate
    return {
        "tokens_fed": fed,
        "positions_projected": projected,
        "tokens_fed_per_sentence": fed / max(sentences, 1),
        "linear_gflop_per_sentence": flops / 1e9 / max(sentences, 1),
        "gemm_gflops": rate / 1e9,
        "linear_seconds_at_gemm_rate": floor,
        "linear_share_of_wall": floor / seconds if seconds else None,
        "bound_sentences_per_s": sentences / floor if floor else None,
    }


def gemm_rate(lm, rows: int = 512, repeats: int = 20) -> float:
    """FLOP/s of one linear layer's product on this device, `rows` tokens through the model's largest
    non-vocabulary weight in the model's precision (int8 layers: their own `forward`, the activations' rounding
    included; the best of `repeats` timed calls, after warm-up)."""
    from normalizer.stages.int8 import Int8Linear

    head = lm.model.get_output_embeddings()
    layer = max(
        (m for m in lm.model.modules() if isinstance(m, (torch.nn.Linear, Int8Linear)) and m is not head),
        key=lambda m: m.in_features * m.out_features,
    )
    device = next(lm.model.parameters()).device
    x = torch.randn(rows, layer.in_features, dtype=lm.dtype, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    best = float("inf")
    with torch.inference_mode():
        for k in range(repeats + 3):
            sync()
            t = time.perf_counter()
            layer(x)
            sync()
            if k >= 3:
                best = min(best, time.perf_counter() - t)
    return 2 * rows * layer.in_features * layer.out_features / best


def cached_vs_naive(pipeline: Pipeline, pieces: list[str], limit: int) -> dict:
    """Time the cached continuations of the pieces' candidates against a full pass per candidate sentence."""
    lm = pipeline.lm
    batch = pipeline.first_pass(pipeline.candidates(pieces))
    items = []
    for piece in batch.pieces:
        for s in piece.candidates:
            items.append(
                (piece.row, piece.starts[s.candidate.first], s.ids + piece.seq[piece.starts[s.candidate.last] :])
            )
    items = items[:limit]
    seqs = {p.row: p.seq for p in batch.pieces if p.row >= 0}
    t = time.perf_counter()
    cached = lm.continuations(batch.state, items)
    t_cached = time.perf_counter() - t
    t = time.perf_counter()
    full = lm.sequence_logprob([seqs[r][:p] + ids for r, p, ids in items])
    prefix = lm.sequence_logprob([seqs[r][:p] for r, p, _ in items])
    t_naive = time.perf_counter() - t
    diff = max(abs(c - (f - p)) for c, f, p in zip(cached, full, prefix))
    return {
        "candidates": len(items),
        "cached_seconds": t_cached,
        "naive_seconds": t_naive,
        "naive_over_cached": t_naive / t_cached,
        "max_abs_logprob_difference": diff,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", required=True, help="pipeline checkpoint folder")
    parser.add_argument("--lm", default="smollm2")
    parser.add_argument("--testset", type=Path, required=True)
    parser.add_argument("--n", type=int, default=20, help="documents from the test set")
    parser.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="restore this many other documents of the set (those after the first --n) before timing: the one-time "
        "costs of a fresh process (inflection tables, memos) then fall outside the measured call",
    )
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: auto); CUDA runs in bf16")
    parser.add_argument(
        "--dtype",
        default="auto",
        help="the LM's precision: auto (bf16 on CUDA and on CPUs with native bf16, else float32), float32, bfloat16, "
        "int8 (CPU: its linear layers' products in int8)",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="sentences per LM pass (default: checkpoint)")
    parser.add_argument(
        "--continuation-batch", type=int, default=None, help="candidates rescored per forward call (default: 64)"
    )
    parser.add_argument("--dictionary", action="append", default=[], help="a spinner dictionary file (repeatable)")
    parser.add_argument(
        "--dictionary-k", type=int, default=None, help="dictionary candidates rescored per span (default: checkpoint)"
    )
    parser.add_argument(
        "--dictionary-passes", type=int, default=None, help="passes given a dictionary (default: checkpoint)"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t = time.perf_counter()
    pipeline = Pipeline.from_pretrained(
        args.pipeline,
        lm=args.lm,
        device=args.device,
        lm_dtype=args.dtype,
        batch_size=args.batch_size,
        dictionaries=args.dictionary,
        dictionary_k=args.dictionary_k,
        dictionary_passes=args.dictionary_passes,
    )
    if args.continuation_batch:
        pipeline.lm.continuation_batch = args.continuation_batch
    load = time.perf_counter() - t
    rows = load_testset(args.testset)
    docs = [r["spun"] for r in rows[: args.n]]
    warm = [r["spun"] for r in rows[args.n : args.n + args.warmup]]
    t = time.perf_counter()
    if warm:
        pipeline.restore_batch(warm)
    warmup = time.perf_counter() - t
    result = {
        "machine": machine(),
        "device": str(pipeline.lm.device),
        "load_seconds": load,
        "warmup_documents": len(warm),
        "warmup_seconds": warmup,
        "lm_dtype": pipeline.lm.precision,
        "batch_size": pipeline.config.batch_size,
        "continuation_batch": pipeline.lm.continuation_batch,
        "dictionaries": args.dictionary,
        "dictionary_k": pipeline.config.dictionary_k,
        "passes": pipeline.passes,
        **bench(pipeline, docs),
    }
    result["command"] = "python -m evaluation.bench_pipeline " + " ".join(sys.argv[1:] if argv is None else argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
