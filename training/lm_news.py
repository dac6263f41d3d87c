"""Adapt the scoring language model to news: continued training of its top layers on the training split's sentences.

    python -m training.lm_news --out runs/lm-news --minutes 30 --layers 8

The pipeline scores each sentence as `<|endoftext|>` + the sentence (`normalizer.stages.lm`), so the model is
trained on exactly that: clean sentences of the training documents (`training.corpus.load_splits`; the dev and test
documents, which every test set and the ranker's dev pairs come from, are never read). Only the top `--layers`
transformer blocks and the final norm learn (the tied embeddings stay as they are). Mean negative log-likelihood
per token on `--eval-n` dev sentences is logged before, every `--eval-every` steps and at the end; the model is
written with `save_pretrained` (safetensors) with its tokenizer, a local checkpoint `--lm DIR` takes, each time
it is evaluated and at the end. `train_log.jsonl` in `--out` has one line per evaluation.

    python -m training.lm_news --export runs/lm-news --out models/default/lm_delta.safetensors

writes the tensors it changed (float16) as a pipeline checkpoint's `lm_delta.safetensors`, which the pipeline lays
over SmolLM2 when it loads (`LanguageModel.apply_delta`).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from pathlib import Path

import torch

from normalizer.stages.lm import SMOLLM2, LanguageModel, load_causal_lm

logger = logging.getLogger(__name__)


def corpus_sentences(splits: dict, split: str, seed: int) -> list[str]:
    """Every sentence of the split's documents (`splits`: `training.corpus.load_splits`), shuffled."""
    from training.corpus import paragraphs, sentences

    docs = splits[split]
    out = [s for d in docs for p in paragraphs(d.text) for s in sentences(p)]
    random.Random(seed).shuffle(out)
    return out


def batches(tokenizer, texts: list[str], start_id: int, max_tokens: int, size: int):
    """(input_ids, attention_mask, labels) tensors of `size` texts each, `start_id` first, padding masked."""
    for k in range(0, len(texts), size):
        seqs = [[start_id, *tokenizer(t, add_special_tokens=False).input_ids][:max_tokens] for t in texts[k : k + size]]
        n = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), n), start_id)
        mask = torch.zeros((len(seqs), n), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        labels = ids.masked_fill(mask == 0, -100)
        yield ids, mask, labels


@torch.no_grad()
def mean_nll(model, tokenizer, texts: list[str], start_id: int, max_tokens: int) -> float:
    """Mean negative log-likelihood per predicted token of `texts`."""
    model.eval()
    total = count = 0.0
    for ids, mask, labels in batches(tokenizer, texts, start_id, max_tokens, 16):
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
        target = labels[:, 1:]
        flat = logits.reshape(-1, logits.shape[-1])
        loss = torch.nn.functional.cross_entropy(flat, target.reshape(-1), reduction="sum")
        total += float(loss)
        count += float((target != -100).sum())
    model.train()
    return total / max(count, 1.0)


def export_delta(adapted: str | Path, out: str | Path, base: str | Path = SMOLLM2) -> int:
    """Write the tensors in which `adapted` differs from `base` to `out` (safetensors, float16): what a pipeline
    checkpoint holds as `lm_delta.safetensors`. Returns the number of tensors written."""
    from safetensors.torch import save_file

    tuned, _ = load_causal_lm(adapted, torch.device("cpu"), "float32")
    plain, _ = load_causal_lm(base, torch.device("cpu"), "float32")
    own = plain.state_dict()
    changed = {name: t for name, t in tuned.state_dict().items() if not torch.equal(t, own[name])}
    delta = {name: t.to(torch.float16).contiguous() for name, t in changed.items()}
    save_file(delta, str(out), metadata={"base": str(base), "from": str(adapted)})
    return len(delta)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm", default=SMOLLM2)
    parser.add_argument("--out", type=Path, required=True, help="model folder (or with --export: the delta file)")
    parser.add_argument("--export", type=Path, help="write the tensors this adapted folder changed to --out")
    parser.add_argument("--corpus", nargs="+", help="clean corpora (default: the shared news corpora)")
    parser.add_argument("--minutes", type=float, default=30.0, help="training time budget")
    parser.add_argument("--layers", type=int, default=8, help="top transformer blocks that learn")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--eval-n", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.export:
        n = export_delta(args.export, args.out, args.lm)
        print(f"wrote {args.out}: {n} tensors, {args.out.stat().st_size / 1e6:.1f} MB")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model, tokenizer = load_causal_lm(args.lm, torch.device("cpu"), "float32")
    start_id = LanguageModel(model, tokenizer).start_id  # the token the pipeline starts each sentence with
    blocks = model.model.layers
    for p in model.parameters():
        p.requires_grad_(False)
    learnt = [*blocks[len(blocks) - args.layers :].parameters(), *model.model.norm.parameters()]
    for p in learnt:
        p.requires_grad_(True)
    total = sum(p.numel() for p in model.parameters())
    logger.info("learning %d of %d parameters", sum(p.numel() for p in learnt), total)
    from training.corpus import load_splits

    splits = load_splits(args.corpus)
    train, dev = corpus_sentences(splits, "train", args.seed), corpus_sentences(splits, "dev", args.seed)[: args.eval_n]
    logger.info("%d training sentences, %d dev sentences", len(train), len(dev))
    optimizer = torch.optim.AdamW(learnt, lr=args.lr, weight_decay=0.0)
    args.out.mkdir(parents=True, exist_ok=True)
    log = (args.out / "train_log.jsonl").open("a")

    def evaluate(step: int, seen: int, seconds: float) -> None:
        row = {"step": step, "sentences": seen, "train_seconds": round(seconds, 1)}
        row["dev_nll"] = round(mean_nll(model, tokenizer, dev, start_id, args.max_tokens), 4)
        log.write(json.dumps(row) + "\n")
        log.flush()
        logger.info("%s", row)
        model.save_pretrained(args.out, safe_serialization=True)
        tokenizer.save_pretrained(args.out)

    model.train()
    evaluate(0, 0, 0.0)
    budget, spent, step, seen = args.minutes * 60, 0.0, 0, 0
    for ids, mask, labels in batches(tokenizer, train, start_id, args.max_tokens, args.batch_size):
        t0 = time.time()
        lr = args.lr * min(1.0, (step + 1) / 20)  # warm-up over 20 steps
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(learnt, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step, seen = step + 1, seen + len(ids)
        spent += time.time() - t0
        if step % args.eval_every == 0:
            evaluate(step, seen, spent)
        if spent >= budget:
            break
    if step % args.eval_every:
        evaluate(step, seen, spent)


if __name__ == "__main__":
    main()
