"""Fine-tune SmolLM2-135M on (spun, original) pairs as an edit writer: LoRA (peft) or full, float32 or bfloat16
autocast; resumable, with a dev learning curve.

Each pair is one sequence `{bos}{spun}\\nEdits:{ target}{eos}` (`training.lm_edits`: loss on the target only, the
same edit lists the seq2seq models write). Batches are bucketed by length (sorted within a pool of 32 batches)
so padding costs little.

    python -m training.lm_lora measure --pairs data/pairs --steps 6        # pairs/s of each variant, side by side
    python -m training.lm_lora train --pairs data/pairs --out runs/lora --minutes 60 --eval-every 20
    python -m training.lm_lora train ... --out runs/lora                   # again: resumes from its checkpoint
    python -m training.lm_lora tune --adapter runs/lora/adapter --pairs data/pairs --n 200   # its min_confidence

`train` writes into `--out`: `adapter/` (the LoRA adapter, safetensors, with the base's SHA-256: load it with
`normalizer.adapter.load_adapter`), `state.pt` (optimizer, step, data position; tensors only), `train_log.jsonl` and
`curve.jsonl` (dev F0.5, ERR, precision, recall after each evaluation, with CPU minutes so far). Needs `peft`.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from pathlib import Path

import torch

from training.lm_edits import dev_sample, encode, pad_batch, restore

logger = logging.getLogger(__name__)
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def with_lora(model, r: int = 16, alpha: int = 32, dropout: float = 0.05, top_layers: int | None = None):
    """`model` with LoRA on every projection; `top_layers`: only in the last N layers, so the backward pass stops
    there (the frozen layers below need no gradients)."""
    from peft import LoraConfig, get_peft_model

    n_layers = model.config.num_hidden_layers
    layers = list(range(n_layers - top_layers, n_layers)) if top_layers else None
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(TARGET_MODULES),
                        layers_to_transform=layers, task_type="CAUSAL_LM")  # fmt: skip
    return get_peft_model(model, config)


def train_step(model, optimizer, batch: dict, bf16: bool, lr: float | None = None) -> float:
    """One optimizer step on `batch`; the loss before it. `bf16`: bfloat16 autocast (weights stay float32)."""
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr
    device_type = next(model.parameters()).device.type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
        loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def bucketed(lengths: list[int], batch_size: int, seed: int, pool: int = 32) -> list[list[int]]:
    """Batches of indices: shuffled, then sorted by length within pools of `pool` batches, batches shuffled."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    for a in range(0, len(order), pool * batch_size):
        chunk = sorted(order[a : a + pool * batch_size], key=lambda i: lengths[i])
        batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def load_base(lm: str, lora: bool, r: int = 16, top_layers: int | None = None):
    from normalizer.lm import LanguageModel

    base = LanguageModel.from_pretrained(lm, device="cpu", dtype="float32")
    model, tokenizer = base.model, base.tokenizer
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.use_cache = False
    return (with_lora(model, r=r, top_layers=top_layers) if lora else model).train(), tokenizer


def training_rows(pairs: str, seed: int, tokenizer, limit: int | None = None):
    from training.pairs import load_pairs
    from training.train import keep_with_clean_cap

    rows = load_pairs(pairs, "train")
    keep = keep_with_clean_cap([not t for t in rows["target"]], 0.15, seed)
    if limit:
        keep = random.Random(seed).sample(keep, min(limit, len(keep)))
    data = rows.select(sorted(keep)).to_dict()
    return [encode(tokenizer, s, t) for s, t in zip(data["spun"], data["target"])]


def measure(args) -> dict:
    """Pairs/s of full and LoRA fine-tuning, float32 and bfloat16 autocast, on the same batches."""
    torch.set_num_threads(args.threads)
    results = []
    variants = [(False, False, None), (True, False, None), (True, False, 8), (True, True, None), (False, True, None)]
    for lora, bf16, top in variants[: args.variants]:
        torch.manual_seed(0)
        model, tokenizer = load_base(args.lm, lora, top_layers=top)
        encoded = training_rows(args.pairs, 0, tokenizer, limit=(args.steps + 1) * args.batch_size * 4)
        batches = bucketed([len(e[0]) for e in encoded], args.batch_size, 0)[: args.steps + 1]
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        train_step(model, optimizer, pad_batch([encoded[i] for i in batches[0]], tokenizer.pad_token_id), bf16)
        start, pairs, losses = time.perf_counter(), 0, []
        for b in batches[1:]:
            losses.append(
                train_step(model, optimizer, pad_batch([encoded[i] for i in b], tokenizer.pad_token_id), bf16)
            )
            pairs += len(b)
        seconds = time.perf_counter() - start
        row = {
            "variant": f"{'LoRA r16' if lora else 'full'}{f' (top {top} layers)' if top else ''}, "
            f"{'bf16 autocast' if bf16 else 'float32'}",
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "pairs_per_second": round(pairs / seconds, 3),
            "steps": len(batches) - 1,
            "batch_size": args.batch_size,
            "mean_loss": round(sum(losses) / len(losses), 3),
        }
        logger.info("%s", row)
        results.append(row)
    return {"threads": args.threads, "variants": results}


def evaluate_dev(model, tokenizer, dev: dict) -> dict:
    from normalizer.metrics import evaluate

    start = time.perf_counter()
    outputs = restore(model, tokenizer, dev["spun"])
    metrics = evaluate(dev["spun"], outputs, dev["original"], sacrebleu_scores=False)
    keys = ("err", "precision", "recall", "f0.5", "over_correction")
    return {**{k: metrics[k] for k in keys if k in metrics}, "eval_seconds": round(time.perf_counter() - start, 1)}


def train(args) -> None:
    from normalizer.adapter import load_adapter, save_adapter

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state_file, adapter_dir = out / "state.pt", out / "adapter"
    if state_file.exists() and adapter_dir.exists():
        model, tokenizer = load_adapter(adapter_dir, args.lm, trainable=True)
        model.config.use_cache = False
        model.train()
        state = torch.load(state_file, weights_only=True)
        logger.info("resuming at step %d (%d pairs, %.1f min)", state["step"], state["pairs"], state["minutes"])
    else:
        model, tokenizer = load_base(args.lm, lora=True, r=args.rank, top_layers=args.top_layers)
        state = {"step": 0, "pairs": 0, "minutes": 0.0, "epoch": 0}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
    if "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
    encoded = training_rows(args.pairs, args.seed, tokenizer)
    lengths = [len(e[0]) for e in encoded]
    dev = dev_sample(args.pairs, args.eval_size, args.seed)
    log, curve = open(out / "train_log.jsonl", "a"), open(out / "curve.jsonl", "a")

    def save() -> None:
        save_adapter(model, adapter_dir, args.lm)
        torch.save({**state, "optimizer": optimizer.state_dict()}, state_file)

    def evaluation() -> None:
        row = {"step": state["step"], "pairs": state["pairs"], "cpu_minutes": round(state["minutes"], 2)}
        row.update(evaluate_dev(model, tokenizer, dev))
        curve.write(json.dumps(row) + "\n")
        curve.flush()
        logger.info("dev: %s", row)
        model.train()

    if state["step"] == 0:
        evaluation()
    start, minutes_before, next_eval = time.perf_counter(), state["minutes"], state["minutes"] + args.eval_every
    loss_sum, n = 0.0, 0

    def done() -> bool:
        return state["minutes"] >= args.minutes or state["step"] >= args.max_steps

    while not done():
        batches = bucketed(lengths, args.batch_size, args.seed + state["epoch"])
        done_in_epoch = state.get("batch", 0)
        for b in batches[done_in_epoch:]:
            lr = args.lr * min(1.0, (state["step"] + 1) / args.warmup_steps)
            if args.decay:  # linear to zero at --minutes, counted from the first run's start
                lr *= max(0.0, 1.0 - state["minutes"] / args.minutes)
            loss_sum += train_step(model, optimizer, pad_batch([encoded[i] for i in b], tokenizer.pad_token_id),
                                   args.bf16, lr)  # fmt: skip
            n += 1
            state["step"] += 1
            state["pairs"] += len(b)
            state["batch"] = state.get("batch", 0) + 1
            state["minutes"] = minutes_before + (time.perf_counter() - start) / 60
            if state["step"] % args.log_every == 0:
                row = {"step": state["step"], "pairs": state["pairs"], "loss": round(loss_sum / n, 4), "lr": lr}
                log.write(json.dumps({**row, "cpu_minutes": round(state["minutes"], 2)}) + "\n")
                log.flush()
                loss_sum, n = 0.0, 0
            if state["minutes"] >= next_eval or state["minutes"] >= args.minutes:
                save()
                evaluation()
                next_eval += args.eval_every
                # evaluation time is not training time
                start, minutes_before = time.perf_counter(), state["minutes"]
            if done():
                break
        else:
            state["epoch"] += 1
            state["batch"] = 0
    save()


def tune(args) -> dict:
    """The writer's `min_confidence` on dev pairs: restore `n` of them once with every edit kept, score each
    threshold, store the best F0.5 (precision counts twice) in the adapter's `writer_config.json`, the table in
    `writer_tuning.json`. Only dev data: test sets stay unseen."""
    from normalizer.metrics import THRESHOLDS, apply_edits, evaluate
    from normalizer.writer import WRITER_CONFIG, EditWriter
    from training.pairs import load_pairs

    torch.set_num_threads(args.threads)
    adapter = Path(args.adapter)
    dev = load_pairs(args.pairs, "dev").shuffle(seed=args.seed).select(range(args.n))
    spun, original = list(dev["spun"]), list(dev["original"])
    writer = EditWriter.from_pretrained(adapter, args.lm, min_confidence=0.0)
    start = time.perf_counter()
    restorations = writer.restore_batch(spun, batch_size=args.batch_size, progress=True)
    seconds = time.perf_counter() - start
    table, keys = [], ("f0.5", "err", "precision", "recall", "over_correction")
    for t in THRESHOLDS:
        outputs = [apply_edits(s, r, t) for s, r in zip(spun, restorations)]
        m = evaluate(spun, outputs, original, sacrebleu_scores=False)
        table.append({"min_confidence": t, **{k: m[k] for k in keys}})
    best = max(table, key=lambda row: (row["f0.5"], row["err"]))
    (adapter / WRITER_CONFIG).write_text(json.dumps({"min_confidence": best["min_confidence"]}) + "\n")
    result = {"dev_pairs": args.n, "seed": args.seed, "sentences_per_second": round(args.n / seconds, 2),
              "chosen": best, "table": table}  # fmt: skip
    (adapter.parent / "writer_tuning.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tune")
    t.add_argument("--adapter", required=True, help="adapter folder (from train)")
    t.add_argument("--pairs", required=True)
    t.add_argument("--lm", default="smollm2")
    t.add_argument("--n", type=int, default=200)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--threads", type=int, default=2)
    for name in ("measure", "train"):
        p = sub.add_parser(name)
        p.add_argument("--pairs", required=True)
        p.add_argument("--lm", default="smollm2", help="smollm2, a .gguf file or a causal LM directory")
        p.add_argument("--batch-size", type=int, default=8)
        p.add_argument("--threads", type=int, default=2)
        if name == "measure":
            p.add_argument("--steps", type=int, default=6)
            p.add_argument("--variants", type=int, default=5, help="the first N of: full, LoRA, LoRA top 8 layers "
                           "(float32); LoRA, full (bf16 autocast)")  # fmt: skip
            p.add_argument("--out", type=Path)
        else:
            p.add_argument("--out", required=True)
            p.add_argument("--minutes", type=float, default=60.0, help="training CPU minutes (evaluation excluded)")
            p.add_argument("--max-steps", type=int, default=10**9)
            p.add_argument("--eval-every", type=float, default=20.0, help="minutes between dev evaluations")
            p.add_argument("--eval-size", type=int, default=100)
            p.add_argument("--rank", type=int, default=16)
            p.add_argument("--top-layers", type=int, help="LoRA only in the last N layers (faster backward)")
            p.add_argument("--lr", type=float, default=3e-4)
            p.add_argument("--warmup-steps", type=int, default=20)
            p.add_argument("--decay", action="store_true", help="learning rate falls linearly to zero at --minutes")
            p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (fast only on AMX/AVX512-BF16/GPU)")
            p.add_argument("--log-every", type=int, default=10)
            p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.command == "tune":
        print(json.dumps(tune(args)["chosen"]))
    elif args.command == "measure":
        result = measure(args)
        print(json.dumps(result, indent=1))
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=1) + "\n")
    else:
        train(args)


if __name__ == "__main__":
    main()
