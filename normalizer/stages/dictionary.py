"""User-supplied spinner dictionaries: the `key|alt|alt` files that dictionary spinners apply, read as data and
inverted into candidates ("this spinner writes alt for key", so where the text says alt, key may be the original).

Formats, one entry a line (UTF-8, a byte-order mark and CRLF line ends are fine):

    said|mentioned|stated          key|alternative|alternative ...
    {according to|in accordance with|as per}   a spintax group: every member stands for every other

A dictionary is data, never code: nothing in it is evaluated. A file over `MAX_BYTES`, or one that is not text
(NUL bytes, invalid UTF-8), is refused whole with a `DictionaryError`; a line that is not an entry (no `|`, an
empty side, over `MAX_ENTRY_CHARS`, control characters) is skipped, and the skipped lines are counted in one warning.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from normalizer.edits import Token
from normalizer.inflection import match_case
from normalizer.stages.candidates import Candidate

logger = logging.getLogger(__name__)

MAX_BYTES = 64 * 1024 * 1024
"""Largest dictionary file read (real spinners' dictionaries are about 15,000 lines, well under 1 MB)."""
MAX_ENTRY_CHARS = 1000
"""Longest line kept."""
MAX_WORDS = 5
"""Longest key or alternative, in words (the guard's longest edit)."""
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACE_RE = re.compile(r"\s+")


class DictionaryError(ValueError):
    """A dictionary file that cannot be used at all (too large, not text)."""


@dataclass
class SpinnerDictionary:
    """Inverted spinner dictionaries: for each alternative (lower case, single-spaced), the keys it replaces."""

    originals: dict[str, list[str]] = field(default_factory=dict)
    """alternative -> keys, in file order."""
    alternatives: dict[str, int] = field(default_factory=dict)
    """key (lower case) -> how many alternatives the dictionaries give it."""
    skipped: int = 0
    """Lines that were not entries."""

    @classmethod
    def from_lines(cls, lines, source: str = "<lines>") -> SpinnerDictionary:
        d = cls()
        d.add_lines(lines, source)
        return d

    @classmethod
    def load(cls, paths) -> SpinnerDictionary:
        """Read one or more dictionary files (see the module's docstring); OSError if one cannot be read."""
        d = cls()
        for path in [paths] if isinstance(paths, (str, Path)) else paths:
            d.add_file(path)
        return d

    def add_file(self, path: str | Path) -> None:
        path = Path(path)
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise DictionaryError(f"{path}: {size} bytes, over the {MAX_BYTES}-byte limit for a spinner dictionary")
        data = path.read_bytes()
        if b"\x00" in data:
            raise DictionaryError(f"{path}: holds NUL bytes; not a text dictionary")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise DictionaryError(f"{path}: not UTF-8 text (byte {e.start})") from None
        self.add_lines(text.splitlines(), str(path))

    def add_lines(self, lines, source: str = "<lines>") -> None:
        skipped = 0
        for line in lines:
            entry = _parse(line)
            if entry is None:
                skipped += bool(line.strip())
                continue
            for key, alts in entry:
                self.alternatives[key] = self.alternatives.get(key, 0) + len(alts)
                for alt in alts:
                    keys = self.originals.setdefault(alt, [])
                    if key not in keys:
                        keys.append(key)
        if skipped:
            logger.warning("%s: %d lines are not dictionary entries (key|alt|alt or {a|b}); skipped", source, skipped)
        self.skipped += skipped

    def __len__(self) -> int:
        return len(self.originals)

    def is_key(self, words: str) -> bool:
        """Whether `words` (any case) is a key of the dictionaries: a spinner would have replaced it."""
        return words.lower() in self.alternatives

    def propose(self, text: str, tokens: list[Token]) -> list[Candidate]:
        """Every span of `tokens` (up to `MAX_WORDS` words, one space between them) that is an alternative of some
        key, with that key as a candidate original (its first letter's case copied, as spinners do)."""
        out = []
        for i in range(len(tokens)):
            if not tokens[i].text[0].isalnum():
                continue
            for n in range(1, min(MAX_WORDS, len(tokens) - i) + 1):
                span = tokens[i : i + n]
                if n > 1 and (text[span[-2].end : span[-1].start] != " " or not span[-1].text[0].isalnum()):
                    break
                surface = text[span[0].start : span[-1].end]
                standing_key = self.is_key(surface)
                for key in self.originals.get(surface.lower(), ()):
                    after = match_case(key, surface)
                    if after != surface:
                        out.append(
                            Candidate(
                                span[0].start, span[-1].end, i, i + n, surface, after, "dictionary",
                                dictionary=True, dictionary_key=standing_key,
                            )
                        )  # fmt: skip
        return out


def _parse(line: str) -> list[tuple[str, list[str]]] | None:
    """(key, alternatives) pairs of one line, or None when it is not an entry."""
    line = line.strip()
    if not line or len(line) > MAX_ENTRY_CHARS or _CONTROL_RE.search(line) or "|" not in line:
        return None
    group = line.startswith("{") and line.endswith("}")
    parts = [_SPACE_RE.sub(" ", p.strip()).lower() for p in (line[1:-1] if group else line).split("|")]
    if not group and not parts[0]:
        return None  # "|alt": no key
    parts = list(dict.fromkeys(p for p in parts if p))
    if len(parts) < 2 or any(len(p.split()) > MAX_WORDS or "{" in p or "}" in p for p in parts):
        return None
    if group:
        return [(p, [q for q in parts if q != p]) for p in parts]
    return [(parts[0], parts[1:])]
