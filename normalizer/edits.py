"""Word tokens with offsets, the edit-sequence target format, and the faithfulness guard.

The model never rewrites a sentence; it emits a short list of edits, `before<to> after<sep> before<to> after`,
empty when the sentence is clean. An edit is applied only where its `before` words occur in the input (searched
left to right from the previous edit), so a wrong prediction can at worst swap a few words, never garble the rest.
Training builds its targets with `make_target` and inference reads them with `parse_target` and `locate_edits`,
so both sides share one definition of the format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TO = "<to>"
SEP = "<sep>"
SPECIAL_SYMBOLS = (TO, SEP)

# Words (with inner hyphens/apostrophes) or single non-space, non-word characters.
_TOKEN_RE = re.compile(r"\w+(?:[-'’]\w+)*|[^\w\s]", re.UNICODE)

URL_RE = re.compile(r"(?:https?://|www\.)\S+|\S+@\S+\.\w+|\b\w+\.(?:com|org|net|gov|edu|co\.uk)\b", re.I)
PROTECTED_RE = re.compile(
    "|".join(
        (
            URL_RE.pattern,
            r"(?<![\w@])@\w+",  # a handle
            r"(?<![\w&])#\w+",  # a hashtag
            r"(?<![\w/])(?:~|\.{1,2})?/[\w.+-]+(?:/[\w.+-]*)+",  # a Unix path (two or more parts)
            r"\b[A-Za-z]:\\\S+",  # a Windows path
            r"`[^`\n]+`",  # a code span
        )
    ),
    re.I,
)
"""Text no edit may touch: URLs, e-mail addresses, handles, hashtags, file paths and code spans."""
_DIGIT_RE = re.compile(r"\d")
_CURRENCY_RE = re.compile(r"[$€£¥₹]")


@dataclass(frozen=True)
class Token:
    """A word or punctuation mark and its character span in the text it came from."""

    text: str
    start: int
    end: int


def word_before(text: str, start: int) -> str:
    """The word token that ends last before `start` in `text` ("" if none)."""
    found = _TOKEN_RE.findall(text[max(0, start - 40) : start])
    return found[-1] if found else ""


def protected_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every URL, e-mail address, handle, hashtag, file path or code span in `text`."""
    return [m.span() for m in PROTECTED_RE.finditer(text)]


def tokenize(text: str) -> list[Token]:
    """Split `text` into word and punctuation tokens with character offsets."""
    return [Token(m.group(), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]


def words(text: str) -> list[str]:
    """The token strings of `text` (see `tokenize`)."""
    return _TOKEN_RE.findall(text)


@dataclass(frozen=True)
class Span:
    """A proposed edit: the words of the input (`before`) and what should stand there (`after`)."""

    before: str
    after: str


def make_target(spans: list[Span]) -> str:
    """Serialise edits, in input order, into the model's target string (empty when there are none).

    Symbols are glued to the word before them, so SentencePiece spends one piece on each and the next word keeps
    its word-initial piece: `mentioned<to> said<sep> inside<to> in`.
    """
    return f"{SEP} ".join(f"{s.before}{TO} {s.after}" for s in spans)


def parse_target(target: str) -> list[Span]:
    """Parse a model output into edits; malformed pieces (no `<to>`, empty `before`) are dropped."""
    spans = []
    for piece in target.split(SEP):
        if TO not in piece:
            continue
        before, _, after = piece.partition(TO)
        before, after = before.strip(), after.replace(TO, " ").strip()
        if before:
            spans.append(Span(before, after))
    return spans


def _find(tokens: list[Token], needle: list[str], start: int) -> int:
    """Index of the first run of `tokens` from `start` equal to `needle`, or -1."""
    n = len(needle)
    for i in range(start, len(tokens) - n + 1):
        if all(tokens[i + k].text == needle[k] for k in range(n)):
            return i
    return -1


def disambiguate(tokens: list[Token], start: int, first: int, last: int, original: list[str]) -> tuple[int, list[str]]:
    """Widen the edit over tokens[first:last] leftwards until its `before` is the first match after `start`.

    Returns the new first index and the `after` words widened the same way (the context words are unchanged).
    """
    after = list(original)
    while first > start:
        needle = [t.text for t in tokens[first:last]]
        if _find(tokens, needle, start) == first:
            break
        first -= 1
        after.insert(0, tokens[first].text)
    return first, after


@dataclass(frozen=True)
class Edit:
    """A word swap in the input: `text[start:end]` (== `before`) becomes `after`."""

    start: int
    end: int
    before: str
    after: str
    confidence: float
    """How sure the system is of this edit, 0 to 1: the seq2seq model's probability of it, or the pipeline
    ranker's probability that it restores the original."""
    scores: tuple[tuple[str, float], ...] = ()
    """The score parts behind `confidence` (pipeline: language-model gain, channel evidence, ...), by name."""


def edit_json(edit) -> dict:
    """An edit as a JSON-ready dict (score parts as an object, left out when there are none)."""
    obj = {k: v for k, v in edit.__dict__.items() if k != "scores"}
    if edit.scores:
        obj["scores"] = {name: round(value, 4) for name, value in edit.scores}
    return obj


def locate_edits(text: str, spans: list[Span], confidences: list[float] | None = None) -> list[Edit]:
    """Anchor edits in `text`, left to right; an edit whose `before` is not found after the previous one is dropped.
    `confidences[k]` (default 1.0) is the confidence of `spans[k]`.

    The replacement keeps the input's own whitespace style: `after` words are joined with single spaces, except that
    punctuation hugs the word before it as it did in the input.
    """
    tokens = tokenize(text)
    cursor = 0
    out = []
    for index, span in enumerate(spans):
        needle = words(span.before)
        if not needle:
            continue
        i = _find(tokens, needle, cursor)
        if i < 0:
            continue
        j = i + len(needle)
        start, end = tokens[i].start, tokens[j - 1].end
        conf = confidences[index] if confidences is not None else 1.0
        out.append(Edit(start, end, text[start:end], detokenize(words(span.after)), conf))
        cursor = j
    return out


def splice(text: str, edits) -> str:
    """`text` with each edit's [start, end) replaced by its `after`; edits in order and not overlapping."""
    out, pos = [], 0
    for e in edits:
        out += [text[pos : e.start], e.after]
        pos = e.end
    out.append(text[pos:])
    return "".join(out)


def map_back(start: int, end: int, repairs: list[tuple[int, int, int, int]]) -> tuple[int, int] | None:
    """A span of a repaired text, in the offsets of the text before the repairs; None where it overlaps one.

    `repairs` holds (old_start, old_end, new_start, new_end) of each applied edit, in order."""
    shift = 0
    for old_start, old_end, new_start, new_end in repairs:
        if end <= new_start:
            break
        if start < new_end:
            return None
        shift = old_end - new_end
    return start + shift, end + shift


Focus = list[tuple[int, int]]
"""Character ranges of a text, in order: where an edit may stand (`inside`)."""


def unrepaired(text: str, repairs: list[tuple[int, int, int, int]]) -> Focus:
    """The ranges of a repaired `text` between its repairs (`apply_with_repairs`): where an edit maps back
    (`map_back` is not None)."""
    out, pos = [], 0
    for _, _, new_start, new_end in repairs:
        out.append((pos, new_start))
        pos = new_end
    out.append((pos, len(text)))
    return out


def inside(edit, ranges: Focus) -> bool:
    """Whether `edit` (anything with `start` and `end`) lies within one of `ranges`."""
    return any(a <= edit.start and edit.end <= b for a, b in ranges)


def apply_with_repairs(text: str, edits) -> tuple[str, list[tuple[int, int, int, int]]]:
    """`splice(text, edits)` and, per edit, (old_start, old_end, new_start, new_end) for `map_back`."""
    out, pos, repairs, length = [], 0, [], 0
    for e in edits:
        out.append(text[pos : e.start])
        length += e.start - pos
        out.append(e.after)
        repairs.append((e.start, e.end, length, length + len(e.after)))
        length += len(e.after)
        pos = e.end
    out.append(text[pos:])
    return "".join(out), repairs


_NO_SPACE_BEFORE = set(".,;:!?%)]}’”'")
_NO_SPACE_AFTER = set("([{‘“$£€")


def detokenize(tokens: list[str]) -> str:
    """Join tokens with spaces, except around punctuation that hugs its neighbour."""
    out = ""
    for tok in tokens:
        if out and not (tok in _NO_SPACE_BEFORE or out[-1] in _NO_SPACE_AFTER or tok == "-" or out.endswith("-")):
            out += " "
        out += tok
    return out


@dataclass(frozen=True)
class GuardConfig:
    """Limits on what an accepted edit may change."""

    max_span_words: int = 5
    """Longest `before` or `after`, in tokens."""
    max_length_change: int = 2
    """Largest difference in token count between `before` and `after` (bounds insertion and deletion)."""


_DATE_WORDS = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday january february march april june july august "
    "september october november december".split()
)
# Quantities that say the same thing as a unit word: spinners write "final 12 months" for "last year", and undoing
# that changes no number. Keys are lower-cased token tuples, values the unit word they stand for.
UNIT_EQUIVALENTS = {
    ("12", "months"): "year",
    ("twelve", "months"): "year",
    ("7", "days"): "week",
    ("seven", "days"): "week",
    ("24", "hours"): "day",
    ("60", "minutes"): "hour",
}
# The unit word must follow one of these in the restored text: "last year", "a year ago", "this week". A bare
# "year on year" for "12 months on 12 months" is refused, since a writer may well have meant twelve months.
_UNIT_DETERMINERS = frozenset("last next this past previous a one every each per that the coming".split())


def _unit_restored(before: list[str], after: list[str], left: str = "") -> bool:
    """Whether `after` writes each quantity of `before` that it drops as its unit word after a determiner (in
    `after`, or `left`, the word just before the edit, when the unit word comes first)."""
    b, a = [w.lower() for w in before], [left.lower(), *(w.lower() for w in after)]
    for i in range(len(b)):
        unit = next((UNIT_EQUIVALENTS[k] for k in UNIT_EQUIVALENTS if tuple(b[i : i + len(k)]) == k), None)
        if unit is None:
            continue
        if not any(w == unit and j > 1 and a[j - 1] in _UNIT_DETERMINERS for j, w in enumerate(a)) and not (
            a[1:2] == [unit] and a[0] in _UNIT_DETERMINERS
        ):
            return False
    return True


def _protected(s: str) -> list[str]:
    """Numbers, dates, URLs, e-mail addresses and currency amounts in `s`: content an edit must never change."""
    lowered, toks, i = [w.lower() for w in words(s)], [], 0
    while i < len(lowered):
        unit = next((u for u in UNIT_EQUIVALENTS if tuple(lowered[i : i + len(u)]) == u), None)
        if unit:
            i += len(unit)
        else:
            toks.append(lowered[i])
            i += 1
    found = sorted(URL_RE.findall(s))
    found += sorted(w for w in toks if _DIGIT_RE.search(w) or _CURRENCY_RE.search(w) or w in _DATE_WORDS)
    return found


SPINTAX_RE = re.compile(r"\{([^{}\n]*)\}")
"""A spintax group `{a|b|c}` left in the text by a spinner's template."""


def spintax_alternatives(group: str) -> list[str]:
    """The distinct, non-empty alternatives of one spintax group `{a|b}` (a `{phrase}` has one)."""
    m = SPINTAX_RE.fullmatch(group)
    return [a for a in dict.fromkeys(x.strip() for x in m.group(1).split("|")) if a] if m else []


def guard_reason(before: str, after: str, config: GuardConfig = GuardConfig(), left: str = "") -> str | None:
    """Why the edit `before` → `after` is not a faithful word swap, or None when it is; `left` is the word just
    before the edit in its text (for "this 7 days" → "this week"). Resolving a spintax group to one of its own
    alternatives is faithful: the group is template residue."""
    if after in spintax_alternatives(before):
        return None
    b, a = words(before), words(after)
    if b == a:
        return "no change"
    if not a:
        return "deletes content"
    if len(b) > config.max_span_words or len(a) > config.max_span_words:
        return "span too long"
    if abs(len(b) - len(a)) > config.max_length_change:
        return "inserts or drops content"
    if _protected(before) != _protected(after) or not _unit_restored(b, a, left):
        return "changes a number, date, URL, e-mail or amount"
    return None
