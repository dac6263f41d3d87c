"""Baselines that every report shows beside the model, so its added value is visible.

- `identity`: leave the text as it is (ERR 0 by definition; the reference point for over-correction).
- `lexicon`: invert the thesaurus. A word is a candidate for restoration to any word that lists it as a synonym
  (in any lexicon source, inflection carried over); among the word itself and its candidates, keep the one that the
  training corpus finds likeliest in context (unigram and both neighbouring bigrams, add-one smoothed), switching only
  when the candidate wins by `margin` nats. The default margin, 6, gave the best ERR on 400 dev sentences
  (margin 2/4/6/8/10: ERR -0.279/0.025/0.049/0.034/0.012).
"""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter, defaultdict
from pathlib import Path

from normalizer.edits import tokenize
from training.lexicon import DEFAULT_CACHE, Lexicon, load
from training.spin import NEVER, analyse, inflect


def identity(texts: list[str]) -> list[str]:
    """The input, unchanged."""
    return list(texts)


class LexiconBaseline:
    """Inverse-thesaurus restorer scored by corpus n-gram counts."""

    def __init__(self, counts: dict[str, Counter], lexicon: Lexicon | None = None, margin: float = 6.0):
        self.lexicon = lexicon or load()
        self.uni, self.bi = counts["uni"], counts["bi"]
        self.total = sum(self.uni.values())
        self.vocab = len(self.uni) + 1
        self.margin = margin
        reverse: dict[str, set[str]] = defaultdict(set)
        for table in self.lexicon.sources.values():
            for head, by_pos in table.items():
                for syns in by_pos.values():
                    for s in syns:
                        if " " not in s and " " not in head:
                            reverse[s].add(head)
        self.reverse = reverse
        self._cands: dict[str, list[str]] = {}

    @classmethod
    def from_corpus(cls, texts, cache: Path | None = None, **kwargs) -> LexiconBaseline:
        """Count unigrams and bigrams (lower case) over `texts`, caching them as gzipped JSON."""
        if cache is not None and cache.exists():
            with gzip.open(cache, "rt") as f:
                data = json.load(f)
            return cls({"uni": Counter(data["uni"]), "bi": Counter(data["bi"])}, **kwargs)
        uni, bi = Counter(), Counter()
        for text in texts:
            toks = ["<s>"] + [t.text.lower() for t in tokenize(text)] + ["</s>"]
            uni.update(toks)
            bi.update(f"{a} {b}" for a, b in zip(toks, toks[1:]))
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(cache, "wt") as f:
                json.dump({"uni": uni, "bi": {k: v for k, v in bi.items() if v > 1}}, f)
        return cls({"uni": uni, "bi": bi}, **kwargs)

    def candidates(self, word: str) -> list[str]:
        """Words that list `word` (lower case) as a synonym, inflected like it."""
        if word not in self._cands:
            lemma, upos, tag = analyse(word)
            heads = self.reverse.get(lemma, set()) | self.reverse.get(word, set())
            forms = {inflect(h, tag, upos) for h in heads}
            self._cands[word] = sorted(f for f in forms if f and f != word and f in self.uni)
        return self._cands[word]

    def _score(self, prev: str, w: str, nxt: str) -> float:
        v = self.vocab
        return math.log((self.bi.get(f"{prev} {w}", 0) + 1) / (self.uni.get(prev, 0) + v)) + math.log(
            (self.bi.get(f"{w} {nxt}", 0) + 1) / (self.uni.get(w, 0) + v)
        )

    def restore(self, text: str) -> str:
        toks = tokenize(text)
        lowered = ["<s>"] + [t.text.lower() for t in toks] + ["</s>"]
        out, pos = [], 0
        for k, tok in enumerate(toks):
            w = lowered[k + 1]
            if not tok.text.isalpha() or w in NEVER or (tok.text[0].isupper() and k > 0):
                continue
            prev, nxt = lowered[k], lowered[k + 2]
            own = self._score(prev, w, nxt)
            best, best_score = None, own + self.margin
            for c in self.candidates(w):
                s = self._score(prev, c, nxt)
                if s > best_score:
                    best, best_score = c, s
            if best is not None:
                best = best[0].upper() + best[1:] if tok.text[0].isupper() else best
                out += [text[pos : tok.start], best]
                pos = tok.end
                lowered[k + 1] = best.lower()  # the next word is scored against the restored one
        out.append(text[pos:])
        return "".join(out)

    def __call__(self, texts: list[str]) -> list[str]:
        return [self.restore(t) for t in texts]


def lexicon_baseline(cache_dir: Path = DEFAULT_CACHE.parent) -> LexiconBaseline:
    """The lexicon baseline with counts from the training split of the shared corpora (cached)."""
    from training.corpus import load_splits

    cache = cache_dir / "ngram-counts.json.gz"
    texts = None if cache.exists() else (d.text for d in load_splits()["train"])
    return LexiconBaseline.from_corpus(texts, cache=cache)
