"""Build the candidate table: for every word or phrase a spinner could have written, the originals it could stand for.

A spinner turns an original word `h` into any synonym `s` in its thesaurus entry for `h`, of any sense; restoring
means inverting that: for the spun `s`, every `h` whose entry lists `s`. This module inverts the *whole* Moby, WordNet
and MyThes lists (no per-headword truncation: the reverse link war <- struggle must survive however far down war's
list "struggle" sits), keeps, per link, which sources give it and how high `s` ranks by frequency in `h`'s list
(spinners prefer frequent synonyms), and adds the inverted phrase tables of `training.phrases` (function words,
multiword phrases, idioms, institutions).

The result is one compact `.npz` (word list, CSR arrays, Zipf frequencies of every word and inflected form) that
`normalizer.candidates` loads without the Debian packages, wordfreq or the lexicon cache:

    python -m training.candidates --out models/default/candidates.npz
    python -m training.candidates --sources wordnet mythes --out runs/no-moby/candidates.npz   # held-out thesaurus
"""

from __future__ import annotations

import argparse
import json
import logging
from functools import cache
from pathlib import Path

import numpy as np

from normalizer.stages.candidates import PPS_SOURCE
from training import phrases
from training.lexicon import SOURCES, read_moby, read_mythes, read_wordnet
from training.tortured import DEFAULT_PATH as TORTURED_DEFAULT
from training.tortured import lemma_links
from training.tortured import phrase_links as tortured_phrases

logger = logging.getLogger(__name__)

READERS = {"moby": read_moby, "wordnet": read_wordnet, "mythes": read_mythes}
MAX_RANK = 65535


def build_table(
    sources: tuple[str, ...] = SOURCES,
    min_zipf: float = 1.5,
    tables=tuple(phrases.TABLES),
    tortured: list[tuple[str, str]] | None = None,
) -> dict:
    """The inverted thesaurus and phrase tables as numpy arrays (see `normalizer.candidates.CandidateTable`); with
    `tortured` (real (spun, original) phrase pairs, `training.tortured`), their word links as the `pps` source and
    their multiword phrases as phrase links."""
    from lemminflect import getAllInflections, getAllLemmas
    from wordfreq import zipf_frequency

    @cache
    def z(w: str) -> float:
        return min(zipf_frequency(p, "en") for p in w.split())

    links: dict[tuple[str, str], list[int]] = {}  # (spun, original) -> [source mask, best rank]
    for k, name in enumerate(sources):
        for head, by_pos in READERS[name]().items():
            if z(head) < min_zipf:
                continue
            for syns in by_pos.values():
                ranked = sorted({s for s in syns if s != head and z(s) >= min_zipf}, key=lambda s: (-z(s), s))
                for rank, s in enumerate(ranked):
                    entry = links.setdefault((s, head), [0, MAX_RANK])
                    entry[0] |= 1 << SOURCES.index(name)
                    entry[1] = min(entry[1], rank)
        logger.info("%s read: %d links so far", name, len(links))
    phrase_links: set[tuple[str, str]] = set()
    if tortured:
        for (s, head), rank in lemma_links(tortured).items():
            entry = links.get((s, head))
            if entry is None:  # a link no thesaurus gives: ranked among the spinner's own choices for `head`
                entry = links[(s, head)] = [0, rank]
            entry[0] |= PPS_SOURCE
        for s, heads in tortured_phrases(tortured).items():
            phrase_links.update((s, h) for h in heads)
        logger.info("tortured phrases: %d links so far, %d phrase links", len(links), len(phrase_links))
    for name in tables:
        for original, replacements in phrases.TABLES[name].items():
            for r in replacements:
                if r != original:
                    phrase_links.add((r, original))
    vocab = sorted({w for pair in links for w in pair} | {w for pair in phrase_links for w in pair})
    index = {w: i for i, w in enumerate(vocab)}
    order = sorted(links, key=lambda p: (index[p[0]], index[p[1]]))
    spun_ids = np.array([index[s] for s, _ in order], dtype=np.int32)
    offsets = np.searchsorted(spun_ids, np.arange(len(vocab) + 1)).astype(np.int64)
    # Every inflected form of every single word, with its frequency, for features and for checking that an
    # inflection is real English.
    forms: set[str] = set()
    for w in vocab:
        forms.add(w)
        if " " in w:
            continue
        for lemmas in getAllLemmas(w).values():
            for lemma in lemmas:
                for infl in getAllInflections(lemma).values():
                    forms.update(infl)
    form_list = sorted(forms)
    phrase_sorted = sorted(phrase_links)
    return {
        "meta": json.dumps(
            {
                "version": 1,
                "sources": list(sources) + (["pps"] if tortured else []),
                "min_zipf": min_zipf,
                "tables": list(tables),
                "tortured_pairs": len(tortured or ()),
            }
        ),
        "vocab": np.array(vocab),
        "offsets": offsets,
        "originals": np.array([index[h] for _, h in order], dtype=np.int32),
        "source_mask": np.array([links[p][0] for p in order], dtype=np.uint8),
        "rank": np.array([links[p][1] for p in order], dtype=np.uint16),
        "phrase_spun": np.array([s for s, _ in phrase_sorted]),
        "phrase_original": np.array([h for _, h in phrase_sorted]),
        "forms": np.array(form_list),
        "form_zipf": np.array([zipf_frequency(f, "en") for f in form_list], dtype=np.float16),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the .npz file to write")
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    parser.add_argument("--min-zipf", type=float, default=1.5, help="drop words rarer than this (Zipf scale)")
    parser.add_argument(
        "--tortured",
        type=Path,
        nargs="?",
        const=TORTURED_DEFAULT,
        default=None,
        help="add the word and phrase links of real spun phrase pairs (training and dev splits only; default file: "
        "../shared/corpora/tortured_phrases.jsonl)",
    )
    parser.add_argument(
        "--tortured-splits",
        nargs="+",
        default=["train", "dev"],
        choices=("train", "dev", "table"),
        help="splits learnt from (table: train less the ranker fold that training.ranker --tortured trains on)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    tortured = None
    if args.tortured:
        from training.tortured import learning_pairs

        tortured = learning_pairs(args.tortured, tuple(args.tortured_splits))
    table = build_table(tuple(args.sources), args.min_zipf, tortured=tortured)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **table)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, {len(table['originals'])} links)")


if __name__ == "__main__":
    main()
