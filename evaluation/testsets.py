"""Build the harness's test sets, deterministically, from held-out documents (the corpus's `test` split).

    python -m evaluation.testsets --out data/testsets

Writes JSONL files of `{"id", "spun", "original", "profile", "rate"}` paragraphs, each with a `.meta.json` beside it
saying how it was made (command, seed, profile, rate, counts):
- `synthetic-<profile>-r<rate>.jsonl`: every spinner profile (the held-out one included) at rates 0.15, 0.3, 0.45;
- `clean.jsonl`: original paragraphs as input (the right output is the input, unchanged);
- `phrases.jsonl`: sentences holding a phrase-table entry (function words, phrases, idioms, institutions), spun
  with phrase swaps only, so phrase restoration is measured on its own.
Test sets hold corpus text, so they are built where needed and never committed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
from pathlib import Path

from training.corpus import load_splits, paragraphs, sentences
from training.spin import HELD_OUT_PROFILES, PROFILES, Spinner

RATES = (0.15, 0.3, 0.45)


def _write(path: Path, rows: list[dict], meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    meta = {**meta, "count": len(rows), "spun_differs": sum(r["spun"] != r["original"] for r in rows)}
    path.with_suffix(".meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def held_out_paragraphs(max_words: int, sources: list[str] | None = None) -> list[tuple[str, str]]:
    """(id, paragraph) of the test split's paragraphs of 8 to `max_words` words, in corpus order."""
    docs = load_splits(sources)["test"]
    paras = [(f"{d.id}#{k}", p) for d in docs for k, p in enumerate(paragraphs(d.text))]
    return [(i, p) for i, p in paras if 8 <= len(p.split()) <= max_words]


def build_testsets(
    out_dir: str | Path, per_set: int = 80, seed: int = 1234, max_words: int = 120, sources: list[str] | None = None
) -> list[Path]:
    """Write all test sets into `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    paras = held_out_paragraphs(max_words, sources)
    rng = random.Random(seed)
    rng.shuffle(paras)
    base = {
        "builder": "python -m evaluation.testsets",
        "seed": seed,
        "source": "test split (by document)",
        "held_out_profiles": list(HELD_OUT_PROFILES),
    }
    written = []
    for pi, name in enumerate(sorted(PROFILES)):
        for ri, rate in enumerate(RATES):
            spinner = Spinner(name, rate, seed=seed + 10 * pi + ri)
            # Each set draws its own paragraphs, so sets are not the same text spun differently.
            chosen = random.Random(seed + 100 * pi + ri).sample(paras, min(per_set, len(paras)))
            rows = [
                {"id": i, "spun": spinner.spin(p).spun, "original": p, "profile": name, "rate": rate} for i, p in chosen
            ]
            path = out_dir / f"synthetic-{name}-r{rate}.jsonl"
            _write(
                path,
                rows,
                {**base, "kind": "synthetic", "profile": name, "rate": rate, "held_out": name in HELD_OUT_PROFILES},
            )
            written.append(path)
    clean = random.Random(seed + 7).sample(paras, min(2 * per_set, len(paras)))
    rows = [{"id": i, "spun": p, "original": p, "profile": "none", "rate": 0.0} for i, p in clean]
    _write(out_dir / "clean.jsonl", rows, {**base, "kind": "clean"})
    written.append(out_dir / "clean.jsonl")

    # Phrase set: a spinner with no lexicon, so only phrase tables apply, at the top rate; random phrase choice.
    profile = dataclasses.replace(
        PROFILES["spinrewriter"], name="phrases-only", sources=(), phrase_choice=None, institution_scale=1.0
    )
    spinner = Spinner(profile, 0.6, seed=seed + 11)
    rows = []
    for i, p in paras:
        for k, s in enumerate(sentences(p)):
            result = spinner.spin(s)
            if result.swaps:
                rows.append(
                    {
                        "id": f"{i}.{k}",
                        "spun": result.spun,
                        "original": s,
                        "profile": "phrases-only",
                        "rate": 0.6,
                        "phrases": [[w.original, w.spun] for w in result.swaps],
                    }
                )
        if len(rows) >= 2 * per_set:
            break
    _write(out_dir / "phrases.jsonl", rows, {**base, "kind": "phrases", "profile": "phrase tables only, random choice"})
    written.append(out_dir / "phrases.jsonl")
    return written


# Profiles for measuring a thesaurus the system lacks: each draws its synonyms from one source only, so a pipeline
# whose candidates and pairs were built without that source meets swaps it has no table for (bestspinner's choice
# settings otherwise). Built only with --thesaurus-sets; the standard sets above do not change.
THESAURUS_PROFILES = {
    "moby-only": dataclasses.replace(PROFILES["bestspinner"], name="moby-only", sources=("moby",)),
    "wordnet-mythes-only": dataclasses.replace(
        PROFILES["bestspinner"], name="wordnet-mythes-only", sources=("wordnet", "mythes")
    ),
}


def build_thesaurus_sets(
    out_dir: str | Path, per_set: int = 80, seed: int = 4321, max_words: int = 120, rates: tuple[float, ...] = (0.3,)
) -> list[Path]:
    """`thesaurus-<profile>-r<rate>.jsonl` from held-out documents, one per `THESAURUS_PROFILES` entry and rate."""
    out_dir = Path(out_dir)
    paras = held_out_paragraphs(max_words)
    written = []
    for pi, (name, profile) in enumerate(sorted(THESAURUS_PROFILES.items())):
        for ri, rate in enumerate(rates):
            spinner = Spinner(profile, rate, seed=seed + 10 * pi + ri)
            chosen = random.Random(seed + 100 * pi + ri).sample(paras, min(per_set, len(paras)))
            rows = [
                {"id": i, "spun": spinner.spin(p).spun, "original": p, "profile": name, "rate": rate} for i, p in chosen
            ]
            path = out_dir / f"thesaurus-{name}-r{rate}.jsonl"
            meta = {
                "builder": "python -m evaluation.testsets --thesaurus-sets",
                "seed": seed,
                "kind": "thesaurus",
                "profile": name,
                "sources": list(profile.sources),
                "rate": rate,
                "held_out": True,
            }
            _write(path, rows, meta)
            written.append(path)
    return written


def build_dictionary_sets(out_dir: str | Path, per_set: int = 80, seed: int = 2468, max_words: int = 120) -> list[Path]:
    """`dictionary-<profile>.jsonl` from held-out documents, one per held-out dictionary spinner
    (`training.spin.HELD_OUT_DICTIONARY_PROFILES`: a lexicon no training dictionary uses, once per key and per
    occurrence), each with the spinner's own dictionary beside it as `dictionary-<profile>.dict.txt`, for the
    "with its dictionary supplied" measurement. The dictionaries are built from the open lexicons, like the sets."""
    from training.spin import DICTIONARY_PROFILES, HELD_OUT_DICTIONARY_PROFILES, dictionary_spinner, write_dictionary

    out_dir = Path(out_dir)
    paras = held_out_paragraphs(max_words)
    written = []
    for pi, name in enumerate(HELD_OUT_DICTIONARY_PROFILES):
        spinner = dictionary_spinner(name)
        chosen = random.Random(seed + 100 * pi).sample(paras, min(per_set, len(paras)))
        rng = random.Random(seed + pi)
        rows = [
            {"id": i, "spun": spinner.spin(p, rng=rng).spun, "original": p, "profile": name, "rate": 1.0}
            for i, p in chosen
        ]
        path = out_dir / f"dictionary-{name}.jsonl"
        profile = DICTIONARY_PROFILES[name]
        meta = {
            "builder": "python -m evaluation.testsets --dictionary-sets",
            "seed": seed,
            "kind": "dictionary",
            "profile": name,
            "sources": list(profile.sources),
            "mode": profile.mode,
            "dictionary_lines": len(spinner.entries),
            "held_out": True,
        }
        _write(path, rows, meta)
        write_dictionary(list(spinner.entries.items()), path.with_suffix(".dict.txt"))
        written.append(path)
    return written


def documents_of(split: str, n: int, seed: int, max_words: int = 320, min_words: int = 150) -> list[tuple[str, str]]:
    """(id, text) of `n` documents of a split drawn by `seed`: each document's first paragraphs (lines, kept whole)
    up to `max_words` words, documents shorter than `min_words` left out."""
    docs = []
    for d in load_splits()[split]:
        kept, count = [], 0
        for p in paragraphs(d.text):
            if kept and count + len(p.split()) > max_words:
                break
            kept.append(p)
            count += len(p.split())
        if count >= min_words:
            docs.append((d.id, "\n".join(kept)))
    return random.Random(seed).sample(docs, min(n, len(docs)))


# Document sets: whole documents, so evidence from the rest of a document (and a spinner's consistency) can be
# measured. Test sets from the test split with held-out spinners; dev sets from the dev split with training spinners.
DOCUMENT_SETS = {
    "dict-mythes-once": ("test", "dictionary"),
    "dict-mythes-each": ("test", "dictionary"),
    "bestspinner-r0.3": ("test", "synthetic"),
    "clean": ("test", "clean"),
    "dev-dict-moby": ("dev", "dictionary"),
    "dev-dict-wordnet": ("dev", "dictionary"),
    "dev-spinbot-r0.3": ("dev", "synthetic"),
    "dev-clean": ("dev", "clean"),
}


def build_document_sets(out_dir: str | Path, per_set: int = 30, seed: int = 1357) -> list[Path]:
    """`documents-<name>.jsonl` for every `DOCUMENT_SETS` entry: whole documents (see `documents_of`), one per row,
    paragraphs on their own lines; each set draws its own documents."""
    from training.spin import dictionary_spinner

    out_dir = Path(out_dir)
    written = []
    for k, (name, (split, kind)) in enumerate(DOCUMENT_SETS.items()):
        docs = documents_of(split, per_set, seed + k)
        rng = random.Random(seed + 50 + k)
        profile = name.removeprefix("dev-")
        if kind == "dictionary":
            spin = dictionary_spinner(profile).spin
        elif kind == "synthetic":
            base, rate = profile.split("-r")
            spin = Spinner(base, float(rate), seed=seed + k).spin
        rows = []
        for i, text in docs:
            spun = text if kind == "clean" else spin(text, rng=rng).spun
            rows.append({"id": i, "spun": spun, "original": text, "profile": profile, "split": split})
        path = out_dir / f"documents-{name}.jsonl"
        meta = {"builder": "python -m evaluation.testsets --document-sets", "seed": seed, "kind": kind, "split": split}
        _write(path, rows, {**meta, "profile": profile, "held_out": split == "test"})
        written.append(path)
    return written


CARRIERS = (
    "In this paper, we propose a new method based on {} for the task.",
    "The results show that {} improves the performance of the model.",
    "Previous studies have applied {} to a wide range of problems.",
    "We compare our approach with {} on three public datasets.",
    "The role of {} in this setting has not been studied in detail.",
    "Recent advances in {} have attracted considerable attention.",
    "This section describes how {} was used in the experiments.",
    "Several authors have reported that {} is an important factor.",
    "The proposed approach combines {} with a simple classifier.",
    "Table 2 summarises the results obtained with {} on the test set.",
    "Our analysis focuses on {} and its effect on the outcome.",
    "These findings suggest that {} deserves further study.",
)
"""Carrier sentences of scientific prose for the tortured-phrase sets: a noun phrase fits each slot."""


def build_tortured_sets(
    out_dir: str | Path, per_set: int = 200, seed: int = 4321, pairs: str | Path | None = None
) -> list[Path]:
    """`tortured-<split>.jsonl` for the dev and test splits of `training.tortured` (by original phrase, so no test
    phrase was learnt from whole): per set, `per_set` distinct originals, one of their real spun variants each, in a
    carrier sentence (`CARRIERS`). The right output is the carrier with the original phrase."""
    from training.tortured import CREDIT, DEFAULT_PATH, read_pairs, split_pairs

    out_dir = Path(out_dir)
    splits = split_pairs(read_pairs(pairs or DEFAULT_PATH))
    written = []
    for k, split in enumerate(("dev", "test")):
        rng = random.Random(seed + k)
        by_original: dict[str, list[str]] = {}
        for spun, original in splits[split]:
            by_original.setdefault(original, []).append(spun)
        originals = rng.sample(sorted(by_original), min(per_set, len(by_original)))
        rows = []
        for n, original in enumerate(originals):
            spun = rng.choice(by_original[original])
            carrier = CARRIERS[n % len(CARRIERS)]
            rows.append(
                {
                    "id": f"tortured-{split}-{n}",
                    "spun": carrier.format(spun),
                    "original": carrier.format(original),
                    "spun_phrase": spun,
                    "original_phrase": original,
                    "profile": "tortured",
                    "rate": 1.0,
                }
            )
        path = out_dir / f"tortured-{split}.jsonl"
        meta = {
            "builder": "python -m evaluation.testsets --tortured-sets",
            "seed": seed,
            "kind": "tortured",
            "split": split,
            "held_out": split == "test",
            "credit": CREDIT,
        }
        _write(path, rows, meta)
        written.append(path)
    return written


def load_testset(path: str | Path) -> list[dict]:
    """Rows of a test-set JSONL file (each with `spun` and `original`)."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                row = json.loads(line)
                if "spun" not in row or "original" not in row:
                    raise ValueError(f"{path}:{n}: a test row needs 'spun' and 'original'")
                rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/testsets"))
    parser.add_argument("--per-set", type=int, default=80, help="paragraphs per synthetic set")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument(
        "--thesaurus-sets",
        action="store_true",
        help="build only the one-thesaurus sets (THESAURUS_PROFILES), for held-out-thesaurus tests",
    )
    parser.add_argument(
        "--dictionary-sets",
        action="store_true",
        help="build only the held-out dictionary-spinner sets, each with its dictionary beside it",
    )
    parser.add_argument(
        "--document-sets",
        action="store_true",
        help="build only the whole-document sets (DOCUMENT_SETS): held-out test sets and dev sets",
    )
    parser.add_argument(
        "--tortured-sets",
        action="store_true",
        help="build only the tortured-phrase sets (real spun phrases of papers in carrier sentences): dev and test",
    )
    args = parser.parse_args(argv)
    if args.tortured_sets:
        paths = build_tortured_sets(args.out)
    elif args.document_sets:
        paths = build_document_sets(args.out)
    elif args.thesaurus_sets:
        paths = build_thesaurus_sets(args.out, args.per_set)
    elif args.dictionary_sets:
        paths = build_dictionary_sets(args.out, args.per_set)
    else:
        paths = build_testsets(args.out, args.per_set, args.seed)
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
