"""The one contract every way of restoring shares: documents in, `Restoration`s out.

An engine (`normalizer.engines`) implements only `propose(pieces)`: for each sentence piece, the edits it would
make, each with a confidence, in piece offsets. Everything else lives here, once: cutting documents into pieces
(`normalizer.segment`, then halving a piece that is too long for the engine's model), the decision (guard, threshold,
overlaps, and which refusals are reported), a second pass over repaired pieces, re-basing piece offsets onto the
document, and the public calls `normalize`, `normalize_batch`, `restore` and `restore_batch`.

    restorer.restore_batch(docs, threshold=0.5, batch_size=16, progress=True)
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from normalizer.checkpoint import read_data_file
from normalizer.edits import (
    Edit,
    Focus,
    GuardConfig,
    apply_with_repairs,
    guard_reason,
    inside,
    map_back,
    protected_spans,
    splice,
    tokenize,
    unrepaired,
    word_before,
)
from normalizer.segment import text_list, word_pieces
from normalizer.wordrates import WordRates, key_evidence, restored_word, word_counts


@dataclass(frozen=True)
class Rejection:
    """An edit an engine proposed but the restorer did not apply, and why."""

    edit: Edit
    reason: str


@dataclass(frozen=True)
class Restoration:
    """The result of restoring one document."""

    text: str
    """The restored document."""
    edits: list[Edit] = field(default_factory=list)
    """Applied edits, in order, with offsets into the input."""
    rejected: list[Rejection] = field(default_factory=list)
    """Proposed edits that were not applied (the guard, low confidence, an overlap with a surer edit)."""
    spin_score: float = 0.0
    """Share of the input's word tokens that were restored: 0 for clean text."""
    source: str = field(default="", repr=False)
    """The input document (edit offsets point into it)."""

    @classmethod
    def of(cls, text: str, edits: list[Edit], rejected: list[Rejection]) -> Restoration:
        """The restoration of `text` by `edits` (in order, not overlapping), with its spin score."""
        n_words = sum(1 for t in tokenize(text) if t.text[0].isalnum())
        n_edited = sum(1 for e in edits for t in tokenize(e.before) if t.text[0].isalnum())
        return cls(splice(text, edits), edits, rejected, n_edited / n_words if n_words else 0.0, text)


@dataclass(frozen=True)
class DocumentPrior:
    """How often an engine's proposals are right differs from document to document: a clean one has no swaps, a
    real spinner's has one in four words. This re-estimates that rate for each document from its own proposals and
    moves every proposal's confidence to it, the prior-shift EM of Saerens, Latinne & Decaestecker (2002, "Adjusting
    the outputs of a classifier to new a priori probabilities"): one latent rate, started at and pulled towards
    `rate` (the rate the engine's confidences are calibrated for) by `strength` pseudo-proposals, the log-odds shift
    bounded by `max_shift`. Confidences of 0 or 1 (spintax) are left as they are and not counted."""

    rate: float = 0.05
    strength: float = 20.0
    max_shift: float = 3.0
    iterations: int = 30
    pair_strength: float | None = None
    """With a value, a swap the document proposes again and again is judged by its other occurrences too (a real
    spinner writes the same alternative for a word every time): each proposal's rate is that of the same swap
    (before -> after, any case) elsewhere in the document, pulled towards the document's rate by this many
    pseudo-occurrences; None: off."""
    key_weight: float | None = None
    """With a value, an edit that restores a word its document lacks where clean news would hold it several times
    (a dictionary spinner replaces every occurrence of a key) gains this many times the log-likelihood ratio of
    `normalizer.wordrates.key_evidence` in log-odds, at most `key_max`; it needs the restorer's `word_rates`, and
    an adapted corpus's counts join a document's own where the document looks spun. None: off."""
    key_max: float = 3.0
    key_pairs: bool = True
    """Whether the replacing word's excess counts too (see `normalizer.wordrates.key_evidence`)."""
    key_leak: float = 0.1
    key_dispersion: float = 2.0

    def __post_init__(self):
        if not 0.0 < self.rate < 1.0 or self.strength < 0 or self.max_shift < 0 or self.iterations < 1:
            raise ValueError(f"rate in (0, 1), strength and max_shift >= 0, iterations >= 1: {self}")
        if self.pair_strength is not None and self.pair_strength <= 0:
            raise ValueError(f"pair_strength must be > 0 or None, got {self.pair_strength}")
        if self.key_weight is not None and not (self.key_weight > 0 and self.key_max >= 0):
            raise ValueError(f"key_weight must be > 0 or None and key_max >= 0: {self}")
        if not 0.0 < self.key_leak < 1.0 or not self.key_dispersion > 0:
            raise ValueError(f"key_leak in (0, 1) and key_dispersion > 0: {self}")

    def shift(self, confidences: Iterable[float], target: float | None = None) -> float:
        """The log-odds shift for a document whose proposals have these confidences (0 for none); the estimate is
        pulled towards `target` (default `rate`; an adapted corpus's own rate, see `Restorer.adapt`)."""
        logits = [_logit(c) for c in confidences if 0.0 < c < 1.0]
        target = self.rate if target is None else target
        if not logits:
            return max(-self.max_shift, min(self.max_shift, _logit(target) - _logit(self.rate)))
        base, shift = _logit(self.rate), 0.0
        for _ in range(self.iterations):
            expected = sum(_sigmoid(x + shift) for x in logits) + self.strength * target
            new = max(-self.max_shift, min(self.max_shift, _logit(expected / (len(logits) + self.strength)) - base))
            if abs(new - shift) < 1e-4:
                return new
            shift = new
        return shift

    def estimate(
        self,
        edits: Iterable[Edit],
        corpus: CorpusEvidence | None = None,
        fingerprint: str = "",
        words: Counter | None = None,
        rates: WordRates | None = None,
    ) -> DocumentEvidence:
        """What one document's proposals (all its pieces') say: its shift and, with `pair_strength`, each swap's
        summed shifted confidence and count; with `corpus` (an adapted restorer's), the corpus's rate is the
        document's starting point and its swaps' counts join the document's own (less the document's share when
        `fingerprint` says the corpus was read from it). `words`: the document's word counts, and `rates` clean
        news's, for `key_weight`."""
        counted = evidence_edits(edits)
        shift = self.shift((e.confidence for e in counted), corpus.rate if corpus is not None else None)
        pairs = swap_sums(counted, shift) if self.pair_strength is not None else {}
        inside = corpus is not None and fingerprint in corpus.documents
        own = swap_sums(counted, corpus.shift) if inside else {}
        if self.key_weight is None or rates is None:
            return DocumentEvidence(self, shift, pairs, corpus, own)
        with_corpus = corpus is not None and corpus.total_words > 0 and shift > 0
        # The corpus's counts hold the document's own when it was read from it.
        words = Counter() if (with_corpus and inside) or words is None else words
        total = sum(words.values()) + (corpus.total_words if with_corpus else 0)
        return DocumentEvidence(self, shift, pairs, corpus, own, words, rates, total, with_corpus)


@dataclass(frozen=True)
class CorpusEvidence:
    """What a corpus's proposals say about its spinner (`Restorer.adapt`): how often they are right across it
    (`rate`, the prior-shift estimate over all its proposals, and the log-odds `shift` that gives it) and, per swap
    (before -> after, any case), its summed shifted confidence and count: a swap the spinner makes everywhere is
    proposed, and trusted, everywhere. `documents`: fingerprints of the documents it was read from."""

    rate: float
    shift: float
    pairs: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)
    documents: frozenset[str] = frozenset()
    words: dict[str, int] = field(default_factory=dict)
    """Lower-cased word counts of the documents read (`normalizer.wordrates.word_counts`), for `key_weight`."""

    FORMAT = "normalizer-corpus-evidence"
    MAX_PAIRS = 2_000_000
    MAX_BYTES = 512 * 2**20

    def save(self, path: str | Path) -> None:
        """As JSON (data only: `load` checks every field)."""
        data = {
            "format": self.FORMAT,
            "version": 2,
            "rate": self.rate,
            "shift": self.shift,
            "documents": sorted(self.documents),
            "pairs": [[b, a, round(total, 6), n] for (b, a), (total, n) in sorted(self.pairs.items())],
            "words": dict(sorted(self.words.items())),
        }
        Path(path).write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> CorpusEvidence:
        """Read a saved estimate; a damaged or foreign file is a ValueError naming it."""
        data = read_data_file(path, cls.MAX_BYTES, "a saved corpus estimate")

        def bad(why: str) -> ValueError:
            return ValueError(f"{path}: not a usable corpus estimate ({why})")

        if not isinstance(data, dict) or data.get("format") != cls.FORMAT or data.get("version") not in (1, 2):
            raise bad(f"format must be {cls.FORMAT!r} version 1 or 2")
        rate, shift, docs, rows = (data.get(k) for k in ("rate", "shift", "documents", "pairs"))
        if not _number(rate) or not 0.0 < rate < 1.0 or not _number(shift):
            raise bad("rate must lie in (0, 1) and shift be a number")
        if not isinstance(docs, list) or not all(isinstance(d, str) for d in docs):
            raise bad("documents must be a list of fingerprints")
        if not isinstance(rows, list) or len(rows) > cls.MAX_PAIRS:
            raise bad(f"pairs must be a list of at most {cls.MAX_PAIRS:,}")
        pairs = {}
        for row in rows:
            ok = isinstance(row, list) and len(row) == 4 and all(isinstance(x, str) for x in row[:2])
            if not ok or not _number(row[2]) or not isinstance(row[3], int) or row[3] < 1 or not 0 <= row[2] <= row[3]:
                raise bad(f"a pair row must be [before, after, total, count], got {str(row)[:80]}")
            pairs[(row[0], row[1])] = (float(row[2]), row[3])
        words = data.get("words", {})
        if not isinstance(words, dict) or len(words) > cls.MAX_PAIRS:
            raise bad(f"words must map at most {cls.MAX_PAIRS:,} words to counts")
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in words.values()):
            raise bad("every word count must be an integer >= 1")
        return cls(float(rate), float(shift), pairs, frozenset(docs), words)

    @cached_property
    def total_words(self) -> int:
        return sum(self.words.values())


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def fingerprint(text: str) -> str:
    """A document's fingerprint (`CorpusEvidence.documents`)."""
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]


@dataclass(frozen=True)
class DocumentEvidence:
    """One document's `DocumentPrior` estimate, applied to its proposals (those it was estimated from, and those a
    second pass makes)."""

    prior: DocumentPrior
    shift: float
    pairs: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)
    corpus: CorpusEvidence | None = None
    own: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)
    """This document's share of `corpus.pairs` (left out: the document speaks for itself in `pairs`). The corpus's
    swaps count only in a document whose own shift is positive (it looks spun): in a feed that mixes clean and spun
    documents, what the spinner does is no evidence against a clean document's words."""
    words: Counter | None = None
    """The word counts a restored word's absence is read from (`key_weight`; None: off), of `total` words."""
    rates: WordRates | None = None
    total: int = 0
    key_corpus: bool = False
    """Whether `corpus.words` join `words` (an adapted restorer, a document that looks spun)."""

    def key_shift(self, before: str, after: str) -> float:
        """The log-odds an edit restoring `after` for `before` gains from the first word's absence and the other's
        excess (`DocumentPrior.key_weight`)."""
        word = restored_word(after)
        if self.words is None or self.rates is None or word is None:
            return 0.0
        p = self.prior
        spun = restored_word(before)
        llr = key_evidence(
            self.count(word),
            self.total * self.rates.rate(word),
            p.key_leak,
            p.key_dispersion,
            (self.count(spun), self.total * self.rates.rate(spun)) if p.key_pairs and spun is not None else None,
        )
        return min(p.key_max, p.key_weight * llr)

    def count(self, word: str) -> int:
        """`word`'s count in the document (and the adapted corpus, where it joins)."""
        return self.words.get(word, 0) + (self.corpus.words.get(word, 0) if self.key_corpus else 0)

    def apply(self, edits: list[Edit], counted: bool = True) -> list[Edit]:
        """`edits` with confidences moved by the document's shift and, with pair evidence, by the same swap's rate
        elsewhere in the document (`counted`: these edits are among those estimated from, so each leaves itself
        out). The shifts join each edit's scores."""
        out = []
        rate = _sigmoid(_logit(self.prior.rate) + self.shift)
        for e in edits:
            if e.confidence in (0.0, 1.0):
                out.append(e)
                continue
            x = _logit(e.confidence) + self.shift
            scores = (*e.scores, ("document_shift", self.shift))
            if self.prior.pair_strength is not None and e.before != e.after:
                total, n = self.pairs.get(_pair(e), (0.0, 0))
                if counted and n:
                    total, n = total - _sigmoid(x), n - 1
                if self.corpus is not None and self.shift > 0 and _pair(e) in self.corpus.pairs:
                    (c_total, c_n), (o_total, o_n) = self.corpus.pairs[_pair(e)], self.own.get(_pair(e), (0.0, 0))
                    total, n = total + max(c_total - o_total, 0.0), n + max(c_n - o_n, 0)
                k = self.prior.pair_strength
                bound = self.prior.max_shift
                pair = max(-bound, min(bound, _logit((total + k * rate) / (n + k)) - _logit(rate)))
                x += pair
                scores = (*scores, ("pair_shift", pair))
            if self.words is not None and e.before.lower() != e.after.lower():
                key = self.key_shift(e.before, e.after)
                x += key
                scores = (*scores, ("key_shift", key))
            out.append(replace(e, confidence=_sigmoid(x), scores=scores))
        return out


def evidence_edits(edits: Iterable[Edit]) -> list[Edit]:
    """The proposals that count as evidence of a spin rate: a real change, at a confidence strictly between 0 and 1
    (spintax, at 1, is template residue, not a spinner's choice)."""
    return [e for e in edits if 0.0 < e.confidence < 1.0 and e.before != e.after]


def _pair(e: Edit) -> tuple[str, str]:
    return (e.before.lower(), e.after.lower())


def swap_sums(edits: Iterable[Edit], shift: float) -> dict[tuple[str, str], tuple[float, int]]:
    """Per swap (before -> after, any case), the summed confidence of `edits` moved by `shift`, and their count."""
    out: dict[tuple[str, str], tuple[float, int]] = {}
    for e in edits:
        total, n = out.get(_pair(e), (0.0, 0))
        out[_pair(e)] = (total + _sigmoid(_logit(e.confidence) + shift), n + 1)
    return out


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 50.0), -50.0)))


def check_threshold(threshold: float, name: str = "threshold") -> float:
    """`threshold` as a float in [0, 1]; a ValueError naming the value otherwise (NaN included)."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or math.isnan(threshold):
        raise ValueError(f"{name} must be a number in [0, 1], got {threshold!r}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {threshold!r}")
    return float(threshold)


def decide(
    proposals: list[Edit], threshold: float, guard: GuardConfig = GuardConfig(), piece: str = ""
) -> tuple[list[Edit], list[Rejection]]:
    """Which of one piece's proposals to apply: surest first, each at or above `threshold`, passing the guard,
    outside every URL, e-mail address, handle, hashtag, path or code span of `piece`, and overlapping no surer edit.
    Refusals are reported with their reason, except proposals that change nothing and those under half the
    threshold (an engine may propose a candidate for nearly every word)."""
    chosen: list[Edit] = []
    refused: list[Rejection] = []
    protected = protected_spans(piece) if piece else []
    for edit in sorted(proposals, key=lambda e: -e.confidence):
        reason = guard_reason(edit.before, edit.after, guard, word_before(piece, edit.start))
        if reason is None and any(edit.start < b and a < edit.end for a, b in protected):
            reason = "inside a URL, e-mail address, handle, hashtag, path or code"
        if reason == "no change":
            continue
        if reason is None and edit.confidence < threshold:
            if edit.confidence < threshold / 2:
                continue
            reason = "low confidence"
        if reason is None and any(edit.start < e.end and e.start < edit.end for e in chosen):
            reason = "overlaps a surer edit"
        if reason is None:
            chosen.append(edit)
        else:
            refused.append(Rejection(edit, reason))
    return sorted(chosen, key=lambda e: e.start), sorted(refused, key=lambda r: r.edit.start)


class Restorer:
    """Base of every engine. Subclasses set `threshold`, `max_words`, `max_piece_tokens`, `passes` and `guard`,
    and implement `propose` and `piece_tokens`."""

    threshold: float = 0.5
    """Confidence at or above which a proposal is applied, unless a call says otherwise."""
    max_words: int = 48
    """Longest piece, in word tokens (see `normalizer.segment`)."""
    max_piece_tokens: int = 192
    """Longest piece in the engine's model tokens: a longer one is cut in half (at a space where it has one) until
    every part fits, so memory and time per piece are bounded whatever the script."""
    passes: int = 1
    """1, or more: each extra pass proposes the pieces that changed again with the edits so far applied."""
    pass_threshold: float | None = None
    """The least confidence of an edit found by an extra pass (the call's threshold where that is higher); None:
    the call's threshold."""
    guard: GuardConfig = GuardConfig()
    document_prior: DocumentPrior | None = None
    """Re-estimate each document's rate of right proposals and move their confidences to it (None: off)."""
    corpus: CorpusEvidence | None = None
    """What `adapt` learnt from a corpus: every document's estimate starts from it."""
    word_rates: WordRates | None = None
    """How often each word stands in clean news (`normalizer.wordrates`), for `DocumentPrior.key_weight`."""
    cache_size: int = 4096
    """Pieces whose proposals are kept across calls (least recently used dropped first; 0 turns it off). Within a
    call, identical pieces are always proposed once: bylines, boilerplate and repeated lines are common."""

    # ---- what an engine implements ----------------------------------------------------------------------------

    def propose(
        self,
        pieces: list[str],
        *,
        batch_size: int | None = None,
        progress: bool = False,
        documents: list[str] | None = None,
    ) -> list[list[Edit]]:
        """For each piece, the edits the engine would make (piece offsets, `before == piece[start:end]`), each with
        its confidence; at most one per span is expected, overlaps are settled by `decide`. `documents[i]` is the
        whole document piece i comes from, for an engine that weighs evidence from it (`reads_documents`)."""
        raise NotImplementedError

    reads_documents: bool = False
    """Whether proposals depend on the rest of the document (then the cache keys pieces by their document too)."""

    proposes_in_focus: bool = False
    """Whether `propose` takes `focus=` (per piece, the character ranges an edit must lie within): a hint that
    lets the engine skip work on the rest. An extra pass asks only where its edits can be kept (off the edits
    already applied) and keeps only the proposals inside, whether the engine used the hint or not."""

    def piece_tokens(self, text: str) -> int:
        """Length of `text` in the engine's model tokens (for `max_piece_tokens`)."""
        raise NotImplementedError

    def cache_key(self) -> tuple:
        """What the proposals depend on besides the piece (the engine's settings and loaded parts): proposals cached
        under another key are not reused."""
        return (id(self),)

    # ---- public calls -----------------------------------------------------------------------------------------

    def normalize(self, text: str) -> str:
        """The restored text."""
        return self.restore(text).text

    def normalize_batch(
        self, texts: Iterable[str], *, batch_size: int | None = None, progress: bool = False
    ) -> list[str]:
        """Restored texts, same length and order as `texts`."""
        return [r.text for r in self.restore_batch(texts, batch_size=batch_size, progress=progress)]

    def restore(self, text: str, *, threshold: float | None = None) -> Restoration:
        """The restored text with its edits, rejected proposals and spin score."""
        return self.restore_batch([text], threshold=threshold)[0]

    def restore_batch(
        self,
        texts: Iterable[str],
        *,
        threshold: float | None = None,
        batch_size: int | None = None,
        progress: bool = False,
        groups: list | None = None,
    ) -> list[Restoration]:
        """Restore documents (any iterable of strings, read once). `threshold` overrides the restorer's for this
        call; `batch_size` is pieces per model call (None: the engine's own). `groups[i]` (any hashable): texts
        that share a group are one document to the `document_prior` (the paragraphs of one article given as lines);
        default, each text is its own."""
        texts = text_list(texts)
        if groups is not None and len(groups) != len(texts):
            raise ValueError(f"groups must give one group per text: {len(groups)} for {len(texts)}")
        threshold = check_threshold(self.threshold if threshold is None else threshold)
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        pieces = self.pieces(texts)
        documents = [texts[d] for d, _, _ in pieces] if self.reads_documents else None
        found = self.restore_pieces(
            [texts[d][a:b] for d, a, b in pieces],
            threshold,
            batch_size,
            progress,
            documents=documents,
            owners=[d if groups is None else groups[d] for d, _, _ in pieces],
            fingerprints=self.group_fingerprints(texts, groups) if self.corpus is not None else None,
        )
        edits: list[list[Edit]] = [[] for _ in texts]
        rejected: list[list[Rejection]] = [[] for _ in texts]
        for (d, a, _), (chosen, refused) in zip(pieces, found):
            edits[d] += [replace(e, start=e.start + a, end=e.end + a) for e in chosen]
            rejected[d] += [
                Rejection(replace(r.edit, start=r.edit.start + a, end=r.edit.end + a), r.reason) for r in refused
            ]
        return [Restoration.of(text, ed, rej) for text, ed, rej in zip(texts, edits, rejected)]

    # ---- shared steps -----------------------------------------------------------------------------------------

    def pieces(self, texts: list[str]) -> list[tuple[int, int, int]]:
        """(document, start, end) of every piece the engine sees: sentences with a letter in them, cut to
        `max_words` words and then to `max_piece_tokens` model tokens."""
        return [(d, a, b) for d, a0, b0 in word_pieces(texts, self.max_words) for a, b in self.fit(texts[d], a0, b0)]

    def fit(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """text[start:end] as spans of at most `max_piece_tokens` model tokens, cut in half (at the space nearest
        the middle, else anywhere) until each part fits. Parts keep no surrounding whitespace."""
        limit = self.max_piece_tokens
        out, todo = [], [(start, end)]
        while todo:
            a, b = todo.pop()
            # A character costs at most 4 byte-fallback tokens: short spans need no encoding.
            if 4 * (b - a) + 2 <= limit or self.piece_tokens(text[a:b]) <= limit:
                out.append((a, b))
                continue
            mid = (a + b) // 2
            left, right = text.rfind(" ", a + 1, mid + 1), text.find(" ", mid, b - 1)
            spaces = [c for c in (left, right) if c > a]
            cut = min(spaces, key=lambda c: abs(c - mid)) if spaces else mid
            la, lb = a, cut
            while lb > la and text[lb - 1].isspace():
                lb -= 1
            ra = cut
            while ra < b and text[ra].isspace():
                ra += 1
            todo += [(ra, b)] if ra < b else []
            todo += [(la, lb)] if lb > la else []
        return out

    def restore_pieces(
        self,
        pieces: list[str],
        threshold: float,
        batch_size: int | None = None,
        progress: bool = False,
        documents: list[str] | None = None,
        owners: list[int] | None = None,
        fingerprints: dict[int, str] | None = None,
    ) -> list[tuple[list[Edit], list[Rejection]]]:
        """(edits, rejections) per piece, in piece offsets. With `passes` 2 or more, each extra pass proposes the
        pieces that changed again with every edit so far applied (a swap next to another is judged in repaired
        context), only off the edits already applied (`focus`). `owners[i]` is piece i's document (default: its
        own), for `document_prior`, whose shift is estimated once from the first pass and kept for the others; an
        extra pass's edits need `pass_threshold` where that is higher than `threshold`."""
        proposals = self.propose_once(pieces, batch_size, progress, documents)
        evidence = self.document_evidence(proposals, owners, fingerprints, pieces)
        if evidence is not None:
            proposals = [ev.apply(p) for p, ev in zip(proposals, evidence)]
        results = [decide(p, threshold, self.guard, piece) for p, piece in zip(proposals, pieces)]
        later = threshold if self.pass_threshold is None else max(threshold, self.pass_threshold)
        for _ in range(self.passes - 1):
            redo = [i for i, (chosen, _) in enumerate(results) if chosen]
            if not redo:
                break
            repaired = [apply_with_repairs(pieces[i], results[i][0]) for i in redo]
            again_docs = [documents[i] for i in redo] if documents is not None else None
            focus = [unrepaired(text, repairs) for text, repairs in repaired]
            again = self.propose_once([text for text, _ in repaired], batch_size, progress, again_docs, focus)
            again = [[e for e in found if inside(e, ranges)] for found, ranges in zip(again, focus)]
            if evidence is not None:
                again = [evidence[i].apply(p, counted=False) for i, p in zip(redo, again)]
            for i, (text, repairs), found in zip(redo, repaired, again):
                chosen, refused = results[i]
                added = []
                for e in decide(found, later, self.guard, text)[0]:
                    mapped = map_back(e.start, e.end, repairs)
                    if mapped is not None:
                        added.append(replace(e, start=mapped[0], end=mapped[1]))
                results[i] = (sorted(chosen + added, key=lambda e: e.start), refused)
        return results

    @staticmethod
    def group_fingerprints(texts: list[str], groups: list | None) -> dict:
        """The fingerprint of each document: a text's own, or its group's texts joined by newlines (as `adapt`
        fingerprints a document given whole)."""
        if groups is None:
            return {d: fingerprint(t) for d, t in enumerate(texts)}
        joined: dict = {}
        for g, t in zip(groups, texts):
            joined.setdefault(g, []).append(t)
        return {g: fingerprint("\n".join(parts)) for g, parts in joined.items()}

    def document_evidence(
        self,
        proposals: list[list[Edit]],
        owners: list[int] | None,
        fingerprints: dict[int, str] | None = None,
        pieces: list[str] | None = None,
    ) -> list[DocumentEvidence] | None:
        """Per piece, the `document_prior` estimate of its document (None when there is no document prior);
        `pieces` (the pieces' texts) give each document's word counts where the prior reads them (`key_weight`)."""
        prior = self.document_prior
        if prior is None:
            return None
        owners = owners if owners is not None else list(range(len(proposals)))
        by_doc: dict[int, list[Edit]] = {}
        for d, found in zip(owners, proposals):
            by_doc.setdefault(d, []).extend(found)
        counts: dict[int, Counter] = {}
        if prior.key_weight is not None and self.word_rates is not None and pieces is not None:
            for d, piece in zip(owners, pieces):
                counts.setdefault(d, Counter()).update(word_counts([piece]))
        fingerprints = fingerprints or {}
        evidence = {
            d: prior.estimate(edits, self.corpus, fingerprints.get(d, ""), counts.get(d), self.word_rates)
            for d, edits in by_doc.items()
        }
        return [evidence[d] for d in owners]

    def adapt(self, texts: Iterable[str], *, max_docs: int = 1000, progress: bool = False) -> Restorer:
        """A copy of this restorer that has read `texts` (the first `max_docs`): the corpus's rate of right
        proposals becomes every document's starting point, and each swap's confidence across the corpus joins the
        evidence for it in every document (`CorpusEvidence`). One scoring pass over the texts, shared with the copy
        (restoring the same texts afterwards costs no model time, within `cache_size`); this restorer is not
        changed. A clean corpus learns a low rate, so its documents are edited less, not more."""
        if self.document_prior is None:
            raise ValueError("adapt needs a restorer with a document prior (`document_prior`)")
        if isinstance(max_docs, bool) or not isinstance(max_docs, int) or max_docs < 1:
            raise ValueError(f"max_docs must be an integer >= 1, got {max_docs!r}")
        texts = text_list(texts)[:max_docs]
        pieces = self.pieces(texts)
        proposals = self.propose_once([texts[d][a:b] for d, a, b in pieces], None, progress)
        counted = evidence_edits(e for found in proposals for e in found)
        prior = self.document_prior
        shift = prior.shift(e.confidence for e in counted)
        rate = _sigmoid(_logit(prior.rate) + shift)
        words = dict(word_counts(texts)) if self.word_rates is not None else {}
        return self.with_corpus(
            CorpusEvidence(rate, shift, swap_sums(counted, shift), frozenset(map(fingerprint, texts)), words)
        )

    def with_corpus(self, corpus: CorpusEvidence | None) -> Restorer:
        """A copy of this restorer that restores with `corpus` (what `adapt` learnt, perhaps saved and loaded with
        `CorpusEvidence.save`/`load`); the loaded models and the proposal cache are shared."""
        if corpus is not None and self.document_prior is None:
            raise ValueError("a corpus estimate needs a restorer with a document prior (`document_prior`)")
        adapted = copy.copy(self)
        adapted.corpus = corpus
        return adapted

    def propose_once(
        self,
        pieces: list[str],
        batch_size: int | None = None,
        progress: bool = False,
        documents: list[str] | None = None,
        focus: list[Focus] | None = None,
    ) -> list[list[Edit]]:
        """`propose`, with each distinct piece (in its document, when proposals depend on it) proposed once per
        call and, up to `cache_size` pieces, once across calls (proposals do not depend on the threshold, so every
        call can reuse them). `focus` (per piece: the character ranges an edit must lie within) reaches an engine
        that `proposes_in_focus` and is then part of the piece's key; the caller keeps only the edits inside it."""
        focused = focus is not None and self.proposes_in_focus
        keys = list(zip(pieces, map(tuple, focus))) if focused else [(p, None) for p in pieces]
        if documents is not None:
            return self.propose_once_in_documents(keys, batch_size, progress, documents)
        key = self.cache_key()
        cache = self.__dict__.get("_proposal_cache")
        if cache is None:
            cache = self.__dict__.setdefault("_proposal_cache", (OrderedDict(), threading.Lock()))
        store, lock = cache
        found: dict[tuple, list[Edit]] = {}
        with lock:
            for item in dict.fromkeys(keys):
                if (key, *item) in store:
                    store.move_to_end((key, *item))
                    found[item] = store[(key, *item)]
        missing = [item for item in dict.fromkeys(keys) if item not in found]
        if missing:
            found.update(zip(missing, self.propose_items(missing, batch_size, progress)))
            if self.cache_size > 0:
                with lock:
                    for item in missing:
                        store[(key, *item)] = found[item]
                    while len(store) > self.cache_size:
                        store.popitem(last=False)
        return [found[item] for item in keys]

    def propose_items(
        self, items: list[tuple], batch_size: int | None, progress: bool, documents: list[str] | None = None
    ) -> list[list[Edit]]:
        """`propose` on (piece, focus or None) items: focus is passed only where there is one."""
        kwargs = {} if documents is None else {"documents": documents}
        if items and items[0][1] is not None:
            kwargs["focus"] = [list(f) for _, f in items]
        return self.propose([p for p, _ in items], batch_size=batch_size, progress=progress, **kwargs)

    def propose_once_in_documents(
        self, keys: list[tuple], batch_size: int | None, progress: bool, documents: list[str]
    ) -> list[list[Edit]]:
        """`propose_once` for an engine that reads the documents: a piece is the same work only in the same
        document, so only repeats within a call are shared (documents are too large to keep as cache keys)."""
        unique = list(dict.fromkeys(zip(keys, documents)))
        found = self.propose_items([k for k, _ in unique], batch_size, progress, [d for _, d in unique])
        by_key = dict(zip(unique, found))
        return [by_key[item] for item in zip(keys, documents)]
