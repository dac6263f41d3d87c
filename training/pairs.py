"""Turn a clean corpus into (spun, original) training pairs with `datasets`, sharded on disk and resumable.

Each sentence is spun by one of the training profiles at a rate drawn from a mix that includes 0 (so the model learns
to leave clean text alone). Dictionary-spinner profiles (`training.spin.DICTIONARY_PROFILES`) apply their whole
dictionary to a sentence, as those spinners do; a drawn rate of 0 leaves it clean. Every pair carries `spun`,
`original`, `target` (the edit sequence, see `normalizer.edits`), `profile` and `rate`. Shards already on disk are
kept, so an interrupted build resumes.

Usage: `python -m training.pairs --out data/pairs [--sources FILE ...] [--num-proc 2]`.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from normalizer.edits import Span, disambiguate, make_target, tokenize, words
from training.corpus import load_splits, sentences
from training.spin import (
    DICTIONARY_PROFILES,
    PROFILES,
    TRAIN_DICTIONARY_PROFILES,
    TRAIN_PROFILES,
    Spinner,
    SpinResult,
    Swap,
    dictionary_spinner,
)

logger = logging.getLogger(__name__)


@dataclass
class PairsConfig:
    """How pairs are made."""

    profiles: tuple[str, ...] = TRAIN_PROFILES
    """Spinner profiles (thesaurus or dictionary ones), used in turn."""
    rates: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.45, 0.6)
    """Spin rates to draw from."""
    rate_weights: tuple[float, ...] = (0.15, 0.1, 0.2, 0.25, 0.2, 0.1)
    """Probability of each rate."""
    seed: int = 0
    """Seed; each sentence's spin depends only on it and the sentence's index."""
    max_words: int = 48
    """Longest sentence piece, in tokens (longer sentences are cut, see `normalizer.segment`)."""
    shard_size: int = 20_000
    """Sentences per shard on disk."""
    num_proc: int = 2
    """Worker processes for `datasets.map`."""
    splits: tuple[str, ...] = ("train", "dev", "test")
    """Splits to build."""
    sources: list[str] = field(default_factory=list)
    """Corpus files, folders or dataset names; empty means the shared news corpora."""

    def __post_init__(self):
        if len(self.rates) != len(self.rate_weights):
            raise ValueError(f"rates {self.rates} and rate_weights {self.rate_weights} differ in length")
        if any(not 0 <= r <= 0.6 for r in self.rates):
            raise ValueError(f"rates must lie in [0, 0.6], got {self.rates}")
        unknown = [p for p in self.profiles if p not in PROFILES and p not in DICTIONARY_PROFILES]
        if unknown:
            raise ValueError(f"unknown profiles {unknown}")


def target_for(spun: str, swaps: list[Swap]) -> str:
    """The edit-sequence target that turns `spun` back into the original, given the spinner's swaps."""
    toks = tokenize(spun)
    spans, cursor = [], 0
    for sw in swaps:
        idx = [k for k, t in enumerate(toks) if t.start >= sw.spun_start and t.end <= sw.spun_end]
        if not idx:
            continue
        first, last = idx[0], idx[-1] + 1
        widened, _ = disambiguate(toks, cursor, first, last, words(sw.original))
        context = spun[toks[widened].start : toks[first].start]
        spans.append(Span(spun[toks[widened].start : toks[last - 1].end], context + sw.original))
        cursor = last
    return make_target(spans)


_SPINNERS: dict = {}


def spin_one(text: str, idx: int, config: dict) -> tuple[SpinResult, str, float]:
    """Sentence `idx` of a split spun as the pairs spin it: (result, profile, rate), seeded by the index alone."""
    rng = random.Random(config["seed"] * 1_000_003 + idx)
    profile = config["profiles"][idx % len(config["profiles"])]
    rate = rng.choices(config["rates"], weights=config["rate_weights"], k=1)[0]
    if profile not in _SPINNERS:
        dictionary = profile in DICTIONARY_PROFILES
        _SPINNERS[profile] = dictionary_spinner(profile) if dictionary else Spinner(profile, 0.0, seed=config["seed"])
    spinner = _SPINNERS[profile]
    if profile in DICTIONARY_PROFILES:
        result = spinner.spin(text, rng=rng) if rate > 0 else SpinResult(text, text, [])
    else:
        result = spinner.spin(text, rng=rng, rate=rate)
    return result, profile, rate


def spin_batch(batch: dict, indices: list[int], config: dict, offset: int = 0) -> dict:
    """`datasets.map` function: spin each `original` sentence, seeded by its index in the split."""
    out = {"spun": [], "target": [], "profile": [], "rate": []}
    for text, idx in zip(batch["original"], (i + offset for i in indices)):
        result, profile, rate = spin_one(text, idx, config)
        out["spun"].append(result.spun)
        out["target"].append(target_for(result.spun, result.swaps))
        out["profile"].append(profile)
        out["rate"].append(rate)
    return out


def build_pairs(out_dir: str | Path, config: PairsConfig = PairsConfig()) -> dict[str, int]:
    """Build the pairs for every split into `out_dir/<split>/shard-NNNNN`; returns sentences per split."""
    import datasets

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = load_splits(config.sources or None)
    counts = {}
    for split in config.splits:
        sents = [s for doc in splits[split] for p in doc.text.split("\n") for s in sentences(p, config.max_words)]
        sents = [s for s in sents if len(s.split()) >= 3]
        counts[split] = len(sents)
        start = time.time()
        for k, lo in enumerate(range(0, len(sents), config.shard_size)):
            shard_dir = out_dir / split / f"shard-{k:05d}"
            if (shard_dir / "dataset_info.json").exists():
                continue  # resume: this shard is done
            ds = datasets.Dataset.from_dict({"original": sents[lo : lo + config.shard_size]})
            ds = ds.map(
                spin_batch,
                batched=True,
                with_indices=True,
                # Indices are global, so a pair does not depend on how the corpus was sharded.
                fn_kwargs={"config": asdict(config), "offset": lo},
                num_proc=config.num_proc if len(ds) >= 1000 else None,
                desc=f"{split} shard {k}",
            )
            ds.save_to_disk(str(shard_dir))
        secs = time.time() - start
        logger.info("%s: %d sentences in %.0f s (%.0f pairs/s)", split, len(sents), secs, len(sents) / max(secs, 1e-9))
    (out_dir / "pairs_config.json").write_text(json.dumps({**asdict(config), "counts": counts}, indent=2))
    return counts


@dataclass
class SpunDocument:
    """A document spun sentence by sentence by one profile: the spun text and, per sentence, (spun, original,
    target)."""

    profile: str
    rate: float
    text: str
    sentences: list[tuple[str, str, str]]


def spin_documents(
    split: str = "dev",
    profiles: tuple[str, ...] = (*TRAIN_PROFILES, *TRAIN_DICTIONARY_PROFILES),
    n: int = 100,
    seed: int = 0,
    clean_share: float = 0.15,
    rates: tuple[float, ...] = (0.15, 0.3, 0.45),
    max_sentences: int = 25,
    min_sentences: int = 3,
    sources: list[str] | None = None,
    lexicon=None,
) -> list[SpunDocument]:
    """`n` documents of `split` (at most `max_sentences` sentences each), each spun by one of `profiles` in turn
    (thesaurus profiles at a rate drawn from `rates`; dictionary spinners apply their whole dictionary, consistent
    across the document), `clean_share` of them left clean: training data for evidence from the whole document.
    `lexicon`: the spinners' (default: the cached one, built from the Debian and PyPI lexicons)."""
    rng = random.Random(seed)
    docs = [d for d in load_splits(sources)[split]]
    rng.shuffle(docs)
    spinners: dict = {}
    out = []
    for doc in docs:
        sents = [s for p in doc.text.split("\n") for s in sentences(p) if len(s.split()) >= 3][:max_sentences]
        if len(sents) < min_sentences:
            continue
        profile = profiles[len(out) % len(profiles)]
        clean = rng.random() < clean_share
        rate = 0.0 if clean else rng.choice(rates)
        if profile not in spinners:
            dictionary = profile in DICTIONARY_PROFILES
            spinners[profile] = (
                dictionary_spinner(profile, lexicon)
                if dictionary
                else Spinner(profile, 0.0, seed=seed, lexicon=lexicon)
            )
        spinner = spinners[profile]
        rows = []
        for sent in sents:
            if clean:
                result = SpinResult(sent, sent, [])
            elif profile in DICTIONARY_PROFILES:
                result = spinner.spin(sent, rng=rng)
            else:
                result = spinner.spin(sent, rng=rng, rate=rate)
            rows.append((result.spun, sent, target_for(result.spun, result.swaps)))
        out.append(SpunDocument(profile, rate if not clean else 0.0, " ".join(r[0] for r in rows), rows))
        if len(out) >= n:
            break
    return out


def load_pairs(out_dir: str | Path, split: str):
    """All shards of one split as a single `datasets.Dataset`."""
    import datasets

    shards = sorted((Path(out_dir) / split).glob("shard-*"))
    if not shards:
        raise FileNotFoundError(f"no pairs for split {split!r} under {out_dir}; run python -m training.pairs first")
    return datasets.concatenate_datasets([datasets.load_from_disk(str(p)) for p in shards])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sources", nargs="*", default=[], help="corpus files/folders (default: shared corpora)")
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard-size", type=int, default=20_000)
    parser.add_argument("--splits", nargs="+", default=["train", "dev", "test"], help="splits to build")
    parser.add_argument(
        "--profiles",
        nargs="+",
        default=list(TRAIN_PROFILES),
        help=f"spinner profiles used in turn (default: {' '.join(TRAIN_PROFILES)}; dictionary spinners: "
        f"{' '.join(TRAIN_DICTIONARY_PROFILES)})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = PairsConfig(
        seed=args.seed,
        num_proc=args.num_proc,
        shard_size=args.shard_size,
        sources=args.sources,
        splits=tuple(args.splits),
        profiles=tuple(args.profiles),
    )
    counts = build_pairs(args.out, config)
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
