"""The features of a candidate edit: their schema (names, in the order rankers store them) and the one place each
is computed. A candidate carries its features as a named record (name -> value); a ranker reads the record by its
own stored names, so no computation order can shift a value into another feature's weight.
"""

from __future__ import annotations

import math

from normalizer.edits import Token
from normalizer.stages.candidates import PPS_SOURCE, Candidate, CandidateTable
from normalizer.stages.ranker import Channel

CHEAP_FEATURES = (
    "first_gain",
    "cand_first_lp",
    "spun_first_lp",
    "log_rank",
    "phrase",
    "moby",
    "wordnet",
    "mythes",
    "zipf_after",
    "zipf_before",
    "article_wrong",
    "article_fixed",
    "span_words",
    "after_words",
    "channel",
    "channel_seen",
    "seq2seq_conf",
    "seq2seq_proposed",
)
"""Known after the one language-model pass per sentence: the pre-ranker's features."""
RESCORE_FEATURES = ("prerank", "lm_gain", "gain_gap", "spun_surprisal")
"""Known after rescoring: the pre-ranker's log-probability and the full span's language-model scores."""
FEATURES = (*CHEAP_FEATURES, *RESCORE_FEATURES)
"""The ranker's features, sentence by sentence."""
DOCUMENT_FEATURES = ("doc_before", "doc_after", "doc_before_excess", "doc_after_excess", "doc_words")
"""Evidence from the whole document: how often the spun words and the candidate stand in it, each against its
frequency in news (a spinner that swaps "said" for "mentioned" every time leaves many "mentioned" and no "said")."""
PPS_FEATURES = ("pps", "pps_gain")
"""Whether the real spun phrase pairs link the candidate (the table's `pps` source, `training.tortured`), and its LM
gain where they do: a slope of its own for the swaps a real spinner is known to make."""
LM_FEATURES = ("lm_candidate", "lm_rank", "lm_cosine", "lm_related", "lm_same_tag")
"""For a candidate that is one of the language model's own top words at the position (`PipelineConfig
.lm_candidates`): the flag, its log rank there, the cosine of its first sub-token's input embedding with the spun
word's, whether the table relates the two at all (either direction, or one synonym list holds both), and whether
the two can be the same inflection (a Penn tag in common, or neither inflects: a spinner carries the inflection
over); 0 for every other candidate."""
SCHEMAS = (
    FEATURES,
    (*FEATURES, *DOCUMENT_FEATURES),
    (*FEATURES, *PPS_FEATURES),
    (*FEATURES, *LM_FEATURES),
)
"""The feature lists a ranker may be trained on: sentence features alone, with the document's, or with the real
pairs' links."""

_VOWEL = set("aeiouAEIOU")


def cheap_features(
    c: Candidate,
    tokens: list[Token],
    first_lp: float,
    spun_lp: float,
    channel: Channel,
    table: CandidateTable,
    memo: dict | None = None,
) -> dict[str, float]:
    """The `CHEAP_FEATURES` of candidate `c` in a sentence of `tokens`, given the first sub-token log-probabilities
    of the candidate (`first_lp`) and of the spun word (`spun_lp`) at the span's start. `memo` keeps the features
    that depend on the pair alone (`pair_features`) from one call to the next: give one dict per channel and table."""
    article = tokens[c.first - 1].text.lower() if c.first > 0 else ""
    wrong = fixed = 0.0
    if article in ("a", "an"):
        # By spelling, not sound: the spinner leaves "a"/"an" as it was, so a mismatch marks a swap.
        wrong = float((article == "an") != (c.before[:1] in _VOWEL))
        fixed = float(wrong and (article == "an") == (c.after[:1] in _VOWEL))
    if memo is None:
        pair = pair_features(c, channel, table)
    else:
        key = (c.before, c.after, c.kind, c.sources, c.rank, c.last - c.first)
        pair = memo.get(key)
        if pair is None:
            pair = memo[key] = pair_features(c, channel, table)
    return {
        "first_gain": first_lp - spun_lp,
        "cand_first_lp": first_lp,
        "spun_first_lp": spun_lp,
        **pair,
        "article_wrong": wrong,
        "article_fixed": fixed,
        "seq2seq_conf": max(c.seq2seq, 0.0),
        "seq2seq_proposed": float(c.seq2seq >= 0),
        **NOT_LM,
    }


def pair_features(c: Candidate, channel: Channel, table: CandidateTable) -> dict[str, float]:
    """The part of `cheap_features` that depends on the pair alone (the words, the kind, the table's link and the
    span's length), not on where it stands."""
    log_channel, seen = channel.log_prob(c.after, c.before)
    thesaurus = c.kind == "thesaurus"
    return {
        "log_rank": math.log1p(c.rank) if thesaurus else 0.0,
        "phrase": float(c.kind == "phrase"),
        "moby": float(bool(c.sources & 1)),
        "wordnet": float(bool(c.sources & 2)),
        "mythes": float(bool(c.sources & 4)),
        "zipf_after": table.zipf(c.after.lower()),
        "zipf_before": table.zipf(c.before.lower()),
        "span_words": float(c.last - c.first),
        "after_words": float(len(c.after.split())),
        "channel": log_channel,
        "channel_seen": float(seen),
        "pps": float(bool(c.sources & PPS_SOURCE)),
    }


NOT_LM = dict.fromkeys(LM_FEATURES, 0.0)


def lm_features(rank: int, cosine: float, related: bool, spun: str, word: str) -> dict[str, float]:
    """The `LM_FEATURES` of `word`, which the language model proposed at `rank` (0: its likeliest word) where
    `spun` stands (both lower case)."""
    from normalizer.inflection import analyses

    same_tag = bool({tag for _, _, tag in analyses(spun)} & {tag for _, _, tag in analyses(word)})
    return {
        "lm_candidate": 1.0,
        "lm_rank": math.log1p(rank),
        "lm_cosine": cosine,
        "lm_related": float(related),
        "lm_same_tag": float(same_tag),
    }


class DocumentStats:
    """Counts of the lower-cased words and 2-3 word phrases of one document."""

    def __init__(self, text: str):
        from collections import Counter

        from normalizer.edits import words

        toks = [w.lower() for w in words(text) if w[0].isalnum()]
        self.words = len(toks)
        self.counts = Counter(toks)
        for n in (2, 3):
            self.counts.update(" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1))
        self._asked: dict[str, int] = {}

    def count(self, phrase: str) -> int:
        got = self._asked.get(phrase)
        if got is None:
            got = self._asked[phrase] = self.counts.get(" ".join(w.lower() for w in phrase.split()), 0)
        return got


def document_features(c: Candidate, doc: DocumentStats, table: CandidateTable) -> dict[str, float]:
    """The `DOCUMENT_FEATURES` of candidate `c` in a document: log counts of the spun words and of the candidate,
    and each one's frequency in the document (Zipf scale, +0.5 smoothing) less its frequency in news."""
    n = max(doc.words, 1)
    before, after = doc.count(c.before), doc.count(c.after)

    def doc_zipf(count: int) -> float:
        return math.log10((count + 0.5) / n * 1e9)

    return {
        "doc_before": math.log1p(before),
        "doc_after": math.log1p(after),
        "doc_before_excess": doc_zipf(before) - table.zipf(c.before.lower()),
        "doc_after_excess": doc_zipf(after) - table.zipf(c.after.lower()),
        "doc_words": math.log1p(doc.words),
    }


def rescore_features(
    prerank: float, gain: float, best_gain: float, surprisal: float, pps: float = 0.0
) -> dict[str, float]:
    """The `RESCORE_FEATURES`: the pre-ranker's log-probability, the candidate's LM gain over the spun span (span
    plus right context), its gap to the best gain among its span's rescored candidates, and the spun span's
    surprisal; and `pps_gain` (the gain where the real pairs link the candidate, `pps` 1, else 0)."""
    return {
        "prerank": prerank,
        "lm_gain": gain,
        "gain_gap": gain - best_gain,
        "spun_surprisal": surprisal,
        "pps_gain": pps * gain,
    }
