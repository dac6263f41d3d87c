"""A dictionary spinner's links, read from a corpus it spun: a spinner dictionary the corpus itself gives away.

A dictionary spinner (WP Auto Spinner, Turbo Spinner and clones) replaces every occurrence of a key by one of its
alternatives, so its output lacks the key ("said" never stands) and holds the alternatives far more often than news
does ("stated" 165 times where news would have it 3 times). Where an alternative stands, the language model, reading
the words before it, still expects the key ("He stated" -> " said"). `induce_links` reads a corpus once with the
language model and keeps a link alternative -> key where all three agree:

- the key is absent: the corpus holds it at most 1/e^`min_absent` as often as clean news would (`WordRates`);
- the alternative is in excess: it stands at least e^`min_excess` times as often as clean news has it;
- the model expects the key where the alternative stands: its mean probability there (the likeliest `top_k` whole
  words at each position, left context only) is at least `min_predicted`, at `min_positions` positions or more.

Words that stand capitalised inside sentences (names) are never alternatives. The links are a spinner dictionary
(`as_dictionary`, or `key|alt|alt` lines by `dictionary_lines`) to restore the corpus with: a confident swap is still
the pipeline's to make, word by word, with the language model's evidence. A clean corpus lacks no common word that
the model expects, and gives (measured) no links. It needs a corpus: in 30 news documents (9,000 words) only words
clean news uses about once in 2,000 or more can be seen missing.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from normalizer.stages.dictionary import SpinnerDictionary
from normalizer.wordrates import WORD_RE, WordRates, word_counts

SENTENCE_END = ".!?\n\"'“”"


@dataclass(frozen=True)
class Link:
    """The corpus's evidence that its spinner wrote `alternative` for `key` (lower case)."""

    key: str
    alternative: str
    predicted: float
    """The model's mean probability of the key where the alternative stands."""
    positions: int
    """Positions of the alternative where the key was among the model's likeliest words."""
    places: int
    """Positions of the alternative read."""
    key_count: int
    key_expected: float
    alternative_count: int
    alternative_expected: float

    @property
    def absent(self) -> float:
        return math.log((self.key_expected + 1) / (self.key_count + 1))

    @property
    def excess(self) -> float:
        return math.log((self.alternative_count + 1) / (self.alternative_expected + 1))


def _names(texts: list[str]) -> set[str]:
    """Lower-cased words that stand capitalised in most of their places inside a sentence."""
    inside, capital = Counter(), Counter()
    for text in texts:
        for m in WORD_RE.finditer(text):
            i = m.start() - 1
            while i >= 0 and text[i].isspace():
                i -= 1
            if i < 0 or text[i] in SENTENCE_END:
                continue
            w = m.group()
            inside[w.lower()] += 1
            capital[w.lower()] += w[0].isupper()
    return {w for w, n in inside.items() if capital[w] * 2 >= n}


def _chunks(lm, texts: list[str], max_tokens: int):
    """(text, token ids, character offsets) of `texts` cut into pieces of at most `max_tokens` tokens."""
    for text in texts:
        enc = lm.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        for start in range(0, len(ids), max_tokens):
            yield text, ids[start : start + max_tokens], offsets[start : start + max_tokens]


@torch.inference_mode()
def predicted_words(
    lm, texts: list[str], *, top_k: int = 20, max_tokens: int = 512, batch: int = 2, progress: bool = False
) -> tuple[Counter, dict[str, dict[str, list]]]:
    """How often each word (lower case) starts a token of `texts`, and per word, for each of the model's
    likeliest `top_k` whole words there (`LanguageModel.word_tokens`, from the words before it), [summed
    probability, positions]."""
    words_of = lm.word_tokens()
    word_ids = torch.tensor(sorted(words_of), device=lm.device)
    word_text = [words_of[i] for i in word_ids.tolist()]
    seen: Counter = Counter()
    mass: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0]))
    chunks = list(_chunks(lm, texts, max_tokens - 1))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(chunks), desc="reading the corpus", unit="chunk")
    for k in range(0, len(chunks), batch):
        group = chunks[k : k + batch]
        seqs = [[lm.start_id, *ids] for _, ids, _ in group]
        width = max(map(len, seqs))
        ids = torch.zeros(len(seqs), width, dtype=torch.long)
        mask = torch.zeros(len(seqs), width, dtype=torch.long)
        for b, s in enumerate(seqs):
            ids[b, : len(s)], mask[b, : len(s)] = torch.tensor(s), 1
        logits = lm.model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device)).logits
        for b, (text, chunk, offsets) in enumerate(group):
            starts = {m.start(): m.group().lower() for m in WORD_RE.finditer(text)}
            where, words = [], []
            for i, (s, _) in enumerate(offsets):
                if s > 0 and text[s - 1 : s] == " ":
                    w = starts.get(s)
                elif text[s : s + 1] == " ":
                    w = starts.get(s + 1)
                else:
                    w = None
                if w is not None:
                    where.append(i)  # predicted at position i of seqs[b], which holds the token before it
                    words.append(w)
            if not where:
                continue
            rows = logits[b, torch.tensor(where, device=logits.device)].float()
            probs = (rows[:, word_ids] - rows.logsumexp(-1, keepdim=True)).exp()
            top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
            for w, values, tokens in zip(words, top.values.tolist(), top.indices.tolist()):
                seen[w] += 1
                got: dict[str, float] = {}
                for p, t in zip(values, tokens):
                    got[word_text[t]] = got.get(word_text[t], 0.0) + p
                for v, p in got.items():
                    if v != w:
                        entry = mass[w][v]
                        entry[0] += p
                        entry[1] += 1
        if bar is not None:
            bar.update(len(group))
    if bar is not None:
        bar.close()
    return seen, mass


def induce_links(
    lm,
    texts: Iterable[str],
    rates: WordRates,
    *,
    top_k: int = 20,
    min_absent: float = 1.5,
    min_excess: float = 1.5,
    min_predicted: float = 0.08,
    min_positions: int = 2,
    progress: bool = False,
) -> list[Link]:
    """The links `texts` give away (see the module's docstring): for each alternative its likeliest key, best
    evidenced first. Defaults chosen on the dev documents of two dictionary spinners (Moby's, WordNet's)."""
    texts = list(texts)
    counts = word_counts(texts)
    total = sum(counts.values())
    if not total:
        return []
    seen, mass = predicted_words(lm, texts, top_k=top_k, progress=progress)
    names = _names(texts)
    best: dict[str, Link] = {}
    for w, by_key in mass.items():
        if w in names or not seen[w]:
            continue
        for v, (p, hits) in by_key.items():
            link = Link(
                key=v,
                alternative=w,
                predicted=p / seen[w],
                positions=hits,
                places=seen[w],
                key_count=counts.get(v, 0),
                key_expected=rates.rate(v) * total,
                alternative_count=counts.get(w, 0),
                alternative_expected=rates.rate(w) * total,
            )
            if (
                link.predicted >= min_predicted
                and link.absent >= min_absent
                and link.excess >= min_excess
                and hits >= min_positions
                and (w not in best or link.predicted > best[w].predicted)
            ):
                best[w] = link
    return sorted(best.values(), key=lambda link: (-link.positions * link.predicted, link.alternative))


def dictionary_lines(links: Iterable[Link]) -> list[str]:
    """The links as spinner dictionary lines (`key|alt|alt`), keys in order of their best link."""
    by_key: dict[str, list[str]] = {}
    for link in links:
        by_key.setdefault(link.key, []).append(link.alternative)
    return [f"{key}|{'|'.join(alts)}" for key, alts in by_key.items()]


def as_dictionary(links: Iterable[Link]) -> SpinnerDictionary:
    return SpinnerDictionary.from_lines(dictionary_lines(links), "<induced>")
