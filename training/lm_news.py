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

    python -m training.lm_news --restore --delta models/default/lm_delta.safetensors --out runs/lm-restore

trains the scorer for the task instead (`--restore`): each training sentence is spun by one of the training spinner
profiles (`--profiles`, in turn, at a rate drawn as `training.pairs` draws it, 0 included: a share stays clean),
read as the pipeline reads it (word chunks, `<|endoftext|>` first), and at the first token of every swapped span the
target is the *original's* first token instead of the spun one (the span's other tokens are not scored; every other
position keeps its own next token). The model so learns, from the left context alone, which words a spinner put
there and what stood there before: exactly what the pre-ranker's `first_gain` and the rescoring's `lm_gain` ask of
it. `--delta` starts from a checkpoint's adapted layers; dev sentences spun the same way are logged as
`restore_nll` (the same loss) and `swap_margin` (mean log-probability of the original's first token less the spun
one's, at the swapped spans), next to the clean `dev_nll`.
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
from training.spin import DICTIONARY_PROFILES, PROFILES, TRAIN_PROFILES

logger = logging.getLogger(__name__)

RESTORE_PROFILES = (*TRAIN_PROFILES, "dict-moby", "dict-wordnet")
"""The spinners `--restore` trains on: the training thesaurus profiles and the training dictionary spinners that use
no MyThes (the held-out dictionary spinner's lexicon)."""


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


def restore_example(lm: LanguageModel, result) -> tuple[list[int], list[int], list[tuple[int, int, int]]]:
    """One spun sentence (`training.spin.SpinResult`) as the pipeline reads it: LM ids (start token first), labels
    (the next token; at a swapped span's first token the original's first token, the span's other tokens -100), and
    (position, original id, spun id) of each swapped span's first token."""
    from normalizer.engines.pipeline import lm_reading

    text = result.spun
    tokens, seq, starts = lm_reading(lm, text)
    labels = list(seq)
    swaps = []
    ends = [0] + [t.end for t in tokens]
    for sw in result.swaps:
        idx = [k for k, t in enumerate(tokens) if t.start >= sw.spun_start and t.end <= sw.spun_end]
        if not idx:
            continue
        first, last = idx[0], idx[-1] + 1
        for pos in range(starts[first], starts[last]):
            labels[pos] = -100
        original = lm.chunk_ids(text[ends[first] : tokens[first].start] + sw.original) if sw.original else []
        if original and starts[first] < starts[last]:
            labels[starts[first]] = original[0]
            swaps.append((starts[first], original[0], seq[starts[first]]))
    labels[0] = -100
    return seq, labels, swaps


def restore_batches(lm: LanguageModel, results: list, max_tokens: int, size: int):
    """(input_ids, attention_mask, labels, swaps) tensors of `size` spun sentences each (see `restore_example`);
    `swaps` rows are (row, position, original id, spun id)."""
    for k in range(0, len(results), size):
        rows = [restore_example(lm, r) for r in results[k : k + size]]
        n = min(max(len(seq) for seq, _, _ in rows), max_tokens)
        ids = torch.full((len(rows), n), lm.start_id)
        mask = torch.zeros((len(rows), n), dtype=torch.long)
        labels = torch.full((len(rows), n), -100)
        swaps = []
        for i, (seq, lab, sw) in enumerate(rows):
            seq, lab = seq[:n], lab[:n]
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
            labels[i, : len(lab)] = torch.tensor(lab)
            swaps += [(i, pos, o, s) for pos, o, s in sw if pos < n]
        yield ids, mask, labels, swaps


def swap_weights(labels: torch.Tensor, swaps: list[tuple[int, int, int, int]], weight: float) -> torch.Tensor:
    """Per-target weights: `weight` at each swapped span's first token (`restore_batches`' swaps), 1 elsewhere."""
    weights = torch.ones(labels.shape, dtype=torch.float32)
    for row, pos, _, _ in swaps:
        weights[row, pos] = weight
    return weights


def weighted_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean cross-entropy of next-token targets (`labels` aligned with the inputs, -100 unscored)."""
    target, w = labels[:, 1:], weights[:, 1:] * (labels[:, 1:] != -100)
    ce = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(), target.reshape(-1), ignore_index=-100, reduction="none"
    )
    return (ce * w.reshape(-1)).sum() / w.sum().clamp(min=1.0)


def spun_sentences(texts: list[str], profiles: tuple[str, ...], seed: int) -> list:
    """Each text spun by `profiles` in turn, at a rate drawn as `training.pairs` draws it (0 leaves it clean)."""
    from dataclasses import asdict

    from training.pairs import PairsConfig, spin_one

    config = {**asdict(PairsConfig()), "profiles": list(profiles), "seed": seed}
    return [spin_one(text, k, config)[0] for k, text in enumerate(texts)]


@torch.no_grad()
def restore_scores(model, lm: LanguageModel, results: list, max_tokens: int) -> tuple[float, float]:
    """(mean restore loss per labelled token, mean log-probability margin of the original's first token over the
    spun one's at swapped spans) on spun sentences."""
    model.eval()
    total = count = margin = swaps_seen = 0.0
    for ids, mask, labels, swaps in restore_batches(lm, results, max_tokens, 16):
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
        target = labels[:, 1:]
        picked = logp[:, :-1].gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        total -= float(picked[target != -100].sum())
        count += float((target != -100).sum())
        for row, pos, orig, spun in swaps:
            margin += float(logp[row, pos - 1, orig] - logp[row, pos - 1, spun])
            swaps_seen += 1
    model.train()
    return total / max(count, 1.0), margin / max(swaps_seen, 1.0)


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
    parser.add_argument("--restore", action="store_true", help="train to restore spun sentences (see above)")
    parser.add_argument(
        "--profiles",
        nargs="+",
        default=list(RESTORE_PROFILES),
        help="spinner profiles for --restore, in turn (default: the training profiles, no MyThes dictionary)",
    )
    parser.add_argument(
        "--swap-weight", type=float, default=1.0, help="--restore: a swapped span's target's weight (1 elsewhere)"
    )
    parser.add_argument("--delta", type=Path, help="lay this lm_delta.safetensors over --lm before training")
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
    lm = LanguageModel(model, tokenizer)
    if args.delta:
        logger.info("%s: %d tensors laid over %s", args.delta, lm.apply_delta(args.delta), args.lm)
    start_id = lm.start_id  # the token the pipeline starts each sentence with
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
    if args.restore:
        unknown = [p for p in args.profiles if p not in PROFILES and p not in DICTIONARY_PROFILES]
        if unknown:
            parser.error(f"unknown profiles {unknown}")
        dev_spun = spun_sentences(dev, tuple(args.profiles), args.seed + 1)
        train_batches = (
            batch
            for k in range(0, len(train), 50 * args.batch_size)
            for batch in restore_batches(
                lm,
                spun_sentences(train[k : k + 50 * args.batch_size], tuple(args.profiles), args.seed * 7919 + k),
                args.max_tokens,
                args.batch_size,
            )
        )
    else:
        train_batches = batches(tokenizer, train, start_id, args.max_tokens, args.batch_size)
    optimizer = torch.optim.AdamW(learnt, lr=args.lr, weight_decay=0.0)
    args.out.mkdir(parents=True, exist_ok=True)
    log = (args.out / "train_log.jsonl").open("a")

    def evaluate(step: int, seen: int, seconds: float) -> None:
        row = {"step": step, "sentences": seen, "train_seconds": round(seconds, 1)}
        row["dev_nll"] = round(mean_nll(model, tokenizer, dev, start_id, args.max_tokens), 4)
        if args.restore:
            loss, margin = restore_scores(model, lm, dev_spun, args.max_tokens)
            row["restore_nll"], row["swap_margin"] = round(loss, 4), round(margin, 4)
        log.write(json.dumps(row) + "\n")
        log.flush()
        logger.info("%s", row)
        model.save_pretrained(args.out, safe_serialization=True)
        tokenizer.save_pretrained(args.out)

    model.train()
    evaluate(0, 0, 0.0)
    budget, spent, step, seen = args.minutes * 60, 0.0, 0, 0
    for batch in train_batches:
        ids, mask, labels = batch[:3]
        weights = swap_weights(labels, batch[3], args.swap_weight) if len(batch) > 3 else None
        t0 = time.time()
        lr = args.lr * min(1.0, (step + 1) / 20)  # warm-up over 20 steps
        for group in optimizer.param_groups:
            group["lr"] = lr
        if weights is None:
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        else:
            loss = weighted_loss(model(input_ids=ids, attention_mask=mask).logits, labels, weights)
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
