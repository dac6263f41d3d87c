"""How far the language model's own top words at a position raise the candidate ceiling, and what each filter costs.

    python -m evaluation.lm_candidates --pipeline models/default --testsets data/testsets/dictionary-*.jsonl \
        --limit 60 --out evaluation/results/lm-candidates.json
    python -m evaluation.lm_candidates --candidates runs/cand-no-mythes/candidates.npz ...   # a lexicon we lack

For every one-word swap of a test set (gold, from the word alignment) it reports whether the original is a candidate
of the table (the ceiling today), among the LM's top-k first sub-tokens at the position (left context only, the
first pass's distribution), and whether it passes each filter; for every other word position, how many top-k words
pass each filter (the candidates a filter adds where there is nothing to restore: the cost, and the precision risk).
Filters: `any` (every whole-word top-k token), `related` (the table links the two words in either direction, or both
stand in one synonym list: two hops), `embedding` (cosine of the LM's input embeddings of the two first sub-tokens
at least `--cosine`), `related+embedding` (either).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from evaluation.testsets import load_testset
from normalizer.edits import tokenize
from normalizer.engines.pipeline import Pipeline, _chunks
from normalizer.stages.ranker import gold_edits

FILTERS = ("any", "related", "embedding", "related+embedding")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="models/default")
    parser.add_argument("--testsets", nargs="+", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument(
        "--candidates", type=Path, default=None, help="a candidate table to use instead (a held-out lexicon)"
    )
    parser.add_argument("--k", type=int, nargs="+", default=[20, 50, 200])
    parser.add_argument("--cosine", type=float, default=0.3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    pipe = Pipeline.from_pretrained(args.pipeline)
    if args.candidates:
        from normalizer.stages.candidates import CandidateTable

        pipe.table = CandidateTable.load(args.candidates)
    lm, table = pipe.lm, pipe.table
    tok = lm.tokenizer
    vocab = tok.convert_ids_to_tokens(list(range(len(tok))))
    # whole words: a token with a leading space whose text is a lower-case alphabetic word the table knows
    word_of = {}
    for i, t in enumerate(vocab):
        if t.startswith("Ġ") and t[1:].isalpha() and t[1:].islower() and table.zipf(t[1:]) >= 2.5:
            word_of[i] = t[1:]
    emb = lm.model.get_input_embeddings().weight.detach().float()
    emb = emb / emb.norm(dim=-1, keepdim=True)
    kmax = max(args.k)
    report = {}
    for path in args.testsets:
        rows = load_testset(path)[: args.limit]
        stats = {"swaps": 0, "table": 0, **{f"top{k}": 0 for k in args.k}}
        stats.update({f"top{k}+{f}": 0 for k in args.k for f in FILTERS})
        stats.update({f"union{k}+{f}": 0 for k in args.k for f in FILTERS})
        added = {f"top{k}+{f}": 0 for k in args.k for f in FILTERS}
        positions = 0
        for row in rows:
            spun, original = row["spun"], row["original"]
            tokens = tokenize(spun)
            gold = {
                i: after[0].lower()
                for (i, j), after in gold_edits(spun, original).items()
                if j == i + 1 and len(after) == 1
            }
            seq, starts = [lm.start_id], []
            for chunk in _chunks(spun, tokens):
                starts.append(len(seq))
                seq += lm.chunk_ids(chunk)
            with torch.inference_mode():
                logits = lm.model(input_ids=torch.tensor([seq])).logits[0].float()
            top = torch.topk(logits, kmax, dim=-1).indices  # (T, kmax)
            cands = {}
            for c in table.propose(spun, tokens):
                if c.last == c.first + 1:
                    cands.setdefault(c.first, set()).add(c.after.lower())
            for i, t in enumerate(tokens):
                w = t.text
                if not w.isalpha() or (w[0].isupper() and i > 0):
                    continue
                s = w.lower()
                ids = top[starts[i] - 1].tolist()
                spun_first = lm.chunk_ids(" " + s)[0]
                passing = {f: [] for f in FILTERS}
                for rank, j in enumerate(ids):
                    h = word_of.get(j)
                    if h is None or h == s:
                        continue
                    rel = table.related(s, h)
                    close = float(emb[j] @ emb[spun_first]) >= args.cosine
                    either = rel or close
                    verdicts = (("any", True), ("related", rel), ("embedding", close), ("related+embedding", either))
                    for f, ok in verdicts:
                        if ok:
                            passing[f].append((rank, h))
                if i in gold:
                    o = gold[i]
                    stats["swaps"] += 1
                    in_table = o in cands.get(i, set())
                    stats["table"] += in_table
                    first = lm.chunk_ids(" " + o)[0]
                    for k in args.k:
                        stats[f"top{k}"] += first in ids[:k]
                        for f in FILTERS:
                            hit = any(h == o for r, h in passing[f] if r < k)
                            stats[f"top{k}+{f}"] += hit
                            stats[f"union{k}+{f}"] += hit or in_table
                else:
                    positions += 1
                    for k in args.k:
                        for f in FILTERS:
                            known = cands.get(i, set())
                            added[f"top{k}+{f}"] += sum(1 for r, h in passing[f] if r < k and h not in known)
        n = max(stats["swaps"], 1)
        report[path.stem] = {
            "rows": len(rows),
            "one_word_swaps": stats["swaps"],
            "share": {k: round(v / n, 3) for k, v in stats.items() if k != "swaps"},
            "added_per_unswapped_word": {k: round(v / max(positions, 1), 2) for k, v in added.items()},
        }
        print(path.stem, json.dumps(report[path.stem], indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        command = " ".join(["python -m evaluation.lm_candidates", *(argv if argv is not None else sys.argv[1:])])
        args.out.write_text(json.dumps({"command": command, **report}, indent=1) + "\n")


if __name__ == "__main__":
    main()
