"""Train the pipeline's ranker and channel, and write a pipeline checkpoint.

    python -m training.ranker --pairs data/pairs --candidates runs/cand-all/candidates.npz --out models/default

1. Channel: swap counts from the training split's pairs (`normalizer.ranker.Channel`).
2. Features: the pipeline (candidates + language model, no ranker yet) scores `--n` dev sentences; each rescored
   candidate is labelled by whether it is the original at that span (`normalizer.ranker.gold_edits`). The scored
   features are cached (`--cache`), so refitting costs seconds.
3. Ranker: logistic regression; stored with the lowest threshold whose dev precision reaches `--min-precision`.
The checkpoint folder gets `candidates.npz`, `channel.json.gz`, `ranker.json`, `pipeline_config.json` and
`ranker_training.json` (the command, counts and the dev table per threshold).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import sys
import time
from functools import cache
from pathlib import Path

import numpy as np

from normalizer.checkpoint import CANDIDATES_FILE, PRERANKER_FILE
from normalizer.engines.pipeline import Pipeline, PipelineConfig
from normalizer.stages.candidates import CandidateTable
from normalizer.stages.features import CHEAP_FEATURES, DOCUMENT_FEATURES, FEATURES, SCHEMAS
from normalizer.stages.lm import SMOLLM2, LanguageModel
from normalizer.stages.ranker import Channel, Ranker, gold_edits

logger = logging.getLogger(__name__)

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


def gold_from_target(spun: str, target: str) -> dict[tuple[int, int], tuple[str, ...]]:
    """Gold edits from a pair's edit-sequence target (the spinner's own alignment), as token spans of `spun`."""
    from normalizer.edits import locate_edits, parse_target, tokenize

    toks = tokenize(spun)
    first = {t.start: k for k, t in enumerate(toks)}
    last = {t.end: k for k, t in enumerate(toks)}
    gold = {}
    for loc in locate_edits(spun, parse_target(target)):
        if loc.start in first and loc.end in last:
            gold[(first[loc.start], last[loc.end] + 1)] = tuple(_words(loc.after))
    return gold


def gold_spans(spun: str, original: str, target: str | None) -> dict:
    """Gold edits of a pair, lower-cased: from its edit target when there is one, else from a word alignment."""
    gold = gold_from_target(spun, target) if target is not None else gold_edits(spun, original)
    return {span: tuple(w.lower() for w in after) for span, after in gold.items()}


def label_of(gold: dict, candidate) -> float:
    """1.0 when `candidate` restores the gold original of its span, else 0.0."""
    return float(gold.get((candidate.first, candidate.last)) == tuple(w.lower() for w in _words(candidate.after)))


def labelled_features(
    pipeline: Pipeline,
    spun: list[str],
    original: list[str],
    targets: list[str] | None = None,
    documents: list[str] | None = None,
    features: tuple[str, ...] = FEATURES,
):
    """(X, y, groups): `features` of every rescored candidate, its label, and (sentence, span) ids for decisions.
    Labels come from the pairs' edit targets when given (adjacent swaps kept apart), else from a word alignment;
    `documents[k]` is sentence k's whole document (for `DOCUMENT_FEATURES`)."""
    with pipeline.document_features_on(any(name in DOCUMENT_FEATURES for name in features)):
        scored = pipeline.score(spun, progress=True, documents=documents)
    xs, ys, groups = [], [], []
    for k, (s, o, found) in enumerate(zip(spun, original, scored)):
        gold = gold_spans(s, o, targets[k] if targets else None)
        for sc in found:
            xs.append([sc.features[name] for name in features])
            ys.append(label_of(gold, sc.candidate))
            groups.append((k, sc.candidate.first, sc.candidate.last))
    return np.array(xs, dtype=np.float64).reshape(-1, len(features)), np.array(ys), groups


def labelled_cheap_features(
    pipeline: Pipeline, spun: list[str], original: list[str], targets: list[str] | None = None, batch: int = 16
):
    """(X, y): the one-pass features of every candidate (no pre-ranking) and its label, for the pre-ranker."""
    from tqdm.auto import tqdm

    xs, ys = [], []
    for k in tqdm(range(0, len(spun), batch), desc="pre-ranker features", unit="batch"):
        scored = pipeline.first_pass(pipeline.candidates(spun[k : k + batch]))
        for n, piece in enumerate(scored.pieces, k):
            gold = gold_spans(spun[n], original[n], targets[n] if targets else None)
            for sc in piece.candidates:
                xs.append([sc.features[name] for name in CHEAP_FEATURES])
                ys.append(label_of(gold, sc.candidate))
    return np.array(xs, dtype=np.float64).reshape(-1, len(CHEAP_FEATURES)), np.array(ys)


def cross_fit_channels(train, profiles: set[str]) -> dict[str, Channel]:
    """For each of `profiles`: a channel counting the swaps of the training pairs of every *other* profile, so a
    dev pair's channel features are what a spinner never counted would get from the rest."""
    from collections import Counter

    own = {}
    for name in sorted(set(train["profile"])):
        part = train.filter(lambda p, n=name: p == n, input_columns="profile")
        own[name] = Channel.from_pairs(zip(part["spun"], part["original"]))
        logger.info("channel of %s: %d swaps from %d pairs", name, len(own[name].swaps), len(part))
    held_out = {}
    for name in profiles:
        swaps, originals = Counter(), Counter()
        for other, ch in own.items():
            if other != name:
                swaps.update(ch.swaps)
                originals.update(ch.originals)
        held_out[name] = Channel(dict(swaps), dict(originals))
    return held_out


def by_profile(pipeline: Pipeline, channels: dict[str, Channel], profiles: list[str], score):
    """`score(pipeline, indices)` run once per profile with that profile's channel in the pipeline, the results
    (arrays, and a list of group ids when there is one) concatenated; the pipeline's own channel is put back."""
    own = pipeline.channel
    parts = []
    try:
        for name in sorted(set(profiles)):
            pipeline.channel = channels[name]
            parts.append(score(pipeline, [k for k, p in enumerate(profiles) if p == name]))
    finally:
        pipeline.channel = own
    out = [np.concatenate([part[0] for part in parts]), np.concatenate([part[1] for part in parts])]
    if len(parts[0]) > 2:
        out.append([g for part in parts for g in part[2]])
    return tuple(out)


def _words(text: str) -> list[str]:
    from normalizer.edits import words

    return words(text)


def decision_table(probs: np.ndarray, y: np.ndarray, groups, n_gold: int, thresholds=THRESHOLDS) -> list[dict]:
    """Word-edit precision/recall/F0.5 on dev when, per span, the likeliest candidate is applied at >= t
    (overlaps between spans ignored: an upper bound on what the pipeline's non-overlapping choice gives)."""
    best: dict[tuple, tuple[float, float]] = {}
    for p, label, g in zip(probs.tolist(), y.tolist(), groups):
        if g not in best or p > best[g][0]:
            best[g] = (p, label)
    table = []
    for t in thresholds:
        applied = [label for p, label in best.values() if p >= t]
        tp, n = sum(applied), len(applied)
        prec = tp / n if n else 1.0
        rec = tp / n_gold if n_gold else 1.0
        f = 1.25 * prec * rec / (0.25 * prec + rec) if prec + rec else 0.0
        table.append({"threshold": t, "precision": prec, "recall": rec, "f0.5": f, "edits": n})
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=Path("data/pairs"))
    parser.add_argument("--candidates", type=Path, required=True, help="table from python -m training.candidates")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to write the pipeline files into")
    parser.add_argument("--lm", default=SMOLLM2)
    parser.add_argument(
        "--seq2seq",
        default="models/default",
        help="seq2seq checkpoint whose proposals join the candidates ('' for none)",
    )
    parser.add_argument("--n", type=int, default=1500, help="dev sentences to fit the ranker on")
    parser.add_argument("--prerank-n", type=int, default=400, help="other dev sentences to fit the pre-ranker on")
    parser.add_argument("--channel-n", type=int, default=0, help="training pairs counted by the channel (0 = all)")
    parser.add_argument("--no-channel", action="store_true", help="leave the channel empty (ablation)")
    parser.add_argument(
        "--channel-from", type=Path, help="reuse this checkpoint folder's channel.json.gz instead of counting pairs"
    )
    parser.add_argument(
        "--lm-delta", type=Path, help="lay this lm_delta.safetensors (a checkpoint's news-adapted LM) over --lm"
    )
    parser.add_argument(
        "--cross-fit-channel",
        action="store_true",
        help="compute each dev pair's channel features from the training pairs of the other profiles only, so the "
        "rankers learn how far one spinner's swaps tell of another's (the saved channel still counts them all)",
    )
    parser.add_argument("--cache", type=Path, help="npz of scored dev features, reused when it exists")
    parser.add_argument(
        "--documents",
        type=int,
        default=0,
        help="train on N whole dev documents spun by --doc-profiles (with the document features) instead of lone "
        "dev pairs; the pre-ranker on the sentences of the first --prerank-n of them",
    )
    parser.add_argument(
        "--doc-profiles",
        nargs="+",
        default=["spinbot", "wordai", "spinrewriter", "dict-moby", "dict-wordnet", "dict-all"],
        help="spinner profiles for --documents, in turn (15%% of documents are left clean)",
    )
    parser.add_argument(
        "--tortured",
        type=int,
        default=0,
        help="add N real spun phrases of the ranker fold in carrier sentences (training.tortured.carrier_pairs; "
        "build the table with --tortured-splits table, so none of them was learnt whole)",
    )
    parser.add_argument(
        "--extra-features",
        choices=("pps",),
        help="train on these features too: the real pairs' links (PPS_FEATURES)",
    )
    parser.add_argument(
        "--right-context", type=int, default=PipelineConfig.right_context, help="words after a span rescored with it"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--min-precision",
        type=float,
        default=0.9,
        help="threshold: the lowest whose dev precision reaches this (else the best dev F0.5); dev precision runs "
        "above precision on unseen spinners, hence the margin over the 0.85 target",
    )
    parser.add_argument(
        "--profiles",
        nargs="*",
        default=[],
        help="use only pairs of these spinner profiles (held-out-thesaurus experiments)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    from training.pairs import load_pairs

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.cross_fit_channel and (args.no_channel or args.documents or args.tortured):
        raise SystemExit("--cross-fit-channel needs the dev pairs' profiles: leave out --no-channel, --documents and "
                         "--tortured")  # fmt: skip
    if args.no_channel:
        channel = Channel()
    elif args.channel_from:
        channel = Channel.load(args.channel_from)
        logger.info("channel: %d swaps from %s", len(channel.swaps), args.channel_from)
    else:
        train = load_pairs(args.pairs, "train")
        if args.profiles:
            train = train.filter(lambda p: p in args.profiles, input_columns="profile")
        n = len(train) if not args.channel_n else min(args.channel_n, len(train))
        channel = Channel.from_pairs(zip(train["spun"][:n], train["original"][:n]))
        logger.info("channel: %d swaps from %d pairs", len(channel.swaps), n)
    documents = features = None
    if args.documents:
        from training.pairs import spin_documents

        docs = spin_documents("dev", tuple(args.doc_profiles), args.documents + args.prerank_n, seed=args.seed)
        pre_docs, docs = docs[: args.prerank_n], docs[args.prerank_n :]
        dev = {
            "spun": [s for d in pre_docs for s, _, _ in d.sentences],
            "original": [o for d in pre_docs for _, o, _ in d.sentences],
            "target": [t for d in pre_docs for _, _, t in d.sentences],
        }
        pre_rows = [{k: dev[k][i] for k in dev} for i in range(len(dev["spun"]))]
        spun = [s for d in docs for s, _, _ in d.sentences]
        original = [o for d in docs for _, o, _ in d.sentences]
        targets = [t for d in docs for _, _, t in d.sentences]
        documents = [d.text for d in docs for _ in d.sentences]
        features = SCHEMAS[1]
        logger.info("documents: %d for the ranker (%d sentences), %d for the pre-ranker", len(docs), len(spun),
                    len(pre_docs))  # fmt: skip
    else:
        dev_pairs = load_pairs(args.pairs, "dev")
        if args.profiles:
            dev_pairs = dev_pairs.filter(lambda p: p in args.profiles, input_columns="profile")
        idx = random.Random(args.seed).sample(range(len(dev_pairs)), min(args.n + args.prerank_n, len(dev_pairs)))
        pre_rows = [dev_pairs[i] for i in idx[: args.prerank_n]]
        rows = [dev_pairs[i] for i in idx[args.prerank_n :]]
        profiles = [r["profile"] for r in rows]
        spun, original, targets = [r["spun"] for r in rows], [r["original"] for r in rows], [r["target"] for r in rows]
        features = FEATURES
    if args.tortured:
        from training.tortured import carrier_pairs

        carriers = carrier_pairs(args.tortured, seed=args.seed)
        spun += [s for s, _ in carriers]
        original += [o for _, o in carriers]
        targets += [None] * len(carriers)  # labelled by word alignment: equal-length swaps one word each
        if documents is not None:
            documents += [s for s, _ in carriers]
        logger.info("tortured: %d carrier sentences", len(carriers))
    if args.extra_features:
        if documents is not None:
            raise SystemExit("--extra-features extends the sentence schema: leave out --documents")
        features = SCHEMAS[2]
    n_gold = sum(len(gold_spans(s, o, t)) for s, o, t in zip(spun, original, targets))
    config = PipelineConfig(seq2seq=bool(args.seq2seq), right_context=args.right_context)
    loaded: list[Pipeline] = []

    def pipeline() -> Pipeline:
        """The pipeline without a ranker, loaded on first use (not at all when both caches exist)."""
        if not loaded:
            from normalizer.engines.seq2seq import Seq2SeqRestorer

            seq2seq = Seq2SeqRestorer.from_pretrained(args.seq2seq) if args.seq2seq else None
            table = CandidateTable.load(args.candidates)
            lm = LanguageModel.from_pretrained(args.lm, delta=args.lm_delta)
            loaded.append(Pipeline(table, lm, None, channel, None, config, seq2seq=seq2seq))
        return loaded[0]

    @cache
    def held_out() -> dict[str, Channel]:
        """The cross-fitted channels of the dev profiles, counted on first use (not at all when both caches exist)."""
        return cross_fit_channels(load_pairs(args.pairs, "train"), {r["profile"] for r in pre_rows} | set(profiles))

    pre_cache = args.cache.with_suffix(".pre.npz") if args.cache else None
    if pre_cache and pre_cache.exists():
        data = np.load(pre_cache, allow_pickle=False)
        px, py = data["x"], data["y"]
    elif args.cross_fit_channel:
        px, py = by_profile(
            pipeline(),
            held_out(),
            [r["profile"] for r in pre_rows],
            lambda p, ks: labelled_cheap_features(
                p,
                [pre_rows[k]["spun"] for k in ks],
                [pre_rows[k]["original"] for k in ks],
                [pre_rows[k]["target"] for k in ks],
            ),  # fmt: skip
        )
    else:
        px, py = labelled_cheap_features(
            pipeline(),
            [r["spun"] for r in pre_rows],
            [r["original"] for r in pre_rows],
            [r["target"] for r in pre_rows],
        )
        if pre_cache:
            np.savez(pre_cache, x=px, y=py)
    preranker = Ranker.fit(px, py, features=CHEAP_FEATURES)
    logger.info("pre-ranker: %d candidates, %d positive", len(py), int(py.sum()))
    if args.cache and args.cache.exists():
        data = np.load(args.cache, allow_pickle=False)
        x, y, groups = data["x"], data["y"], [tuple(g) for g in data["groups"].tolist()]
    else:
        pipeline().preranker = preranker
        if args.cross_fit_channel:

            def one(p, ks):
                x, y, groups = labelled_features(
                    p, [spun[k] for k in ks], [original[k] for k in ks], [targets[k] for k in ks], None, features
                )
                return x, y, [(ks[g[0]], *g[1:]) for g in groups]  # sentence ids back to the whole list's

            x, y, groups = by_profile(pipeline(), held_out(), profiles, one)
        else:
            x, y, groups = labelled_features(pipeline(), spun, original, targets, documents, features)
        if args.cache:
            np.savez(args.cache, x=x, y=y, groups=np.array(groups))
    logger.info("features: %d candidates, %d positive, %d gold edits", len(y), int(y.sum()), n_gold)
    if x.shape[1] != len(features):
        raise SystemExit(f"{args.cache}: {x.shape[1]} features cached, this run computes {len(features)}")
    ranker = Ranker.fit(x, y, features=features)
    table_rows = decision_table(ranker.prob(x), y, groups, n_gold)
    sure = [r for r in table_rows if r["precision"] >= args.min_precision and r["edits"]]
    best = sure[0] if sure else max(table_rows, key=lambda r: r["f0.5"])
    ranker.threshold = best["threshold"]
    ranker.save(args.out)
    preranker.save(args.out, PRERANKER_FILE)
    channel.save(args.out)
    config.save(args.out)
    if args.candidates.resolve() != (args.out / CANDIDATES_FILE).resolve():
        shutil.copyfile(args.candidates, args.out / CANDIDATES_FILE)
    report = {
        "command": "python -m training.ranker " + " ".join(sys.argv[1:] if argv is None else argv),
        "dev_sentences": len(spun),
        "gold_edits": n_gold,
        "candidates_scored": int(len(y)),
        "positives": int(y.sum()),
        "threshold": ranker.threshold,
        "dev_table": table_rows,
        "weights": dict(zip(ranker.features, ranker.weights)),
        "channel_cross_fit": bool(args.cross_fit_channel),
        "prerank_candidates": int(len(py)),
        "prerank_positives": int(py.sum()),
        "prerank_weights": dict(zip(preranker.features, preranker.weights)),
        "seconds": round(time.time() - start, 1),
    }
    (args.out / "ranker_training.json").write_text(json.dumps(report, indent=2) + "\n")
    for row in table_rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
