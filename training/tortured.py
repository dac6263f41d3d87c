"""Real spun phrase pairs: what the tortured phrases of published papers teach about a spinner's habits.

`../shared/corpora/tortured_phrases.jsonl` holds (spun, original) phrase pairs that the Problematic Paper Screener
(Cabanac, Labbé & Magazinov; CC BY 4.0) found in published papers: real SpinBot-like output ("counterfeit
consciousness" for "artificial intelligence"). This module cleans them, splits them by *original* phrase (every
spun variant of one original falls in one split, so a held-out phrase was never seen whole), and turns the training
split into what the pipeline can use:

- word links: in a pair of equal length, each differing word pair ("counterfeit" -> "artificial"), aligned by
  position; they join the candidate table as the `pps` source, so a spun word the thesauri do not invert still gets
  its original as a candidate;
- phrase links: the whole spun phrase -> its original, as phrase-table entries;
- channel counts: the same pairs counted by `Channel.from_pairs`, so the ranker's channel feature knows that this
  spinner writes "vitality" for "energy".

    python -m training.tortured --stats          # sizes of the splits and what they give
    python -m training.candidates --tortured --out DIR/candidates.npz            # word and phrase links
    python -m training.tortured --channel-from models/default --out DIR          # channel counts
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

DEFAULT_PATH = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "tortured_phrases.jsonl"
CREDIT = "Problematic Paper Screener, Cabanac, Labbé & Magazinov (CC BY 4.0)"
SPLITS = ("train", "dev", "test")
_ACRONYM = re.compile(r"\s*\([^()]*\)\s*$")
_PLAIN = re.compile(r"^[a-z0-9][a-z0-9 '\-]*[a-z0-9]$")


def clean(phrase: str) -> str:
    """Lower case, spaces collapsed, a trailing parenthesised acronym ("... analysis (pca)") dropped."""
    return " ".join(_ACRONYM.sub("", phrase.lower().strip()).split())


def split_of(original: str) -> str:
    """The split of every pair with this (cleaned) original phrase: `test` one in five by a hash, `dev` one in five,
    else `train`."""
    h = int(hashlib.sha1(original.encode("utf-8")).hexdigest(), 16) % 5
    return "test" if h == 0 else "dev" if h == 1 else "train"


def read_pairs(path: str | Path = DEFAULT_PATH) -> list[tuple[str, str]]:
    """The cleaned, distinct (spun, original) pairs, sorted: pairs whose phrases hold anything but letters, digits,
    spaces, hyphens and apostrophes ("???", "fog/mist/cloud computing") or that clean to the same phrase are left
    out. A line that is not a JSON object with two strings is an error naming the line."""
    pairs = set()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if (
                not isinstance(row, dict)
                or not isinstance(row.get("spun"), str)
                or not isinstance(row.get("original"), str)
            ):
                raise ValueError(f"{path}:{n}: expected an object with 'spun' and 'original' strings")
            spun, original = clean(row["spun"]), clean(row["original"])
            if spun != original and _PLAIN.match(spun) and _PLAIN.match(original):
                pairs.add((spun, original))
    return sorted(pairs)


def split_pairs(pairs: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """{split: pairs} by `split_of` of the original."""
    out: dict[str, list[tuple[str, str]]] = {s: [] for s in SPLITS}
    for spun, original in pairs:
        out[split_of(original)].append((spun, original))
    return out


def word_links(pairs: list[tuple[str, str]]) -> Counter:
    """(spun word, original word) -> count, from the differing positions of equal-length pairs. Hyphenated and
    digit-holding words are left out (they are names and codes, not a spinner's word choice)."""
    links: Counter = Counter()
    for spun, original in pairs:
        a, b = spun.split(), original.split()
        if len(a) != len(b):
            continue
        for s, o in zip(a, b):
            if s != o and s.isalpha() and o.isalpha():
                links[(s, o)] += 1
    return links


LEARNING_SPLITS = ("train", "dev")
TABLE_SPLIT = "table"
"""The training split less its ranker fold: what a table learns from when a ranker is trained on the fold."""


def in_ranker_fold(original: str) -> bool:
    """Whether a training pair with this original belongs to the ranker fold (one original in four, by a hash
    independent of `split_of`): phrases a ranker is trained on that the table never learnt whole, as held-out
    phrases are at test time."""
    return int(hashlib.sha1(b"ranker:" + original.encode("utf-8")).hexdigest(), 16) % 4 == 0


def learning_pairs(path: str | Path = DEFAULT_PATH, splits: tuple[str, ...] = LEARNING_SPLITS) -> list[tuple[str, str]]:
    """The pairs a model learns from: by default the train and dev splits (the shipped model; settings are chosen
    on a train-only build against dev); `table` is the training split less its ranker fold (`ranker_pairs`). The
    test split is refused: it is never learnt from."""
    if "test" in splits or not set(splits) <= {*LEARNING_SPLITS, TABLE_SPLIT}:
        raise ValueError(f"learning splits are train, table and/or dev, got {splits}")
    by_split = split_pairs(read_pairs(path))
    by_split[TABLE_SPLIT] = [p for p in by_split["train"] if not in_ranker_fold(p[1])]
    return [pair for name in dict.fromkeys(splits) for pair in by_split[name]]


def ranker_pairs(path: str | Path = DEFAULT_PATH) -> list[tuple[str, str]]:
    """The training split's ranker fold (`in_ranker_fold`): pairs to train a ranker on, whose table learnt from
    `table` only."""
    return [p for p in split_pairs(read_pairs(path))["train"] if in_ranker_fold(p[1])]


def lemma_links(pairs: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """(spun lemma, original lemma) -> rank, the candidate table's form of `word_links`: both words read the same
    way by lemminflect ("highlights" -> "features" is highlight -> feature as plural nouns; a pair with no common
    reading is kept as written), rank 0 for an original's most frequent spun word, 1 for the next, and so on."""
    from normalizer.inflection import analyses

    counts: Counter = Counter()
    for (s, o), c in word_links(pairs).items():
        tags_s = {tag: lemma for lemma, _, tag in analyses(s)}
        shared = [(tag, lemma) for lemma, _, tag in analyses(o) if tag in tags_s]
        if shared:
            tag, lemma = shared[0]
            counts[(tags_s[tag], lemma)] += c
        else:
            counts[(s, o)] += c
    by_original: dict[str, list[tuple[int, str]]] = {}
    for (s, o), c in counts.items():
        if s != o:
            by_original.setdefault(o, []).append((-c, s))
    return {(s, o): rank for o, spuns in by_original.items() for rank, (_, s) in enumerate(sorted(spuns))}


def phrase_links(pairs: list[tuple[str, str]], max_words: int = 3) -> dict[str, list[str]]:
    """spun phrase -> originals, for multiword spun phrases of at most `max_words` words (the candidate stage looks
    up spans of 2-3 words)."""
    out: dict[str, list[str]] = {}
    for spun, original in pairs:
        if 2 <= len(spun.split()) <= max_words and len(original.split()) <= max_words:
            out.setdefault(spun, []).append(original)
    return {k: sorted(set(v)) for k, v in sorted(out.items())}


TRAIN_CARRIERS = (
    "We evaluate {} on a benchmark of moderate size.",
    "A growing body of work relies on {} to solve such problems.",
    "The authors argue that {} can be applied in practice.",
    "In the second experiment, {} was tested under noisy conditions.",
    "This study investigates the use of {} in clinical settings.",
    "Little is known about how {} behaves at scale.",
    "The framework builds on {} and extends it to new domains.",
    "Figure 3 illustrates the effect of {} on accuracy.",
    "Several limitations of {} are discussed below.",
    "Our results confirm that {} plays a central role.",
    "The literature on {} is reviewed in Section 2.",
    "To our knowledge, {} has not been used for this purpose before.",
)
"""Carrier sentences for a ranker's training pairs: other sentences than the test sets' (`evaluation.testsets
.CARRIERS`), so no template is shared between what a ranker learns from and what it is measured on."""


def carrier_pairs(n: int, seed: int = 0, path: str | Path = DEFAULT_PATH) -> list[tuple[str, str]]:
    """(spun, original) sentences: `n` distinct originals of the ranker fold (`ranker_pairs`), one spun variant
    each, in `TRAIN_CARRIERS`."""
    import random

    rng = random.Random(seed)
    by_original: dict[str, list[str]] = {}
    for spun, original in ranker_pairs(path):
        by_original.setdefault(original, []).append(spun)
    originals = rng.sample(sorted(by_original), min(n, len(by_original)))
    out = []
    for k, original in enumerate(originals):
        carrier = TRAIN_CARRIERS[k % len(TRAIN_CARRIERS)]
        out.append((carrier.format(rng.choice(by_original[original])), carrier.format(original)))
    return out


def add_to_checkpoint(
    checkpoint: str | Path, out: str | Path, path: str | Path = DEFAULT_PATH, splits: tuple[str, ...] = LEARNING_SPLITS
) -> Path:
    """Write `out`/channel.json.gz: `checkpoint`'s channel plus the counts of the learning pairs (part `tortured`).
    The candidate table is built separately (`python -m training.candidates --tortured`)."""
    from normalizer.stages.ranker import Channel

    pairs = learning_pairs(path, splits)
    channel = Channel.load(checkpoint).merged(Channel.from_pairs(pairs), "tortured", len(pairs))
    Path(out).mkdir(parents=True, exist_ok=True)
    channel.save(out)
    return Path(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--stats", action="store_true", help="print the sizes of the splits and what they give")
    parser.add_argument("--channel-from", type=Path, help="a checkpoint folder whose channel gets the pairs' counts")
    parser.add_argument("--out", type=Path, help="where the merged channel.json.gz is written (with --channel-from)")
    parser.add_argument("--splits", nargs="+", default=list(LEARNING_SPLITS), choices=(*LEARNING_SPLITS, TABLE_SPLIT))
    args = parser.parse_args(argv)
    if args.channel_from:
        if not args.out:
            parser.error("--channel-from needs --out")
        written = add_to_checkpoint(args.channel_from, args.out, args.pairs, tuple(args.splits))
        print(f"wrote {written / 'channel.json.gz'}")
        return
    pairs = read_pairs(args.pairs)
    splits = split_pairs(pairs)
    print(f"{len(pairs)} clean pairs: " + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))
    links = word_links(splits["train"])
    print(f"train: {len(links)} word links, {len(phrase_links(splits['train']))} spun phrases of 2-3 words")
    for (s, o), c in links.most_common(15):
        print(f"  {s} -> {o}: {c}")


if __name__ == "__main__":
    main()
