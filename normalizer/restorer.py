"""The one contract every way of restoring shares: documents in, `Restoration`s out.

An engine (`normalizer.engines`) implements only `propose(pieces)`: for each sentence piece, the edits it would
make, each with a confidence, in piece offsets. Everything else lives here, once: cutting documents into pieces
(`normalizer.segment`, then halving a piece that is too long for the engine's model), the decision (guard, threshold,
overlaps, and which refusals are reported), a second pass over repaired pieces, re-basing piece offsets onto the
document, and the public calls `normalize`, `normalize_batch`, `restore` and `restore_batch`.

    restorer.restore_batch(docs, threshold=0.5, batch_size=16, progress=True)
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from normalizer.edits import (
    Edit,
    GuardConfig,
    apply_with_repairs,
    guard_reason,
    map_back,
    protected_spans,
    splice,
    tokenize,
    word_before,
)
from normalizer.segment import text_list, word_pieces


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
    """1, or 2: pieces the first pass changed are proposed again with those edits applied."""
    guard: GuardConfig = GuardConfig()
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
    ) -> list[Restoration]:
        """Restore documents (any iterable of strings, read once). `threshold` overrides the restorer's for this
        call; `batch_size` is pieces per model call (None: the engine's own)."""
        texts = text_list(texts)
        threshold = check_threshold(self.threshold if threshold is None else threshold)
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        pieces = self.pieces(texts)
        documents = [texts[d] for d, _, _ in pieces] if self.reads_documents else None
        found = self.restore_pieces(
            [texts[d][a:b] for d, a, b in pieces], threshold, batch_size, progress, documents=documents
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
    ) -> list[tuple[list[Edit], list[Rejection]]]:
        """(edits, rejections) per piece, in piece offsets. With `passes` 2, pieces that changed are proposed again
        with their edits applied (a swap next to another is judged in repaired context); a new edit that touches
        an applied one is dropped."""
        proposals = self.propose_once(pieces, batch_size, progress, documents)
        results = [decide(p, threshold, self.guard, piece) for p, piece in zip(proposals, pieces)]
        for _ in range(self.passes - 1):
            redo = [i for i, (chosen, _) in enumerate(results) if chosen]
            if not redo:
                break
            repaired = [apply_with_repairs(pieces[i], results[i][0]) for i in redo]
            again_docs = [documents[i] for i in redo] if documents is not None else None
            again = self.propose_once([text for text, _ in repaired], batch_size, progress, again_docs)
            for i, (text, repairs), found in zip(redo, repaired, again):
                chosen, refused = results[i]
                added = []
                for e in decide(found, threshold, self.guard, text)[0]:
                    mapped = map_back(e.start, e.end, repairs)
                    if mapped is not None:
                        added.append(replace(e, start=mapped[0], end=mapped[1]))
                results[i] = (sorted(chosen + added, key=lambda e: e.start), refused)
        return results

    def propose_once(
        self,
        pieces: list[str],
        batch_size: int | None = None,
        progress: bool = False,
        documents: list[str] | None = None,
    ) -> list[list[Edit]]:
        """`propose`, with each distinct piece (in its document, when proposals depend on it) proposed once per
        call and, up to `cache_size` pieces, once across calls (proposals do not depend on the threshold, so every
        call can reuse them)."""
        if documents is not None:
            return self.propose_once_in_documents(pieces, batch_size, progress, documents)
        key = self.cache_key()
        cache = self.__dict__.get("_proposal_cache")
        if cache is None:
            cache = self.__dict__.setdefault("_proposal_cache", (OrderedDict(), threading.Lock()))
        store, lock = cache
        found: dict[str, list[Edit]] = {}
        with lock:
            for piece in dict.fromkeys(pieces):
                if (key, piece) in store:
                    store.move_to_end((key, piece))
                    found[piece] = store[(key, piece)]
        missing = [p for p in dict.fromkeys(pieces) if p not in found]
        if missing:
            found.update(zip(missing, self.propose(missing, batch_size=batch_size, progress=progress)))
            if self.cache_size > 0:
                with lock:
                    for piece in missing:
                        store[(key, piece)] = found[piece]
                    while len(store) > self.cache_size:
                        store.popitem(last=False)
        return [found[p] for p in pieces]

    def propose_once_in_documents(
        self, pieces: list[str], batch_size: int | None, progress: bool, documents: list[str]
    ) -> list[list[Edit]]:
        """`propose_once` for an engine that reads the documents: a piece is the same work only in the same
        document, so only repeats within a call are shared (documents are too large to keep as cache keys)."""
        unique = list(dict.fromkeys(zip(pieces, documents)))
        found = self.propose(
            [p for p, _ in unique], batch_size=batch_size, progress=progress, documents=[d for _, d in unique]
        )
        by_key = dict(zip(unique, found))
        return [by_key[(p, d)] for p, d in zip(pieces, documents)]
