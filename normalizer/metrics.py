"""Restoration metrics: pure functions on lists of strings.

Every metric compares three texts per item: the spun input, the system output, and the original (plus, optionally,
other acceptable originals). Texts are compared as word tokens (`normalizer.edits.words`: words and punctuation,
case-sensitive), so spacing differences never count.

- WER of the input and of the output against the original; ERR = (WER_in - WER_out) / WER_in, the headline
  (1 = perfect restoration, 0 = no change, negative = the system did harm).
- Edits are extracted by aligning the input to a text (difflib opcodes, equal-length replacements split into
  one-word edits, as M2/ERRANT score word edits); precision, recall and F0.5 compare system edits to gold edits.
- Over-correction: the share of words the spinner left alone that the system changed.
- Exact match, and chrF/BLEU through sacrebleu as secondary numbers.
- `apply_edits` and `THRESHOLDS`: one restoration's output at each confidence threshold, for precision/recall curves.

Here, not in `evaluation/`, because training (dev scores, threshold tuning) needs them as much as the harness does.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from normalizer.edits import splice, words

EditKey = tuple[int, int, tuple[str, ...]]


THRESHOLDS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
"""Confidence thresholds of a seq2seq model's precision/recall curve."""


def apply_edits(text: str, restoration, threshold: float) -> str:
    """`text` with the edits of `restoration` whose confidence is at least `threshold`."""
    return splice(text, [e for e in restoration.edits if e.confidence >= threshold])


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two token sequences (substitution, insertion, deletion cost 1), by Hyyrö's
    bit-parallel form of Myers' algorithm (one pass over `b`, the columns of `a` as the bits of one integer: a
    300-word document in about a millisecond instead of the table's 90,000 cells)."""
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if m == 0:
        return len(a)
    peq: dict[str, int] = {}
    for i, x in enumerate(b):
        peq[x] = peq.get(x, 0) | (1 << i)
    full, top = (1 << m) - 1, 1 << (m - 1)
    pv, mv, score = full, 0, m
    for y in a:
        eq = peq.get(y, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | ~(xh | pv)
        mh = pv & xh
        if ph & top:
            score += 1
        elif mh & top:
            score -= 1
        ph = (ph << 1) | 1
        mh <<= 1
        pv = (mh | ~(xv | ph)) & full
        mv = ph & xv & full
    return score


def wer(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Corpus word error rate: total edit distance over total reference words (0 when there are none)."""
    _check(hyps, refs)
    dist = sum(edit_distance(words(h), words(r)) for h, r in zip(hyps, refs))
    total = sum(len(words(r)) for r in refs)
    return dist / total if total else 0.0


def extract_edits(source: str, target: str) -> set[EditKey]:
    """Word edits turning `source` into `target`: (start, end, replacement) over source tokens."""
    a, b = words(source), words(target)
    edits = set()
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        if op == "replace" and i2 - i1 == j2 - j1:
            edits.update((i1 + k, i1 + k + 1, (b[j1 + k],)) for k in range(i2 - i1) if a[i1 + k] != b[j1 + k])
        else:
            edits.add((i1, i2, tuple(b[j1:j2])))
    return edits


def changed_positions(source: str, target: str) -> set[int]:
    """Indices of source tokens that `target` does not keep."""
    a, b = words(source), words(target)
    kept = set()
    for op, i1, i2, _, _ in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            kept.update(range(i1, i2))
    return set(range(len(a))) - kept


def f_beta(tp: int, n_sys: int, n_gold: int, beta: float = 0.5) -> tuple[float, float, float]:
    """(precision, recall, F-beta); precision is 1 with no system edits, recall 1 with no gold edits."""
    p = tp / n_sys if n_sys else 1.0
    r = tp / n_gold if n_gold else 1.0
    f = (1 + beta**2) * p * r / (beta**2 * p + r) if p + r else 0.0
    return p, r, f


def edit_counts(
    spun: Sequence[str],
    outputs: Sequence[str],
    originals: Sequence[str],
    alternatives: Sequence[Sequence[str]] | None = None,
) -> tuple[int, int, int]:
    """Total (true positives, system edits, gold edits); per item, the reference (original or an alternative)
    that gives the best F0.5 is used, as M2 does with several annotators."""
    _check(spun, outputs, originals)
    tp = n_sys = n_gold = 0
    for k, (s, o, ref) in enumerate(zip(spun, outputs, originals)):
        sys_edits = extract_edits(s, o)
        best = None
        for candidate in [ref, *(alternatives[k] if alternatives else [])]:
            gold = extract_edits(s, candidate)
            counts = (len(sys_edits & gold), len(sys_edits), len(gold))
            if best is None or f_beta(*counts)[2] > f_beta(*best)[2]:
                best = counts
        tp, n_sys, n_gold = tp + best[0], n_sys + best[1], n_gold + best[2]
    return tp, n_sys, n_gold


def over_correction(spun: Sequence[str], outputs: Sequence[str], originals: Sequence[str]) -> float:
    """Share of input words the spinner did not touch that the system changed."""
    _check(spun, outputs, originals)
    untouched = changed = 0
    for s, o, ref in zip(spun, outputs, originals):
        clean = set(range(len(words(s)))) - changed_positions(s, ref)
        untouched += len(clean)
        changed += len(clean & changed_positions(s, o))
    return changed / untouched if untouched else 0.0


def word_counts(spun: Sequence[str], outputs: Sequence[str], originals: Sequence[str]) -> tuple[int, int, int]:
    """Word-level (restored right, words the system put in, words the spinner took out), summed over items.

    Per item, the words a system put in are the multiset of output words minus the input's; the words to restore
    are the original's minus the input's; restored right is their multiset intersection. Unlike edit-level
    scores, an edit that restores one word of a two-word swap earns that word."""
    _check(spun, outputs, originals)
    from collections import Counter

    tp = put = needed = 0
    for s, o, ref in zip(spun, outputs, originals):
        src = Counter(words(s))
        added, wanted = Counter(words(o)) - src, Counter(words(ref)) - src
        tp += sum((added & wanted).values())
        put += sum(added.values())
        needed += sum(wanted.values())
    return tp, put, needed


def exact_match(outputs: Sequence[str], originals: Sequence[str]) -> float:
    """Share of outputs whose word tokens equal the original's."""
    _check(outputs, originals)
    return sum(words(o) == words(r) for o, r in zip(outputs, originals)) / len(outputs) if outputs else 0.0


def evaluate(
    spun: Sequence[str],
    outputs: Sequence[str],
    originals: Sequence[str],
    alternatives: Sequence[Sequence[str]] | None = None,
    sacrebleu_scores: bool = True,
) -> dict[str, float]:
    """All restoration metrics for one system on one test set."""
    _check(spun, outputs, originals)
    wer_in, wer_out = wer(spun, originals), wer(outputs, originals)
    tp, n_sys, n_gold = edit_counts(spun, outputs, originals, alternatives)
    p, r, f = f_beta(tp, n_sys, n_gold)
    result = {
        "n": len(spun),
        "wer_in": wer_in,
        "wer_out": wer_out,
        "err": (wer_in - wer_out) / wer_in if wer_in else (0.0 if wer_out == 0 else -float("inf")),
        "precision": p,
        "recall": r,
        "f0.5": f,
        "system_edits": n_sys,
        "gold_edits": n_gold,
        "over_correction": over_correction(spun, outputs, originals),
        "word_precision": f_beta(*word_counts(spun, outputs, originals))[0],
        "word_recall": f_beta(*word_counts(spun, outputs, originals))[1],
        "exact_match": exact_match(outputs, originals),
        "unchanged": exact_match(outputs, spun),
    }
    if sacrebleu_scores and outputs:
        import sacrebleu

        result["chrf"] = sacrebleu.corpus_chrf(list(outputs), [list(originals)]).score
        result["bleu"] = sacrebleu.corpus_bleu(list(outputs), [list(originals)]).score
    return result


def _check(*lists: Sequence[str]) -> None:
    if len({len(x) for x in lists}) > 1:
        raise ValueError(f"lists differ in length: {[len(x) for x in lists]}")
