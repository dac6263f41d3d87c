"""Speed benchmark: throughput of `normalize_batch`, single-call latency, peak memory, cold start; CPU, and GPU
when present. Every speed figure is also given as a ratio to plain `transformers` `generate` on the same model and
the same sentences, measured in the same run.

    python -m evaluation.bench --model models/default --testset data/testsets/clean.jsonl --out reports/bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import torch

from evaluation.testsets import load_testset
from normalizer.engines.seq2seq import Seq2SeqRestorer
from normalizer.segment import segment


def machine() -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    return info


def plain_generate(normalizer: Seq2SeqRestorer, sentences: list[str], batch_size: int) -> float:
    """Seconds for tokenize + `model.generate` + decode in length-sorted batches: the floor any wrapper pays."""
    tok, model, device = normalizer.tokenizer, normalizer.model, normalizer.device
    encoded = sorted(tok.encode_batch(sentences), key=len)
    start = time.perf_counter()
    with torch.inference_mode():
        for k in range(0, len(encoded), batch_size):
            batch = encoded[k : k + batch_size]
            width = max(map(len, batch))
            ids = torch.tensor([b + [tok.pad_token_id] * (width - len(b)) for b in batch], device=device)
            out = model.generate(
                input_ids=ids,
                attention_mask=(ids != tok.pad_token_id).long(),
                max_new_tokens=normalizer.config.max_new_tokens,
                num_beams=1,
                do_sample=False,
            )
            [tok.decode(o) for o in out.tolist()]
    _sync(device)
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(model: str, texts: list[str], device: str, batch_sizes: list[int], latency_n: int) -> dict:
    t0 = time.perf_counter()
    normalizer = Seq2SeqRestorer.from_pretrained(model, device=device)
    normalizer.normalize(texts[0])
    cold = time.perf_counter() - t0
    dev = normalizer.device
    sentences = [t[a:b] for t in texts for a, b in segment(t, normalizer.config.max_words)]
    n_tokens = sum(len(ids) for ids in normalizer.tokenizer.encode_batch(sentences))
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    result = {
        "device": str(dev),
        "machine": machine(),
        "cold_start_s": cold,
        "sentences": len(sentences),
        "input_tokens": n_tokens,
        "throughput": [],
    }
    for bs in batch_sizes:
        start = time.perf_counter()
        normalizer.normalize_batch(sentences, batch_size=bs)
        _sync(dev)
        ours = time.perf_counter() - start
        plain = plain_generate(normalizer, sentences, bs)
        result["throughput"].append(
            {
                "batch_size": bs,
                "sentences_per_s": len(sentences) / ours,
                "tokens_per_s": n_tokens / ours,
                "plain_generate_sentences_per_s": len(sentences) / plain,
                "ratio_to_plain_generate": plain / ours,
            }
        )
    lat = []
    for s in sentences[:latency_n]:
        start = time.perf_counter()
        normalizer.normalize(s)
        _sync(dev)
        lat.append(time.perf_counter() - start)
    q = statistics.quantiles(lat, n=20) if len(lat) >= 2 else lat * 19
    result["latency_single_sentence_s"] = {"p50": statistics.median(lat), "p95": q[18], "n": len(lat)}
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if dev.type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--testset", type=Path, required=True, help="JSONL with a `spun` field")
    parser.add_argument("--n", type=int, default=100, help="documents from the test set")
    parser.add_argument("--devices", nargs="*", default=None, help="default: cpu, and cuda when present")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[1, 8, 32, 64])
    parser.add_argument("--latency-n", type=int, default=50)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    texts = [r["spun"] for r in load_testset(args.testset)[: args.n]]
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    results = {
        "model": args.model,
        "testset": str(args.testset),
        "documents": len(texts),
        "runs": [bench(args.model, texts, d, args.batch_sizes, args.latency_n) for d in devices],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for run in results["runs"]:
        print(
            f"{run['device']}: cold start {run['cold_start_s']:.1f} s, "
            f"p50 {run['latency_single_sentence_s']['p50'] * 1000:.0f} ms"
        )
        for t in run["throughput"]:
            print(
                f"  batch {t['batch_size']:>3}: {t['sentences_per_s']:.1f} sent/s, {t['tokens_per_s']:.0f} tok/s, "
                f"x{t['ratio_to_plain_generate']:.2f} of plain generate"
            )


if __name__ == "__main__":
    main()
