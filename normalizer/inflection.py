"""Inflection shared by the spinner simulator and the candidate stage: a word's readings and a phrase's inflected
forms (lemminflect), and capitalisation carried from one word to another."""

from __future__ import annotations

from functools import lru_cache

BASE_TAGS = frozenset({"NN", "VB", "VBP", "JJ", "RB"})


@lru_cache(maxsize=200_000)
def analyses(word: str) -> tuple[tuple[str, str | None, str | None], ...]:
    """Every (lemma, universal POS, Penn tag) reading lemminflect knows for a lower-case word, else the word itself."""
    from lemminflect import getAllInflections, getAllLemmas

    found = []
    for upos, lemmas in getAllLemmas(word).items():
        for lemma in lemmas:
            for tag, forms in getAllInflections(lemma, upos=upos).items():
                if word in forms and (lemma, upos, tag) not in found:
                    found.append((lemma, upos, tag))
    # A word equal to its lemma is a base form; lemminflect also lists it as e.g. NNS ("war") when a plural
    # spelling variant coincides, which would inflect its synonyms wrongly.
    base = [r for r in found if r[0] != word or r[2] in BASE_TAGS]
    return tuple(base or found) or ((word, None, None),)


def analyse(word: str) -> tuple[str, str | None, str | None]:
    """The first reading of `analyses`."""
    return analyses(word)[0]


@lru_cache(maxsize=50_000)
def _all_forms(lemma: str, proper: bool) -> dict[str, tuple[str, ...]]:
    """lemminflect's forms of `lemma` by Penn tag, looked up once per lemma (it copies its tables on every call)."""
    from lemminflect import getAllInflections

    return getAllInflections(lemma, "PROPN" if proper else None)


@lru_cache(maxsize=50_000)
def _oov_forms(lemma: str, upos: str) -> dict[str, tuple[str, ...]]:
    from lemminflect import getAllInflectionsOOV

    return getAllInflectionsOOV(lemma, upos)


def _tagged(forms: dict[str, tuple[str, ...]], tag: str) -> tuple[str, ...] | None:
    return forms.get({"NNP": "NN", "NNPS": "NNS"}.get(tag, tag))


def inflection(lemma: str, tag: str) -> tuple[str, ...]:
    """`lemminflect.getInflection(lemma, tag)`, the same steps over forms looked up once per lemma: the lexicon's
    form for the tag, else for its alternative tags, else the rules' for a word it lacks."""
    from lemminflect.core.LexicalUtils import pennTagAlts, tagToUPos

    upos = tagToUPos(tag)
    forms = _all_forms(lemma, upos == "PROPN")
    form = _tagged(forms, tag)
    if form is None:
        for alt in pennTagAlts(tag):
            form = forms.get(alt)
            if form:
                break
    if form is None:
        form = _tagged(_oov_forms(lemma, upos), tag)
    return form or ()


@lru_cache(maxsize=200_000)
def inflect(phrase: str, tag: str | None, upos: str | None) -> str | None:
    """`phrase` inflected for Penn `tag` (verbs on their first word, others on their last), or None if impossible."""
    if tag is None or tag in BASE_TAGS:
        return phrase
    parts = phrase.split()
    head = 0 if upos == "VERB" else len(parts) - 1
    forms = inflection(parts[head], tag)
    if not forms:
        return None
    parts[head] = forms[0]
    return " ".join(parts)


def match_case(replacement: str, original: str) -> str:
    """Carry the capitalisation of `original` over to `replacement` (Title, lower; ALL CAPS for several letters)."""
    if len(original) > 1 and original.isupper():
        return replacement.upper()
    if original[:1].isupper():
        if all(w[:1].isupper() for w in original.split()):
            return " ".join(w[:1].upper() + w[1:] for w in replacement.split())
        return replacement[:1].upper() + replacement[1:]
    return replacement
