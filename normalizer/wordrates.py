"""How often each word stands in clean news, and what a word's absence from a text says about its spinner.

A dictionary spinner (WP Auto Spinner, Turbo Spinner and clones) replaces *every* occurrence of a key: in its
output "said" never appears, however often the original said it. So where a common word is missing from a text that
should hold it several times, the word is likely one of the spinner's keys, and an edit that restores it is likely
right. `key_evidence` turns that into a log-likelihood ratio: the word's count in the text under "a key" (a few
strays, from other keys' alternatives: Poisson with mean `leak` times the expected count) against "not a key" (its
news rate times the text's length, overdispersed as a negative binomial: topics make words rarer or commoner). Only
absence counts: a word seen as often as news uses it says nothing against a thesaurus spinner, which swaps a share
of a word's occurrences and leaves the rest.

`WordRates` are counted on the training documents (`python -m training.word_rates`); they are data (JSON; every
field checked on load, a damaged or oversized file refused).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from normalizer.checkpoint import read_data_file

WORD_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
"""A word as counted here: letters, with inner apostrophes ("don't")."""


def word_counts(texts: Iterable[str]) -> Counter:
    """Lower-cased word counts of `texts` (see `WORD_RE`)."""
    counts: Counter = Counter()
    for text in texts:
        counts.update(w.lower() for w in WORD_RE.findall(text))
    return counts


@dataclass(frozen=True)
class WordRates:
    """Word counts of a clean news corpus: `counts[w]` of `total` words."""

    total: int
    counts: dict[str, int] = field(default_factory=dict)

    FORMAT = "normalizer-word-rates"
    MAX_BYTES = 64 * 2**20
    MAX_WORDS = 2_000_000

    def rate(self, word: str) -> float:
        """How often `word` (lower case) stands in clean news, per word; 0 for a word the corpus never has."""
        return self.counts.get(word, 0) / self.total

    def save(self, path: str | Path) -> None:
        rows = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        data = {"format": self.FORMAT, "version": 1, "total": self.total, "counts": dict(rows)}
        Path(path).write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> WordRates:
        """Read a saved table; a damaged or foreign file is a ValueError naming it."""
        data = read_data_file(path, cls.MAX_BYTES, "a word-rate table")
        if not isinstance(data, dict) or data.get("format") != cls.FORMAT or data.get("version") != 1:
            raise ValueError(f"{path}: not a word-rate table (format must be {cls.FORMAT!r} version 1)")
        total, counts = data.get("total"), data.get("counts")
        if not _count(total) or total < 1:
            raise ValueError(f"{path}: not a usable word-rate table (total must be an integer >= 1)")
        if not isinstance(counts, dict) or len(counts) > cls.MAX_WORDS:
            raise ValueError(f"{path}: not a usable word-rate table (counts must map at most {cls.MAX_WORDS:,} words)")
        for word, n in counts.items():
            if not _count(n) or not 1 <= n <= total:
                raise ValueError(f"{path}: not a usable word-rate table (count of {word[:40]!r}: {str(n)[:40]})")
        return cls(total, counts)


def _count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _neg_binomial(k: int, mean: float, r: float) -> float:
    """log P(k) of a negative binomial with this mean and dispersion `r` (Poisson as r grows)."""
    return (
        math.lgamma(k + r)
        - math.lgamma(r)
        - math.lgamma(k + 1)
        + r * math.log(r / (r + mean))
        + k * math.log(mean / (r + mean))
    )


def key_evidence(
    observed: int,
    expected: float,
    leak: float = 0.1,
    dispersion: float = 2.0,
    spun: tuple[int, float] | None = None,
    share: float = 0.5,
) -> float:
    """Log-likelihood ratio, at least 0, that a word seen `observed` times where clean news would have it
    `expected` times is a dictionary spinner's key (see the module's docstring). With `spun` (the replacing word's
    count and expected count), also that the replacing word is the key's alternative: where it is, it stands more
    often than news has it, by about `share` of the key's expected count; where it stands no more often than news
    has it, the ratio falls (a common key is a candidate for many words, and only its alternatives are right). That
    term only ever lowers the ratio: a rare word standing once is no sign of a spinner."""
    if expected <= 0:
        return 0.0
    mu = max(leak * expected, 1e-3)
    llr = observed * math.log(mu) - mu - math.lgamma(observed + 1) - _neg_binomial(observed, expected, dispersion)
    if spun is not None:
        n, base = spun[0], max(spun[1], 0.1)
        llr += min(0.0, _neg_binomial(n, base + share * expected, dispersion) - _neg_binomial(n, base, dispersion))
    return max(0.0, llr)


def restored_word(after: str) -> str | None:
    """The one word an edit restores (lower case), or None when it restores several or none."""
    found = WORD_RE.findall(after)
    return found[0].lower() if len(found) == 1 and found[0] == after.strip() else None
