"""Count how often each word stands in clean news: the training documents only (no dev or test document is read).

    python -m training.word_rates --out models/default/word_rates.json

The table (`normalizer.wordrates.WordRates`) tells the document prior how often a text of a given length should hold
a word; a word a spun text lacks although news would hold it several times is likely a dictionary spinner's key.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from normalizer.wordrates import WordRates, word_counts
from training.corpus import load_splits

logger = logging.getLogger(__name__)


def count_rates(texts, min_count: int = 2) -> WordRates:
    """The word-rate table of `texts`, words seen fewer than `min_count` times left out (their rate reads as 0)."""
    counts = word_counts(texts)
    total = sum(counts.values())
    if not total:
        raise ValueError("no words to count")
    return WordRates(total, {w: n for w, n in counts.items() if n >= min_count})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", nargs="*", default=None, help="corpora (default: the shared news corpora)")
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    docs = load_splits(args.sources)["train"]
    rates = count_rates((d.text for d in docs), args.min_count)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rates.save(args.out)
    logger.info(
        "%d training documents, %d words, %d distinct kept -> %s", len(docs), rates.total, len(rates.counts), args.out
    )


if __name__ == "__main__":
    main()
