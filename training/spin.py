"""A spinner simulator: swap words and phrases for thesaurus synonyms the way commercial article spinners do.

`Spinner(profile, rate, seed).spin(text)` returns the spun text and the alignment (every swapped span, from what,
to what, with offsets on both sides). What it imitates:
- synonyms of any sense (spinners do not disambiguate), chosen with a preference for frequent words;
- inflection carried over with lemminflect ("said" -> "mentioned", "attacks" -> "assaults"); capitals kept;
  "a"/"an" left as they were even when the next word now needs the other one;
- function words, multiword phrases and idioms from `training.phrases`, and names of institutions at a lower rate;
- numbers, dates, URLs, acronyms and capitalised words inside a sentence (most proper names) are never touched.

Profiles (see `PROFILES`) differ in lexicon sources, choice policy and phrase choices, so that a model can be
tested on one it never saw in training. Run `spin FILE` (or `python -m training.spin`) to see what one does.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from dataclasses import dataclass, field
from functools import lru_cache

from normalizer.edits import URL_RE, tokenize
from normalizer.inflection import analyse, analyses, inflect, match_case  # noqa: F401 (re-exported)
from training import phrases
from training.lexicon import Lexicon, load

NEVER = frozenset(
    "a an the and or nor of to i me my it its he him his she her they them their we us our you your is are was were "
    "be been being am has have had do does did not no this that these those who whom which what there here mr mrs "
    "ms dr st may can will would shall should could might must one two three four five six seven eight nine ten "
    "eleven twelve twenty thirty forty fifty hundred thousand million billion trillion monday tuesday wednesday "
    "thursday friday saturday sunday january february march april june july august september october november "
    "december".split()
)
_UPOS = {"NOUN": "n", "VERB": "v", "ADJ": "a", "ADV": "r"}


@dataclass(frozen=True)
class Profile:
    """How one simulated spinner chooses what to swap and what to put there."""

    name: str
    sources: tuple[str, ...]
    """Lexicon sources whose synonyms are used (see `training.lexicon.SOURCES`)."""
    policy: str = "frequent"
    """`frequent`: softmax over word frequency at `temperature`; `uniform`: uniform among the `top_k` most frequent."""
    temperature: float = 0.5
    """Softmax temperature over Zipf frequency; low means nearly always the most frequent synonym."""
    top_k: int = 10
    """Candidates considered (most frequent first)."""
    pos_strict: bool = False
    """Keep to the word's part of speech where the source has parts of speech (spinners mostly do not)."""
    tables: tuple[str, ...] = ("function", "phrases", "idioms", "institutions")
    """Phrase tables in use (see `training.phrases.TABLES`)."""
    phrase_choice: int | None = 0
    """Which replacement of a phrase-table entry to use; None picks one at random."""
    institution_scale: float = 0.3
    """Rate multiplier for names of institutions."""
    multiword_penalty: float = 1.0
    """Zipf points taken off multiword synonyms (spinners prefer single words)."""
    doc: str = ""

    def __post_init__(self):
        if self.policy not in ("frequent", "uniform"):
            raise ValueError(f"policy must be 'frequent' or 'uniform', got {self.policy!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


PROFILES = {
    p.name: p
    for p in (
        Profile(
            "spinbot",
            ("moby",),
            "frequent",
            0.5,
            tables=("function", "phrases", "institutions"),
            phrase_choice=0,
            doc="Moby only, nearly always the most frequent synonym, first phrase choice; no idioms.",
        ),
        Profile(
            "wordai",
            ("wordnet", "mythes"),
            "frequent",
            1.0,
            pos_strict=True,
            phrase_choice=1,
            doc="WordNet + MyThes within the word's part of speech, frequency-weighted; second phrase choice.",
        ),
        Profile(
            "spinrewriter",
            ("moby", "wordnet", "mythes"),
            "uniform",
            top_k=6,
            phrase_choice=None,
            doc="All three lexicons, uniform among the 6 most frequent; random phrase choice.",
        ),
        Profile(
            "bestspinner",
            ("mythes", "moby"),
            "frequent",
            1.5,
            top_k=15,
            phrase_choice=2,
            institution_scale=0.5,
            multiword_penalty=0.3,
            doc="Held out of training: MyThes + Moby, flatter frequency weighting, multiword synonyms welcome, "
            "third phrase choice, institutions more often.",
        ),
    )
}
TRAIN_PROFILES = ("spinbot", "wordai", "spinrewriter")
HELD_OUT_PROFILES = ("bestspinner",)


@dataclass(frozen=True)
class Swap:
    """One swapped span: `original[orig_start:orig_end]` became `spun[spun_start:spun_end]`."""

    orig_start: int
    orig_end: int
    spun_start: int
    spun_end: int
    original: str
    spun: str


@dataclass
class SpinResult:
    """A spun text and its alignment to the original."""

    original: str
    spun: str
    swaps: list[Swap] = field(default_factory=list)


@lru_cache(maxsize=200_000)
def _is_word(word: str) -> bool:
    """Whether an inflected form is attested English (lemminflect happily makes "dones" from "done")."""
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en") >= 1.5


class Spinner:
    """Spin text like a commercial spinner. Deterministic for a given profile, rate, seed and sequence of calls."""

    def __init__(
        self, profile: str | Profile = "spinbot", rate: float = 0.3, seed: int = 0, lexicon: Lexicon | None = None
    ):
        if not 0.0 <= rate <= 0.6:
            raise ValueError(f"rate must be between 0 and 0.6, got {rate}")
        if isinstance(profile, str):
            if profile not in PROFILES:
                raise ValueError(f"unknown profile {profile!r}; choose from {sorted(PROFILES)}")
            profile = PROFILES[profile]
        self.profile = profile
        self.rate = rate
        self.rng = random.Random(seed)
        self.lexicon = lexicon if lexicon is not None else load()
        self._tables = {name: phrases.TABLES[name] for name in profile.tables}
        self._cache: dict[str, tuple[list[str], list[float]]] = {}
        self._max_phrase = max((len(k.split()) for t in self._tables.values() for k in t), default=1)

    def _phrase(self, key: str, rng: random.Random) -> tuple[str, str] | None:
        """(table name, replacement) for a phrase-table key, or None."""
        for name, table in self._tables.items():
            if key in table:
                choices = [c for c in table[key] if c != key]
                if not choices:
                    return None
                if self.profile.phrase_choice is None:
                    return name, rng.choice(choices)
                choice = table[key][min(self.profile.phrase_choice, len(table[key]) - 1)]
                return (name, choice) if choice != key else None
        return None

    def _candidates(self, word: str) -> tuple[list[str], list[float]]:
        if word not in self._cache:
            self._cache[word] = candidates(self.profile, self.lexicon, word)
        return self._cache[word]

    def spin(self, text: str, rng: random.Random | None = None, rate: float | None = None) -> SpinResult:
        """Spin `text`; `rng` overrides the spinner's own generator (for order-independent, per-item seeding) and
        `rate` its swap rate (so one spinner, with its candidate cache, serves many rates)."""
        rng = rng or self.rng
        rate = self.rate if rate is None else rate
        toks = tokenize(text)
        # Tokens inside URLs and e-mail addresses are never swapped.
        protected = [m.span() for m in URL_RE.finditer(text)]
        if protected:
            toks = [t for t in toks if not any(a <= t.start < b for a, b in protected)]
        out: list[str] = []
        swaps: list[Swap] = []
        pos = 0  # next character of `text` not yet copied
        spun_len = 0
        sentence_start = True
        i = 0
        while i < len(toks):
            tok = toks[i]
            replacement, n = self._swap_at(text, toks, i, sentence_start, rng, rate)
            if replacement is None:
                sentence_start = tok.text in ".!?" or (sentence_start and not tok.text[0].isalnum())
                i += 1
                continue
            end = toks[i + n - 1].end
            out.append(text[pos : tok.start])
            spun_len += tok.start - pos
            out.append(replacement)
            swaps.append(
                Swap(tok.start, end, spun_len, spun_len + len(replacement), text[tok.start : end], replacement)
            )
            spun_len += len(replacement)
            pos = end
            sentence_start = False
            i += n
        out.append(text[pos:])
        return SpinResult(text, "".join(out), swaps)

    def _swap_at(self, text, toks, i, sentence_start, rng, rate: float) -> tuple[str | None, int]:
        """The replacement for the span starting at token i and its length in tokens, or (None, 1)."""
        base_rate = rate
        if base_rate == 0.0:
            return None, 1
        word = toks[i].text
        if not word[0].isalpha():
            return None, 1
        # Phrase tables and multiword lexicon entries, longest first; words must be separated by single spaces.
        for n in range(min(self._max_phrase, len(toks) - i), 0, -1):
            span = toks[i : i + n]
            if any(text[a.end : b.start] != " " for a, b in zip(span, span[1:])):
                continue
            surface = text[span[0].start : span[-1].end]
            key = surface.lower()
            hit = self._phrase(key, rng)
            if hit is None:
                continue
            table, replacement = hit
            capitalised = surface[0].isupper() and not sentence_start
            if table == "institutions":
                rate = base_rate * self.profile.institution_scale
            elif capitalised:  # a phrase inside a name ("Bank of America") is left alone
                continue
            else:
                rate = base_rate
            if rng.random() < rate:
                return match_case(replacement, surface), n
            return None, n if n > 1 else 1
        # Single words: mid-sentence capitals are names, and so is a sentence-initial capital followed by another
        # ("War Office"); acronyms and words with digits are left alone.
        next_capital = i + 1 < len(toks) and toks[i + 1].text[0].isupper()
        if word[0].isupper() and (not sentence_start or next_capital):
            return None, 1
        if (len(word) > 1 and word.isupper()) or not word.isalpha():
            return None, 1
        lw = word.lower()
        if lw in NEVER or len(lw) < 3:
            return None, 1
        cands, weights = self._candidates(lw)
        if not cands or rng.random() >= base_rate:
            return None, 1
        return match_case(rng.choices(cands, weights=weights, k=1)[0], word), 1


def candidates(profile: Profile, lexicon: Lexicon, word: str) -> tuple[list[str], list[float]]:
    """Inflected synonyms of a lower-case word under `profile`, most frequent first, and their choice weights.

    Every reading of the word counts (spinners do not disambiguate): "saying" gives synonyms of the noun and,
    inflected, of the verb "say".
    """
    best: dict[str, float] = {}
    for lemma, upos, tag in analyses(word):
        pos = _UPOS.get(upos) if profile.pos_strict and upos else None
        for s in lexicon.synonyms(lemma, profile.sources, pos)[: 3 * profile.top_k]:
            if lemma in s.split() or word in s.split():
                continue
            form = inflect(s, tag, upos)
            if form is None or form == word or (form != s and not _is_word(form.split()[0 if upos == "VERB" else -1])):
                continue
            score = lexicon.frequency(s) - (profile.multiword_penalty if " " in s else 0.0)
            best[form] = max(best.get(form, -1e9), score)
    cands = sorted(best, key=lambda f: (-best[f], f))[: profile.top_k]
    if profile.policy == "uniform":
        weights = [1.0] * len(cands)
    else:
        top = best[cands[0]] if cands else 0.0
        weights = [math.exp((best[c] - top) / profile.temperature) for c in cands]
    return cands, weights


DICTIONARY_MODES = ("once", "each")
"""How a dictionary spinner picks among a key's alternatives: `once` per key for the whole run (the same choice
again and again), or at random for `each` occurrence."""


@dataclass(frozen=True)
class DictionaryProfile:
    """A simulated dictionary spinner: the dictionary it builds from open lexicons and how it applies it."""

    name: str
    sources: tuple[str, ...]
    """Lexicon sources the dictionary's synonyms come from."""
    mode: str = "once"
    """`once` per key or for `each` occurrence (see `DICTIONARY_MODES`)."""
    size: int = 15000
    """Lines in the dictionary."""
    alternatives: int = 3
    """Alternatives per key."""
    tables: tuple[str, ...] = ("function", "phrases", "idioms", "institutions")
    """Phrase tables whose entries become phrase lines."""
    seed: int = 0
    coverage: float = 0.3
    """Share of the frequent word forms that get a line (a real dictionary covers a selection: about a quarter of
    the words of news text end up replaced)."""
    doc: str = ""


DICTIONARY_PROFILES = {
    p.name: p
    for p in (
        DictionaryProfile("dict-moby", ("moby",), "once", seed=11, doc="Moby words, once per key."),
        DictionaryProfile("dict-wordnet", ("wordnet",), "each", 12000, 2, seed=12, doc="WordNet, per occurrence."),
        DictionaryProfile("dict-all", ("moby", "wordnet", "mythes"), "once", 9000, 4, ("function", "phrases"), 13),
        DictionaryProfile(
            "dict-mythes-once",
            ("mythes",),
            "once",
            tables=("function",),
            seed=21,
            doc="Held out of training: MyThes only (no training dictionary uses it), function words as its only "
            "phrase lines, once per key.",
        ),
        DictionaryProfile(
            "dict-mythes-each", ("mythes",), "each", tables=("function",), seed=21, doc="The same, per occurrence."
        ),
    )
}
TRAIN_DICTIONARY_PROFILES = ("dict-moby", "dict-wordnet", "dict-all")
HELD_OUT_DICTIONARY_PROFILES = ("dict-mythes-once", "dict-mythes-each")


def dictionary_spinner(name: str, lexicon: Lexicon | None = None) -> DictionarySpinner:
    """The dictionary spinner of a `DICTIONARY_PROFILES` entry, its dictionary built from `lexicon`."""
    p = DICTIONARY_PROFILES[name]
    entries = build_dictionary(
        lexicon or load(),
        p.sources,
        size=p.size,
        alternatives=p.alternatives,
        tables=p.tables,
        seed=p.seed,
        coverage=p.coverage,
    )
    return DictionarySpinner(entries, p.mode, p.seed)


def build_dictionary(
    lexicon: Lexicon,
    sources: tuple[str, ...],
    *,
    size: int = 15000,
    alternatives: int = 3,
    tables: tuple[str, ...] = ("function", "phrases", "idioms", "institutions"),
    seed: int = 0,
    coverage: float = 1.0,
) -> list[tuple[str, list[str]]]:
    """A spinner dictionary in the `key|alt|alt` family's shape, from open lexicons: phrase-table keys first (a
    dictionary spinner applies phrase lines first), then the most frequent word forms that have synonyms in
    `sources` (each kept with probability `coverage`), each with up to `alternatives` inflected synonyms (drawn by
    `seed` from the most frequent), up to `size` lines in all."""
    profile = Profile("dictionary", sources, "uniform", top_k=3 * alternatives, multiword_penalty=0.5)
    rng = random.Random(seed)
    entries: list[tuple[str, list[str]]] = []
    for table in tables:
        for key, alts in sorted(phrases.TABLES[table].items()):
            alts = [a for a in alts if a != key][:alternatives]
            if alts:
                entries.append((key, alts))
    seen = {k for k, _ in entries}
    forms = sorted(
        (w for w in lexicon.zipf if w.isalpha() and len(w) >= 3 and w not in seen), key=lambda w: (-lexicon.zipf[w], w)
    )
    for word in forms:
        if len(entries) >= size:
            break
        if coverage < 1.0 and random.Random(f"{seed}:{word}").random() >= coverage:
            continue
        cands, _ = candidates(profile, lexicon, word)
        if cands:
            alts = cands[: 2 * alternatives]
            rng.shuffle(alts)
            alts = alts[:alternatives]
            entries.append((word, alts))
    # Phrase lines first, longest first, as the spinners apply them.
    return sorted(entries, key=lambda e: -len(e[0].split()))


def write_dictionary(entries: list[tuple[str, list[str]]], path) -> None:
    """Write `key|alt|alt` lines."""
    with open(path, "w", encoding="utf-8") as f:
        for key, alts in entries:
            f.write("|".join([key, *alts]) + "\n")


class DictionarySpinner:
    """Spin text the way dictionary spinners (WP Auto Spinner, Turbo Spinner and clones) do: every occurrence of a
    key (matched case-insensitively, whole words, lines in order, phrase lines first) that does not overlap an
    earlier replacement is replaced by one of its alternatives, chosen once per key or for each occurrence; the
    first letter's case is copied; "a"/"an" before a replaced word is left as it was. URLs and e-mail addresses,
    acronyms and numbers are left alone."""

    def __init__(self, entries: list[tuple[str, list[str]]], mode: str = "once", seed: int = 0):
        if mode not in DICTIONARY_MODES:
            raise ValueError(f"mode must be one of {DICTIONARY_MODES}, got {mode!r}")
        self.entries = {k.lower(): alts for k, alts in entries if alts}
        self.order = {k.lower(): n for n, (k, _) in enumerate(entries)}
        self.mode, self.seed = mode, seed
        self.rng = random.Random(seed)
        self.max_words = max((len(k.split()) for k in self.entries), default=1)
        self._once: dict[str, str] = {}

    def dictionary(self):
        """This spinner's dictionary as the pipeline reads a user's file of it (`SpinnerDictionary`)."""
        from normalizer.stages.dictionary import SpinnerDictionary

        return SpinnerDictionary.from_lines(["|".join([k, *a]) for k, a in self.entries.items()])

    def _choice(self, key: str, rng: random.Random) -> str:
        alts = self.entries[key]
        if self.mode == "each":
            return rng.choice(alts)
        if key not in self._once:
            self._once[key] = random.Random(f"{self.seed}:{key}").choice(alts)
        return self._once[key]

    def spin(self, text: str, rng: random.Random | None = None) -> SpinResult:
        rng = rng or self.rng
        toks = tokenize(text)
        protected = [m.span() for m in URL_RE.finditer(text)]
        toks = [t for t in toks if not any(a <= t.start < b for a, b in protected)]
        # Every match of every key, then taken in dictionary order (phrase lines first), skipping overlaps.
        matches = []
        for i, tok in enumerate(toks):
            if not tok.text[0].isalpha() or (len(tok.text) > 1 and tok.text.isupper()):
                continue
            for n in range(1, min(self.max_words, len(toks) - i) + 1):
                span = toks[i : i + n]
                if n > 1 and (text[span[-2].end : span[-1].start] != " " or not span[-1].text[0].isalpha()):
                    break
                key = text[span[0].start : span[-1].end].lower()
                if key in self.entries:
                    matches.append((self.order[key], i, i + n, key))
        taken: list[tuple[int, int]] = []
        for _, i, j, key in sorted(matches):
            if all(j <= a or i >= b for a, b in taken):
                taken.append((i, j))
        out, swaps, pos, spun_len = [], [], 0, 0
        for i, j in sorted(taken):
            start, end = toks[i].start, toks[j - 1].end
            surface = text[start:end]
            replacement = match_case(self._choice(surface.lower(), rng), surface[:1] + surface[1:].lower())
            out.append(text[pos:start])
            spun_len += start - pos
            out.append(replacement)
            swaps.append(Swap(start, end, spun_len, spun_len + len(replacement), surface, replacement))
            spun_len += len(replacement)
            pos = end
        out.append(text[pos:])
        return SpinResult(text, "".join(out), swaps)


def main(argv: list[str] | None = None) -> None:
    """Spin a file (or stdin) line by line: `spin [FILE] --profile spinbot --rate 0.3 --seed 0`."""
    parser = argparse.ArgumentParser(description="Spin text the way article spinners do (for inspection).")
    parser.add_argument("file", nargs="?", default="-", help="text file, or - for stdin")
    parser.add_argument("--profile", default="spinbot", choices=sorted(PROFILES))
    parser.add_argument("--rate", type=float, default=0.3, help="share of eligible words to swap, 0 to 0.6")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--show-swaps", action=argparse.BooleanOptionalAction, default=False, help="print each swap to stderr"
    )
    args = parser.parse_args(argv)
    try:
        spinner = Spinner(args.profile, args.rate, args.seed)
    except ValueError as e:
        parser.error(str(e))
    try:
        stream = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")
    except OSError as e:
        sys.exit(f"spin: {e}")
    with stream:
        for line in stream:
            result = spinner.spin(line.rstrip("\n"))
            print(result.spun)
            if args.show_swaps:
                for s in result.swaps:
                    print(f"  {s.original!r} -> {s.spun!r}", file=sys.stderr)


if __name__ == "__main__":
    main()
