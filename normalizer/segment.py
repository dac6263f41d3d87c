"""Split documents into model-sized pieces at sentence boundaries, as character spans of the input.

Pieces never cross a line break and never split a word. A sentence longer than `max_words` tokens is cut further,
preferably after a comma or semicolon, otherwise between words; nothing is ever truncated. Everything outside the
spans is whitespace, which the caller copies through unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from normalizer.edits import tokenize

_ABBREV = frozenset(
    "mr mrs ms dr prof st jr sr co corp inc ltd plc vs etc gen gov sen rep lt col capt sgt jan feb mar apr jun "
    "jul aug sep sept oct nov dec mt ft u.s u.k e.g i.e a.m p.m".split()
)
# A sentence ends at . ! or ? (plus closing quotes/brackets) followed by whitespace.
_END_RE = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s)")
_NEXT_RE = re.compile(r"\s*(\S)")
_LAST_WORD_RE = re.compile(r"(\S+)\s*$")
# How far back from a full stop to look for the word it ends (abbreviations are short); bounding it keeps
# sentence splitting linear on a line with many stops and no sentence end.
_LOOKBACK = 32


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, stripped of surrounding whitespace; lines never merge."""
    spans = []
    for line in re.finditer(r"[^\r\n]+", text):
        offset, chunk = line.start(), line.group()
        cuts = [0]
        for m in _END_RE.finditer(chunk):
            word = _LAST_WORD_RE.search(chunk, max(cuts[-1], m.start() - _LOOKBACK), m.start())
            last = word.group(1).lower().rstrip(".") if word else ""
            if chunk[m.start()] == "." and (last in _ABBREV or (len(last) == 1 and last.isalpha())):
                continue
            nxt = _NEXT_RE.match(chunk, m.end())
            if nxt and nxt.group(1).islower():
                continue
            cuts.append(m.end())
        cuts.append(len(chunk))
        for a, b in zip(cuts, cuts[1:]):
            seg = chunk[a:b]
            lead, trail = len(seg) - len(seg.lstrip()), len(seg.rstrip())
            if trail > lead:
                spans.append((offset + a + lead, offset + a + trail))
    return spans


def split_long(text: str, start: int, end: int, max_words: int) -> list[tuple[int, int]]:
    """Cut text[start:end] into spans of at most `max_words` tokens, at a comma/semicolon when one is near."""
    toks = tokenize(text[start:end])
    if len(toks) <= max_words:
        return [(start, end)]
    pieces = []
    i = 0
    while len(toks) - i > max_words:
        cut = i + max_words
        # Prefer to cut right after punctuation in the last half of the window.
        for j in range(i + max_words - 1, i + max_words // 2, -1):
            if toks[j].text in ",;:":
                cut = j + 1
                break
        pieces.append((start + toks[i].start, start + toks[cut - 1].end))
        i = cut
    pieces.append((start + toks[i].start, end))
    return pieces


def segment(text: str, max_words: int = 48) -> list[tuple[int, int]]:
    """Model-sized pieces of `text` as (start, end) character spans, in order, covering every non-space character."""
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1, got {max_words}")
    return [piece for a, b in sentence_spans(text) for piece in split_long(text, a, b, max_words)]


def text_list(texts: Iterable[str]) -> list[str]:
    """`texts` (any iterable of strings, read once) as a list; a lone string or a non-string item is a TypeError."""
    if isinstance(texts, str):
        raise TypeError("restore_batch takes a list of strings; use restore() for one string")
    texts = list(texts)
    for k, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{k}] is {type(t).__name__}, expected str")
    return texts


def word_pieces(texts: list[str], max_words: int = 48) -> list[tuple[int, int, int]]:
    """(document index, start, end) of every piece of every text (see `segment`) that has a letter in it: pieces
    without one (numbers, symbols, emoji) hold no word to swap back and skip the models."""
    return [
        (d, a, b)
        for d, text in enumerate(texts)
        for a, b in segment(text, max_words)
        if any(c.isalpha() for c in text[a:b])
    ]
