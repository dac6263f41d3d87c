"""Rank trained models by held-out loss per target character, so that runs with different vocabularies or layer
splits compare at equal training time.

    python -m evaluation.ablation runs/vocab/s8k-4x2 runs/vocab/s4k-4x2 ... --pairs data/pairs --out DIR

Cross-entropy per token is not comparable across tokenizers (a 16k vocabulary spends fewer, harder tokens on the
same text), so the loss here is the decoder's summed cross-entropy over a dev target divided by its length in
characters (its EOS counted as one). Early in training few models propose any edit at the default confidence, so
restoration metrics alone cannot rank them; this loss can. Also reported, per model: parameters, training steps
and minutes, source and target tokens per sentence, a teacher-forced forward pass's time and greedy decoding's time
with the output length fixed (1 thread): the costs that vocabulary and layer split change at inference. Writes
`ablation.md` and `ablation.json` into `--out`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def dev_loss(model, tokenizer, sources: list[str], targets: list[str], batch_size: int = 32) -> dict:
    """Decoder cross-entropy per target character over (source, target) texts, and the forward pass's cost."""
    from training.train import collate

    src = tokenizer.encode_batch(sources)
    tgt = tokenizer.encode_batch(targets)
    order = sorted(range(len(src)), key=lambda i: len(src[i]))
    nats, seconds = 0.0, 0.0
    model.eval()
    with torch.no_grad():
        for k in range(0, len(order), batch_size):
            batch = collate([(src[i], tgt[i], []) for i in order[k : k + batch_size]], tokenizer.pad_token_id)
            batch.pop("aux_labels")
            start = time.perf_counter()
            logits = model(**batch).logits
            seconds += time.perf_counter() - start
            nats += torch.nn.functional.cross_entropy(
                logits.float().flatten(0, 1), batch["labels"].flatten(), ignore_index=-100, reduction="sum"
            ).item()
    chars = sum(len(t) + 1 for t in targets)
    return {
        "nats_per_char": nats / chars,
        "source_tokens": sum(map(len, src)) / len(src),
        "target_tokens": sum(map(len, tgt)) / len(tgt),
        "forward_ms_per_sentence": 1000 * seconds / len(src),
        "generate_ms_per_sentence": generate_ms(model, tokenizer, [src[i] for i in order], tgt, batch_size),
    }


def generate_ms(model, tokenizer, src: list[list[int]], tgt: list[list[int]], batch_size: int) -> float:
    """Greedy decoding time per sentence with the output length forced to the dev targets' mean, so that a model
    that stops early (untrained) and one that writes long edit lists are timed on the same work."""
    from training.train import collate

    length = max(1, round(sum(map(len, tgt)) / len(tgt)))
    seconds = 0.0
    with torch.no_grad():
        for k in range(0, len(src), batch_size):
            batch = collate([(s, [0], []) for s in src[k : k + batch_size]], tokenizer.pad_token_id)
            start = time.perf_counter()
            model.generate(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                min_new_tokens=length,
                max_new_tokens=length,
                do_sample=False,
                num_beams=1,
            )
            seconds += time.perf_counter() - start
    return 1000 * seconds / len(src)


def describe_run(run: Path) -> dict:
    """Steps, training minutes and last dev evaluation from a run folder (or only its model folder)."""
    model_dir = run / "model" if (run / "model").is_dir() else run
    config = json.loads((model_dir / "training_config.json").read_text())
    row = {"run": run.name, "preset": config["preset"], "model_dir": str(model_dir)}
    state = run / "checkpoint" / "trainer_state.json"
    if state.exists():
        state = json.loads(state.read_text())
        row.update(steps=state["step"], minutes=round(state["train_seconds"] / 60, 1))
    log = run / "train_log.jsonl"
    if log.exists():
        evals = [e["eval"] for e in map(json.loads, log.read_text().splitlines()) if "eval" in e]
        if evals:
            row.update({f"dev_{k}": evals[-1][k] for k in ("err", "precision", "recall", "f0.5")})
    return row


def compare(runs: list[Path], pairs: str, n: int, threads: int = 1) -> list[dict]:
    from transformers import AutoModelForSeq2SeqLM

    from normalizer.tokenizer import load_tokenizer
    from training.pairs import load_pairs

    dev = load_pairs(pairs, "dev").select(range(n)).to_dict()
    torch.set_num_threads(threads)
    rows = []
    for run in runs:
        row = describe_run(run)
        model = AutoModelForSeq2SeqLM.from_pretrained(row["model_dir"], dtype=torch.float32)
        tokenizer = load_tokenizer(row["model_dir"])
        targets = dev["target"]
        row["parameters"] = sum(p.numel() for p in model.parameters())
        row["vocab"] = tokenizer.vocab_size
        row.update(dev_loss(model, tokenizer, dev["spun"], targets))
        rows.append(row)
    return rows


def write_report(rows: list[dict], out: Path, note: str = "") -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["# Ablations at equal training time", ""]
    if note:
        lines += [note, ""]
    lines += [
        "| run | preset | vocab | params | steps | min | dev nats/char | src tok | tgt tok | fwd ms/sent "
        "| gen ms/sent | dev ERR | dev P | dev R |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r["nats_per_char"]):
        lines.append(
            f"| {r['run']} | {r['preset']} | {r['vocab']} | {r['parameters'] / 1e6:.1f}M | {r.get('steps', '')} "
            f"| {r.get('minutes', '')} | {r['nats_per_char']:.4f} | {r['source_tokens']:.1f} "
            f"| {r['target_tokens']:.1f} | {r['forward_ms_per_sentence']:.2f} | {r['generate_ms_per_sentence']:.2f} "
            f"| {r.get('dev_err', float('nan')):.3f} "
            f"| {r.get('dev_precision', float('nan')):.3f} | {r.get('dev_recall', float('nan')):.3f} |"
        )
    (out / "ablation.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of training.train (or model folders)")
    parser.add_argument("--pairs", required=True, help="pairs folder whose dev split is scored")
    parser.add_argument("--n", type=int, default=1000, help="dev pairs scored")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--note", default="", help="a paragraph put under the title")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rows = compare(args.runs, args.pairs, args.n, args.threads)
    write_report(rows, args.out, args.note)
    print((args.out / "ablation.md").read_text())


if __name__ == "__main__":
    main()
