"""The candidate stage: for each word and phrase of a sentence, every original a spinner could have swapped it from.

The table (`candidates.npz`, built by `training.candidates` from the whole Moby, WordNet and MyThes lists and the
phrase tables) maps a spun lemma to the originals whose synonym lists hold it. Here a spun word is read every way
lemminflect knows ("practices": noun plural and verb), each reading's originals are inflected the same way
("trains"), and forms that are not attested English are dropped. Multiword spans (2–3 words) are looked up as
phrases ("final 12 months" → "last year", "Wall Avenue" → "Wall Street") and as multiword thesaurus entries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from normalizer.edits import SPINTAX_RE, Token, spintax_alternatives
from normalizer.inflection import analyses, inflect, match_case
from normalizer.memo import LINKS_MEMO, SPANS_MEMO, Memo

UNKNOWN_RANK = 65535
SOURCE_NAMES = ("moby", "wordnet", "mythes", "pps")
"""Bit k of a link's source mask: the thesauri, and `pps`, word links learnt from real spun phrase pairs of the
Problematic Paper Screener (`training.tortured`)."""
PPS_SOURCE = 1 << SOURCE_NAMES.index("pps")
"""The source bit of links learnt from real spun phrase pairs."""
MIN_FORM_ZIPF = 1.0
"""An inflected candidate must be at least this frequent (Zipf) to count as English: lemminflect happily builds
"dones" from "done"."""


@dataclass(frozen=True)
class Candidate:
    """One possible original for a span of a sentence: tokens [first, last) at characters [start, end)."""

    start: int
    end: int
    first: int
    last: int
    before: str
    after: str
    kind: str
    """`thesaurus`, `phrase`, `spintax`, `seq2seq` (proposed by the seq2seq model alone), `dictionary` (by a
    user-supplied spinner dictionary alone) or `lm` (one of the language model's own top words there alone)."""
    sources: int = 0
    """Bit k set: thesaurus source `SOURCE_NAMES[k]` links the two words."""
    rank: int = UNKNOWN_RANK
    """Where the spun word sits in the original's synonym list, most frequent first (spinners prefer the top)."""
    seq2seq: float = -1.0
    """The seq2seq model's confidence in this very edit when it proposed it, else -1."""
    dictionary: bool = False
    """A user-supplied spinner dictionary says this spinner writes `before` for `after`."""
    dictionary_key: bool = False
    """`before` is itself a key of that dictionary: the spinner would have replaced it had it been the original, so
    its standing in the text says it is a replacement."""


class CandidateTable:
    """The inverted thesaurus and phrase tables (see `training.candidates`)."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self.meta = json.loads(str(arrays["meta"]))
        self.vocab = arrays["vocab"].tolist()
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.offsets = arrays["offsets"]
        self.originals_ids = arrays["originals"]
        self.source_mask = arrays["source_mask"]
        self.rank = arrays["rank"]
        self.phrases: dict[str, list[str]] = {}
        for s, h in zip(arrays["phrase_spun"].tolist(), arrays["phrase_original"].tolist()):
            self.phrases.setdefault(s, []).append(h)
        self.form_zipf = dict(zip(arrays["forms"].tolist(), arrays["form_zipf"].astype(np.float32).tolist()))
        self.max_phrase = max((len(k.split()) for k in self.phrases), default=1)
        self._spans: dict[tuple[str, bool, int], tuple] = Memo(SPANS_MEMO)
        """A surface's candidates (`_originals_of`), by (surface, name, limit): the same wherever it stands."""

    @classmethod
    def load(cls, path: str | Path) -> CandidateTable:
        """Read a table written by `training.candidates` (plain arrays; nothing in it is executed)."""
        with np.load(path, allow_pickle=False) as data:
            return cls({k: data[k] for k in data.files})

    def save(self, path: str | Path) -> None:
        """Write the table as one compressed `.npz` of plain arrays."""
        np.savez_compressed(path, **self.arrays)

    @classmethod
    def from_pairs(cls, links: dict[tuple[str, str], tuple[int, int]], phrases: dict[str, list[str]] | None = None):
        """A table from {(spun, original): (source mask, rank)}: small tables for tests and experiments."""
        phrases = phrases or {}
        vocab = sorted({w for pair in links for w in pair} | {w for k, v in phrases.items() for w in [k, *v]})
        idx = {w: i for i, w in enumerate(vocab)}
        order = sorted(links, key=lambda p: (idx[p[0]], idx[p[1]]))
        spun = np.array([idx[s] for s, _ in order], dtype=np.int32)
        pairs = sorted((s, h) for s, hs in phrases.items() for h in hs)
        from lemminflect import getAllInflections, getAllLemmas

        forms = set(vocab)
        for w in vocab:  # every inflection of every word counts as attested (frequency 4, "common")
            for lemmas in getAllLemmas(w).values():
                for lemma in lemmas:
                    for infl in getAllInflections(lemma).values():
                        forms.update(infl)
        forms = sorted(forms)
        return cls(
            {
                "meta": np.array(json.dumps({"version": 1, "sources": list(SOURCE_NAMES)})),
                "vocab": np.array(vocab),
                "offsets": np.searchsorted(spun, np.arange(len(vocab) + 1)),
                "originals": np.array([idx[h] for _, h in order], dtype=np.int32),
                "source_mask": np.array([links[p][0] for p in order], dtype=np.uint8),
                "rank": np.array([links[p][1] for p in order], dtype=np.uint16),
                "phrase_spun": np.array([s for s, _ in pairs] or [""]),
                "phrase_original": np.array([h for _, h in pairs] or [""]),
                "forms": np.array(forms),
                "form_zipf": np.full(len(forms), 4.0, dtype=np.float16),
            }
        )

    def originals(self, spun: str) -> list[tuple[str, int, int]]:
        """(original, source mask, rank) for every original whose synonym list holds `spun` (a lemma)."""
        i = self.index.get(spun)
        if i is None:
            return []
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return [
            (self.vocab[h], int(m), int(r))
            for h, m, r in zip(self.originals_ids[a:b].tolist(), self.source_mask[a:b], self.rank[a:b])
        ]

    def related(self, spun: str, other: str) -> bool:
        """Whether the table relates two lower-case words at all: either one is an original of the other (any
        reading), or some original is an original of both (two hops: both stand in one synonym list)."""
        (s_lemmas, s_orig), (o_lemmas, o_orig) = self._linked(spun), self._linked(other)
        return bool(s_orig & o_lemmas) or bool(o_orig & s_lemmas) or bool(s_orig & o_orig)

    def _linked(self, word: str) -> tuple[frozenset, frozenset]:
        """(the word's lemmas, every original the table gives for them), cached."""
        cache = self.__dict__.setdefault("_links", Memo(LINKS_MEMO))
        if word not in cache:
            lemmas = frozenset({lemma for lemma, _, _ in analyses(word)} | {word})
            cache[word] = (lemmas, frozenset(o for lemma in lemmas for o, _, _ in self.originals(lemma)))
        return cache[word]

    def zipf(self, form: str) -> float:
        """Zipf frequency of a word or inflected form (a phrase: of its rarest word); 0 when unknown."""
        if " " not in form:
            return self.form_zipf.get(form, 0.0) if form else 0.0
        return min((self.form_zipf.get(w, 0.0) for w in form.split()), default=0.0)

    def propose(self, text: str, tokens: list[Token], max_per_span: int = 400) -> list[Candidate]:
        """Every candidate original for every span of `tokens` (a sentence of `text`), in span order."""
        out: list[Candidate] = []
        sentence_start = True
        for i, tok in enumerate(tokens):
            word = tok.text
            if not word[0].isalpha():
                sentence_start = word in ".!?" or (sentence_start and word in "\"'“‘([")
                continue
            for n in range(min(self.max_phrase, 3, len(tokens) - i), 1, -1):
                span = tokens[i : i + n]
                if any(text[a.end : b.start] != " " for a, b in zip(span, span[1:])):
                    continue
                if not all(t.text[0].isalnum() for t in span):
                    continue
                out += self._span(text, span, i, sentence_start, max_per_span)
            out += self._span(text, [tok], i, sentence_start, max_per_span)
            sentence_start = False
        return out

    def _span(self, text: str, span: list[Token], i: int, sentence_start: bool, limit: int) -> list[Candidate]:
        surface = text[span[0].start : span[-1].end]
        # Mid-sentence capitals are names: only the phrase tables (institutions) apply to them.
        name = surface[0].isupper() and not sentence_start
        key = (surface, name, limit)
        found = self._spans.get(key)
        if found is None:
            found = self._originals_of(surface, name, limit)
            self._spans[key] = found
        a, b = span[0].start, span[-1].end
        n = len(span)
        return [Candidate(a, b, i, i + n, surface, after, kind, mask, rank) for after, kind, mask, rank in found]

    def _originals_of(self, surface: str, name: bool, limit: int) -> tuple[tuple[str, str, int, int], ...]:
        """(original in the surface's case, kind, source mask, rank) of every candidate for a span's surface text,
        best first: what `_span` makes candidates of (the same wherever the surface stands)."""
        lower = surface.lower()
        found: dict[str, tuple[str, int, int]] = {}
        for original in self.phrases.get(lower, []):
            found[original] = ("phrase", 0, 0)
        acronym = " " not in surface and len(surface) > 1 and surface.isupper()  # one word in capitals
        if not name and not acronym:
            words = lower.split()
            head = 0 if len(words) > 1 else -1
            readings = analyses(words[head]) if words[head].isalpha() else ((words[head], None, None),)
            for lemma, upos, tag in readings:
                key_words = list(words)
                key_words[head] = lemma
                key = " ".join(key_words)
                for original, mask, rank in self.originals(key):
                    form = inflect(original, tag, upos) if len(words) == 1 or head == 0 else original
                    if form is None or form == lower or lower in form.split():
                        continue
                    if form != original and self.zipf(form) < MIN_FORM_ZIPF:
                        continue
                    kind, m, r = found.get(form, ("thesaurus", 0, UNKNOWN_RANK))
                    found[form] = (kind, m | mask, min(r, rank))
        ranked = sorted(found.items(), key=lambda kv: (kv[1][0] != "phrase", kv[1][2], kv[0]))[:limit]
        return tuple((match_case(form, surface), kind, mask, rank) for form, (kind, mask, rank) in ranked)


def spintax_candidates(text: str, tokens: list[Token]) -> list[Candidate]:
    """`{a|b|c}` left in the text by a spinner: each alternative (and `{phrase}`: the phrase without braces)."""
    out = []
    starts = {t.start: k for k, t in enumerate(tokens)}
    ends = {t.end: k for k, t in enumerate(tokens)}
    for m in SPINTAX_RE.finditer(text):
        first, last = starts.get(m.start()), ends.get(m.end())
        if first is None or last is None:
            continue
        for alt in spintax_alternatives(m.group()):
            out.append(Candidate(m.start(), m.end(), first, last + 1, m.group(), alt, "spintax"))
    return out
