"""The pipeline engine (the default): candidates → first pass → pre-rank → rescore → rank, then the shared decision.

    pipeline = Pipeline.from_pretrained("models/default")        # candidates, ranker, channel + SmolLM2
    pipeline.restore("The firm mentioned final 12 months that ...")

Each stage is a public method on one batch type (`Batch` of `Piece`s, each holding its `Scored` candidates), so a
user, a benchmark or a test can run one stage alone:
1. `candidates`: every original a spinner could have swapped each word or phrase from (`normalizer.stages.candidates`:
   inverted thesauri, phrase tables, spintax), plus the seq2seq model's proposals when the checkpoint has one.
2. `first_pass`: one language-model pass per sentence (`normalizer.stages.lm`): each candidate's first sub-token
   against the spun word's, and the rest of the `CHEAP_FEATURES` (`normalizer.stages.features`).
3. `prerank`: the pre-ranker on those features; per span the best `prerank_k` above `gate` that pass the guard stay.
4. `rescore`: the span plus `right_context` words rescored with each candidate in place, as continuations of the
   first pass's KV cache (`lm_gain`, `gain_gap`, `spun_surprisal`).
5. `rank`: the ranker's probability per candidate; per span the likeliest becomes the proposal.
The `Restorer` base then moves each document's confidences to its own estimated spin density (`document_prior`,
`normalizer.restorer.DocumentPrior`: a clean document's down, a densely spun one's up, a swap the document makes
again and again more), applies proposals at or above the threshold (guard, overlaps) and splices them in.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from normalizer.checkpoint import (
    CANDIDATES_FILE,
    LM_DELTA_FILE,
    PIPELINE_FILE,
    PRERANKER_FILE,
    WORD_RATES_FILE,
    read_config,
    resolve_checkpoint,
)
from normalizer.edits import Edit, Focus, GuardConfig, Token, guard_reason, inside, tokenize
from normalizer.induce import Link, dictionary_lines, induce_links
from normalizer.inflection import match_case
from normalizer.memo import PAIRS_MEMO, Memo
from normalizer.restorer import DocumentPrior, Restorer, check_threshold
from normalizer.segment import text_list
from normalizer.stages.candidates import PPS_SOURCE, Candidate, CandidateTable, spintax_candidates
from normalizer.stages.dictionary import SpinnerDictionary
from normalizer.stages.features import (
    CHEAP_FEATURES,
    DOCUMENT_FEATURES,
    SCHEMAS,
    DocumentStats,
    cheap_features,
    document_features,
    lm_features,
    rescore_features,
)
from normalizer.stages.lm import SMOLLM2, FirstPass, LanguageModel
from normalizer.stages.ranker import Channel, Ranker
from normalizer.wordrates import WordRates

logger = logging.getLogger(__name__)


@dataclass
class PipelineConfig:
    """How the pipeline searches and decides; stored in the checkpoint as `pipeline_config.json`."""

    right_context: int = 3
    """Words after the span rescored with each candidate."""
    prerank_k: int = 4
    """Candidates per span kept for full rescoring, best pre-ranker score first."""
    gate: float = -5.0
    """Candidates whose pre-ranker log-probability is below this are not rescored (the speed/recall knob)."""
    threshold: float | None = None
    """Ranker probability at or above which an edit is applied; None = the ranker's own (chosen on dev)."""
    max_lm_tokens: int = 192
    """Longest piece in language-model tokens; a longer one is cut in half until it fits."""
    max_words: int = 48
    """Longest piece, in word tokens (see `normalizer.segment`)."""
    batch_size: int = 16
    """Sentences per language-model pass."""
    seq2seq: bool = True
    """Add the checkpoint's seq2seq model's proposals to the candidates (when the checkpoint has one)."""
    dictionary_prior: float = 1.5
    """With a user-supplied spinner dictionary: the log-odds, before the language model's evidence, that a span the
    dictionary could have written is a swap of its key. A dictionary candidate's confidence is
    sigmoid(lm_gain + prior) where that beats the ranker's (chosen on dev by `training.tune_dictionary`)."""
    dictionary_key_prior: float = 1.5
    """The same prior where the spun span is itself a key of the dictionary (the spinner would have replaced it had
    it been the original, so it is very likely a replacement)."""
    dictionary_k: int | None = None
    """Candidates per span that a spinner's dictionary links kept for rescoring beyond `prerank_k`, best pre-ranker
    score first (a word that is an alternative of a hundred keys costs a hundred rescorings otherwise); None: all."""
    dictionary_passes: int = 1
    """With a user-supplied spinner dictionary: 2 proposes every piece the first pass changed again with its edits
    applied (a dictionary spinner swaps one word in four, so a swap is often judged next to another still spun), 3
    once more with the second pass's edits too."""
    passes: int = 1
    """The same without a dictionary."""
    pass_threshold: float | None = None
    """Without a dictionary: the least confidence of an edit an extra pass finds (None: the threshold's)."""
    pps_prior: float | None = None
    """For a candidate the real spinner pairs link (the `pps` source of the table, `training.tortured`): the log-odds
    before the language model's evidence that the span is a swap of it, as for a dictionary: its confidence is at
    least sigmoid(lm_gain + pps_prior). None: such links are ranked like any other."""
    lm_candidates: int = 0
    """The language model's own likeliest words at each word of a piece (first sub-token, from the first pass's
    next-token distribution: left context only) that are not already candidates there, up to this many per word,
    added as candidates of kind `lm` (`LM_FEATURES`); 0: none. They reach originals no thesaurus of ours links."""
    document_prior: dict | None = None
    """`normalizer.restorer.DocumentPrior` settings (`rate`, `strength`, `max_shift`): each document's confidences
    moved to its own estimated spin density; None: off."""

    def __post_init__(self):
        if self.right_context < 0 or self.prerank_k < 1 or self.max_words < 1 or self.batch_size < 1:
            raise ValueError(f"right_context >= 0, prerank_k, max_words, batch_size >= 1: {self}")
        if self.lm_candidates < 0:
            raise ValueError(f"lm_candidates must be >= 0, got {self.lm_candidates}")
        if self.dictionary_passes not in (1, 2, 3) or self.passes not in (1, 2, 3):
            raise ValueError(f"passes and dictionary_passes must be 1, 2 or 3: {self}")
        if self.dictionary_k is not None and self.dictionary_k < 0:
            raise ValueError(f"dictionary_k must be None or >= 0, got {self.dictionary_k}")
        for value in (self.threshold, self.pass_threshold):
            if value is not None:
                check_threshold(value)
        if self.max_lm_tokens < 8:
            raise ValueError(f"max_lm_tokens must be >= 8, got {self.max_lm_tokens}")
        if self.document_prior is not None:
            try:
                DocumentPrior(**self.document_prior)
            except TypeError as e:  # not a mapping, an unknown key, a value of the wrong type
                raise ValueError(f"document_prior must hold DocumentPrior's numbers: {e}") from None

    @classmethod
    def load(cls, directory: str | Path) -> PipelineConfig:
        return read_config(cls, Path(directory) / PIPELINE_FILE)

    def save(self, directory: str | Path) -> None:
        (Path(directory) / PIPELINE_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")


@dataclass
class Scored:
    """A candidate edit on its way through the stages: its LM ids and its features, by name, as they are known."""

    candidate: Candidate
    ids: list[int]
    """LM token ids of the replacement chunk (the space before the span included)."""
    features: dict[str, float] = field(default_factory=dict)


@dataclass
class Piece:
    """One sentence piece: its word tokens, its LM ids and its candidates."""

    text: str
    tokens: list[Token]
    seq: list[int]
    """LM token ids, the start token first."""
    starts: list[int]
    """Position in `seq` of each token's chunk (a token and the space before it), then the end."""
    candidates: list[Scored] = field(default_factory=list)
    row: int = -1
    """This piece's row in the batch's first pass (-1: not scored)."""
    document: DocumentStats | None = None
    """Counts over the piece's whole document (the piece alone when no document is given); None where nothing
    reads them (`Pipeline.counts_documents`)."""


@dataclass
class Batch:
    """Pieces scored together, and the first pass they share."""

    pieces: list[Piece]
    state: FirstPass | None = None


class Pipeline(Restorer):
    """Restores spun text with candidates from thesauri and a pretrained language model to choose among them."""

    proposes_in_focus = True

    def __init__(
        self,
        table: CandidateTable,
        lm: LanguageModel,
        ranker: Ranker | None = None,
        channel: Channel | None = None,
        preranker: Ranker | None = None,
        config: PipelineConfig | None = None,
        guard: GuardConfig = GuardConfig(),
        seq2seq=None,
        dictionary: SpinnerDictionary | None = None,
    ):
        self.table = table
        self.lm = lm
        self.ranker = ranker
        self.preranker = preranker
        """Orders each span's candidates from the one pass's features; None keeps them all (up to `prerank_k`)."""
        self.channel = channel or Channel()
        self.config = config or PipelineConfig()
        self.guard = guard
        self.seq2seq = seq2seq
        """Optional `Seq2SeqRestorer` whose proposals join the candidates (and are a feature of every candidate)."""
        self.dictionary = dictionary
        """Optional user-supplied spinner dictionaries (`normalizer.stages.dictionary`), inverted into candidates."""
        self._pair_memo: tuple[tuple[int, int] | None, dict] = (None, Memo(PAIRS_MEMO))
        self.document_features: bool | None = None
        """Whether candidates get their `DOCUMENT_FEATURES`: None (default) only where the ranker reads them
        (`reads_documents`); True always (for training a ranker that will)."""

    def _memo(self) -> dict:
        """The pair features of candidates seen before (`cheap_features`), kept for this channel and table (either
        may be replaced on a loaded pipeline: a new one starts a new memo)."""
        key = (id(self.channel), id(self.table))
        if self._pair_memo[0] != key:
            self._pair_memo = (key, Memo(PAIRS_MEMO))
        return self._pair_memo[1]

    @property
    def features(self) -> tuple[str, ...]:
        """The names of the features behind each edit's confidence (what the ranker was trained on)."""
        return self.ranker.features if self.ranker is not None else SCHEMAS[0]

    @property
    def reads_documents(self) -> bool:
        """Whether the ranker weighs evidence from the whole document (`DOCUMENT_FEATURES`)."""
        return self.ranker is not None and DOCUMENT_FEATURES[0] in self.ranker.features

    @property
    def counts_documents(self) -> bool:
        """Whether the stages count each piece's document and give candidates their `DOCUMENT_FEATURES`."""
        return self.reads_documents if self.document_features is None else self.document_features

    @contextmanager
    def document_features_on(self, on: bool = True):
        """`document_features` set to True for the block (where `on`), and put back after it: scoring kept for a
        ranker that reads them (training one, or replaying many)."""
        own = self.document_features
        if on:
            self.document_features = True
        try:
            yield self
        finally:
            self.document_features = own

    @property
    def threshold(self) -> float:
        """The configured threshold, else the ranker's own (chosen on dev pairs)."""
        if self.config.threshold is not None:
            return self.config.threshold
        if self.ranker is None:
            raise ValueError("this pipeline has no ranker (train one with python -m training.ranker)")
        return self.ranker.threshold

    @property
    def max_words(self) -> int:
        return self.config.max_words

    @property
    def passes(self) -> int:
        """`dictionary_passes` when a spinner dictionary is given, else `passes`."""
        return self.config.dictionary_passes if self.dictionary is not None else self.config.passes

    @property
    def pass_threshold(self) -> float | None:
        """`pass_threshold` without a dictionary (a dictionary's extra passes keep the threshold)."""
        return self.config.pass_threshold if self.dictionary is None else None

    @property
    def document_prior(self) -> DocumentPrior | None:
        return DocumentPrior(**self.config.document_prior) if self.config.document_prior is not None else None

    @property
    def max_piece_tokens(self) -> int:
        return self.config.max_lm_tokens - 1  # the start token comes first

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | None = None,
        *,
        lm: str | Path = SMOLLM2,
        device=None,
        lm_dtype: str = "auto",
        dictionaries: list[str | Path] | SpinnerDictionary = (),
        **overrides,
    ) -> Pipeline:
        """Load a pipeline checkpoint (default: `$NORMALIZER_MODEL`, else the shipped model) and its language model.

        `lm_dtype`: the language model's precision (`normalizer.device.model_dtype`: auto, float32, bfloat16, float16,
        or int8: its linear layers' products in int8 on the CPU, `normalizer.stages.int8`).
        `dictionaries`: spinner dictionary files (`key|alt|alt` lines) the text's spinner may have used, or one
        `SpinnerDictionary` already read.
        `overrides` replace fields of the stored `PipelineConfig` (e.g. `threshold=0.8`); a None value keeps the
        stored one."""
        from normalizer.engines.seq2seq import Seq2SeqRestorer

        directory = resolve_checkpoint(path)
        if not (directory / CANDIDATES_FILE).is_file():
            raise FileNotFoundError(f"{directory}: no {CANDIDATES_FILE} (build it with python -m training.candidates)")
        config = PipelineConfig.load(directory)
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if overrides:
            config = PipelineConfig(**{**asdict(config), **overrides})
        seq2seq = None
        if config.seq2seq and (directory / "config.json").is_file():
            seq2seq = Seq2SeqRestorer.from_pretrained(directory, device=device)
        delta = None
        if (directory / LM_DELTA_FILE).is_file():
            if str(lm) == SMOLLM2:
                delta = directory / LM_DELTA_FILE
            else:
                logger.warning("%s: %s adapts SmolLM2, not %s: not applied", directory, LM_DELTA_FILE, lm)
        language_model = LanguageModel.from_pretrained(lm, device=device, dtype=lm_dtype, delta=delta)
        pipeline = cls(
            CandidateTable.load(directory / CANDIDATES_FILE),
            language_model,
            Ranker.load(directory, SCHEMAS),
            Channel.load(directory),
            Ranker.load(directory, CHEAP_FEATURES, PRERANKER_FILE),
            config,
            seq2seq=seq2seq,
            dictionary=dictionaries if isinstance(dictionaries, SpinnerDictionary) else _dictionary(dictionaries),
        )
        if (directory / WORD_RATES_FILE).is_file():
            pipeline.word_rates = WordRates.load(directory / WORD_RATES_FILE)
        return pipeline

    def with_dictionary(self, lines: list[str], source: str = "<lines>") -> Pipeline:
        """A copy of this pipeline that also reads these spinner dictionary lines (`key|alt|alt`) beside the
        dictionaries it has; the loaded models and the proposal cache are shared."""
        merged = SpinnerDictionary()
        if self.dictionary is not None:
            merged.originals = {alt: list(keys) for alt, keys in self.dictionary.originals.items()}
            merged.alternatives = dict(self.dictionary.alternatives)
        merged.add_lines(lines, source)
        out = copy.copy(self)
        out.dictionary = merged if len(merged) else self.dictionary
        return out

    def induce_dictionary(
        self, texts: Iterable[str], *, max_docs: int = 1000, progress: bool = False
    ) -> tuple[Pipeline, list[Link]]:
        """The links a dictionary spinner's corpus gives away (`normalizer.induce.induce_links`, read from the first
        `max_docs` of `texts`), and a copy of this pipeline that restores with them as a spinner dictionary (in
        `passes` passes, as without them, unless a user's dictionary was given: then `dictionary_passes`)."""
        if self.word_rates is None:
            raise ValueError(f"inducing a dictionary needs the checkpoint's {WORD_RATES_FILE} (clean news rates)")
        if isinstance(max_docs, bool) or not isinstance(max_docs, int) or max_docs < 1:
            raise ValueError(f"max_docs must be an integer >= 1, got {max_docs!r}")
        links = induce_links(self.lm, text_list(texts)[:max_docs], self.word_rates, progress=progress)
        induced = self.with_dictionary(dictionary_lines(links), "<induced>")
        if self.dictionary is None:  # as measured: the links alone keep the passes of restoring without them
            induced.config = replace(induced.config, dictionary_passes=self.config.passes)
        return induced, links

    # ---- the engine -------------------------------------------------------------------------------------------

    def piece_tokens(self, text: str) -> int:
        return sum(len(self.lm.chunk_ids(chunk)) for chunk in _chunks(text, tokenize(text)))

    def cache_key(self) -> tuple:
        parts = (self.table, self.lm, self.ranker, self.preranker, self.channel, self.seq2seq, self.dictionary)
        # The threshold, the document prior and the passes act after the proposals: changing them keeps the cache.
        search = replace(
            self.config, threshold=None, document_prior=None, dictionary_passes=1, passes=1, pass_threshold=None
        )
        return (repr(search), repr(self.guard), *map(id, parts))

    def propose(
        self,
        pieces: list[str],
        *,
        batch_size: int | None = None,
        progress: bool = False,
        documents: list[str] | None = None,
        focus: list[Focus] | None = None,
    ) -> list[list[Edit]]:
        """Per piece, the likeliest candidate of each span with the ranker's probability as its confidence; with
        `focus`, only of the spans inside piece i's ranges `focus[i]`."""
        if self.ranker is None:
            raise ValueError("this pipeline has no ranker (train one with python -m training.ranker)")
        found = self.score(pieces, batch_size=batch_size, progress=progress, documents=documents, focus=focus)
        return [self.rank(f) for f in found]

    def score(
        self,
        pieces: list[str],
        *,
        batch_size: int | None = None,
        progress: bool = False,
        documents: list[str] | None = None,
        focus: list[Focus] | None = None,
    ) -> list[list[Scored]]:
        """Every rescored candidate of every piece with all its features (stages 1-4), in length-sorted batches;
        `documents[i]` is piece i's whole document (default: the piece itself), `focus[i]` the ranges its
        candidates must lie within (default: anywhere)."""
        results: list[list[Scored]] = [[] for _ in pieces]
        order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))
        step = batch_size or self.config.batch_size
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(pieces), unit="sentence", desc="normalize", leave=False)
        for k in range(0, len(order), step):
            which = order[k : k + step]
            docs = [documents[i] for i in which] if documents is not None else None
            ranges = [focus[i] for i in which] if focus is not None else None
            batch = self.candidates([pieces[i] for i in which], docs, ranges)
            batch = self.rescore(self.prerank(self.first_pass(batch)))
            for i, piece in zip(which, batch.pieces):
                results[i] = piece.candidates
            if bar is not None:
                bar.update(len(which))
        if bar is not None:
            bar.close()
        return results

    # ---- stages -----------------------------------------------------------------------------------------------

    def candidates(
        self, texts: list[str], documents: list[str] | None = None, focus: list[Focus] | None = None
    ) -> Batch:
        """Stage 1: each piece tokenised for the LM, with its candidates (spintax, the table, a user's spinner
        dictionary, the seq2seq model's proposals merged in where they agree with the table) and the counts of its
        document (`documents[i]`, default the piece itself); with `focus`, only the candidates inside piece k's
        ranges `focus[k]`."""
        proposals = self.seq2seq.propose(texts) if self.seq2seq is not None else [[] for _ in texts]
        stats: dict[int, DocumentStats] = {}
        counting = self.counts_documents
        pieces = []
        for k, (text, proposed) in enumerate(zip(texts, proposals)):
            doc = documents[k] if documents is not None else text
            if counting and id(doc) not in stats:
                stats[id(doc)] = DocumentStats(doc)
            tokens, seq, starts = lm_reading(self.lm, text)
            piece = Piece(text, tokens, seq, starts, document=stats.get(id(doc)))
            if len(seq) > 1:
                ends = [0] + [t.end for t in tokens]
                found = self.merged_candidates(text, tokens, proposed)
                if focus is not None:
                    found = [c for c in found if inside(c, focus[k])]
                chunks = self.lm.chunk_ids_many([text[ends[c.first] : c.start] + c.after for c in found])
                piece.candidates += [Scored(c, ids) for c, ids in zip(found, chunks) if ids]
            pieces.append(piece)
        return Batch(pieces)

    def merged_candidates(self, text: str, tokens: list[Token], proposals: list[Edit] = ()) -> list[Candidate]:
        """Spintax alternatives, table candidates and the seq2seq model's proposals (merged where they agree)."""
        out = spintax_candidates(text, tokens)
        taken = [(c.first, c.last) for c in out]

        def free(a: int, b: int) -> bool:
            return all(b <= x or a >= y for x, y in taken)

        by_key = {}
        for c in self.table.propose(text, tokens):
            if free(c.first, c.last):
                by_key[(c.first, c.last, c.after.lower())] = len(out)
                out.append(c)
        if self.dictionary is not None:
            for c in self.dictionary.propose(text, tokens):
                key = (c.first, c.last, c.after.lower())
                if key in by_key:
                    out[by_key[key]] = replace(out[by_key[key]], dictionary=True, dictionary_key=c.dictionary_key)
                elif free(c.first, c.last):
                    by_key[key] = len(out)
                    out.append(c)
        first = {t.start: k for k, t in enumerate(tokens)}
        last = {t.end: k + 1 for k, t in enumerate(tokens)}
        for e in proposals:
            if e.start not in first or e.end not in last or not free(first[e.start], last[e.end]):
                continue
            key = (first[e.start], last[e.end], e.after.lower())
            if key in by_key:
                k = by_key[key]
                out[k] = replace(out[k], seq2seq=max(e.confidence, out[k].seq2seq))
            elif e.after:
                by_key[key] = len(out)
                out.append(
                    Candidate(e.start, e.end, key[0], key[1], e.before, e.after, "seq2seq", seq2seq=e.confidence)
                )
        return out

    def first_pass(self, batch: Batch) -> Batch:
        """Stage 2: one LM pass over the pieces that have candidates; every candidate gets its `CHEAP_FEATURES`.
        With `lm_candidates`, every piece is read, and the LM's own likeliest words at its words join them."""
        k = self.config.lm_candidates
        live = [p for p in batch.pieces if p.candidates or (k and len(p.seq) > 1)]
        if not live:
            return batch
        open_words = [lm_positions(p) if k else [] for p in live]
        batch.state = self.lm.first_pass(
            [p.seq for p in live],
            [[(p.starts[s.candidate.first], s.ids[0]) for s in p.candidates] for p in live],
            [[p.starts[i] for i in idx] for p, idx in zip(live, open_words)] if k else None,
            k,
        )
        for row, piece in enumerate(live):
            piece.row = row
            token_lp = batch.state.token_lp[row]
            for s, first_lp in zip(piece.candidates, batch.state.gathered[row]):
                spun_lp = token_lp[piece.starts[s.candidate.first]]
                s.features = cheap_features(
                    s.candidate, piece.tokens, first_lp, spun_lp, self.channel, self.table, self._memo()
                )
                if piece.document is not None:
                    s.features.update(document_features(s.candidate, piece.document, self.table))
            if k:
                piece.candidates += self.lm_proposals(piece, open_words[row], batch.state.top[row], token_lp)
        return batch

    def lm_proposals(
        self, piece: Piece, positions: list[int], top: dict[int, list[tuple[int, float]]], token_lp: list[float]
    ) -> list[Scored]:
        """The LM's likeliest whole words at each word `positions[i]` of a piece that are not candidates there
        yet, as `lm` candidates with their features (the first pass gave each its first sub-token's
        log-probability)."""
        words = self.lm.word_tokens()
        have = {(s.candidate.first, s.candidate.after.lower()) for s in piece.candidates}
        ends = [0] + [t.end for t in piece.tokens]
        out = []
        for i in positions:
            tok = piece.tokens[i]
            lower = tok.text.lower()
            at = piece.starts[i]
            for rank, (token, lp) in enumerate(top.get(at, ())):
                word = words.get(token)
                if word is None or word == lower or (i, word) in have:
                    continue
                after = match_case(word, tok.text)
                ids = self.lm.chunk_ids(piece.text[ends[i] : tok.start] + after)
                if not ids or ids[0] != token:  # the case carried over reads as another token: no first-pass score
                    continue
                have.add((i, word))
                c = Candidate(tok.start, tok.end, i, i + 1, tok.text, after, "lm")
                s = Scored(c, ids)
                s.features = cheap_features(c, piece.tokens, lp, token_lp[at], self.channel, self.table, self._memo())
                if piece.document is not None:
                    s.features.update(document_features(c, piece.document, self.table))
                cosine = self.lm.token_similarity(token, piece.seq[at])
                s.features.update(lm_features(rank, cosine, self.table.related(lower, word), lower, word))
                out.append(s)
        return out

    def prerank(self, batch: Batch) -> Batch:
        """Stage 3: the pre-ranker's log-probability (`prerank`) on every candidate; per span only the best
        `prerank_k` above `gate` that the guard allows stay (spintax always does)."""
        cfg = self.config
        for piece in batch.pieces:
            if not piece.candidates:
                continue
            if self.preranker is not None:
                scores = np.log(self.preranker.prob_records([s.features for s in piece.candidates]) + 1e-12)
            else:
                scores = np.zeros(len(piece.candidates))
            by_span: dict[tuple[int, int], list[tuple[float, int, Scored]]] = {}
            for k, (s, score) in enumerate(zip(piece.candidates, scores.tolist())):
                s.features["prerank"] = score
                if s.candidate.kind == "spintax" or self.evidenced(s.candidate) or score >= cfg.gate:
                    by_span.setdefault((s.candidate.first, s.candidate.last), []).append((score, k, s))
            kept = []
            for group in by_span.values():
                group.sort(key=lambda g: -g[0])
                # The guard only on the candidates that might be rescored: it is slow.
                allowed = [
                    g
                    for g in group
                    if guard_reason(g[2].candidate.before, g[2].candidate.after, self.guard, left(piece, g[2])) is None
                ]
                # A spinner's dictionary (a user's, or the real pairs' links) is evidence of its own: its candidates
                # are rescored beyond prerank_k (up to dictionary_k more).
                extra = [g for g in allowed[cfg.prerank_k :] if self.evidenced(g[2].candidate)][: cfg.dictionary_k]
                kept += allowed[: cfg.prerank_k] + extra
            piece.candidates = [s for _, _, s in kept]
        return batch

    def rescore(self, batch: Batch) -> Batch:
        """Stage 4: each surviving candidate's span plus `right_context` words scored as a continuation of the
        sentence's cached prefix; `RESCORE_FEATURES` complete each candidate's `FEATURES`."""
        items, owners = [], []  # continuation requests, and (candidate, base, surprisal) of each
        for piece in batch.pieces:
            if not piece.candidates:
                continue
            token_lp = batch.state.token_lp[piece.row]
            for s in piece.candidates:
                first, last = s.candidate.first, s.candidate.last
                stop = min(last + self.config.right_context, len(piece.tokens))
                right = piece.seq[piece.starts[last] : piece.starts[stop]]
                base = sum(token_lp[piece.starts[first] : piece.starts[stop]])
                surprisal = -sum(token_lp[piece.starts[first] : piece.starts[last]])
                items.append((piece.row, piece.starts[first], s.ids + right))
                owners.append((piece, s, base, surprisal))
        conts = self.lm.continuations(batch.state, items) if items else []
        # gain_gap needs every rescored candidate of a span, so collect the gains first.
        best: dict[tuple[int, int, int], float] = {}
        gains = []
        for (piece, s, base, _), cont in zip(owners, conts):
            key = (id(piece), s.candidate.first, s.candidate.last)
            gains.append(cont - base)
            best[key] = max(best.get(key, -1e9), cont - base)
        for (piece, s, _, surprisal), gain in zip(owners, gains):
            key = (id(piece), s.candidate.first, s.candidate.last)
            s.features.update(rescore_features(s.features["prerank"], gain, best[key], surprisal, s.features["pps"]))
        return batch

    def evidenced(self, c: Candidate) -> bool:
        """A spinner's dictionary says it writes `c.before` for `c.after`: a user's, or the real pairs' links (where
        the pps prior or the ranker weighs them)."""
        return c.dictionary or (
            bool(c.sources & PPS_SOURCE) and (self.config.pps_prior is not None or "pps" in self.features)
        )

    def dictionary_confidence(self, c: Candidate, lm_gain: float) -> float:
        """sigmoid(LM gain + the dictionary prior for this kind of span) of a dictionary candidate (the best of the
        user's and the real pairs' where both link it); 0 for any other."""
        priors = []
        if c.dictionary:
            priors.append(self.config.dictionary_key_prior if c.dictionary_key else self.config.dictionary_prior)
        if self.config.pps_prior is not None and c.sources & PPS_SOURCE:
            priors.append(self.config.pps_prior)
        if not priors:
            return 0.0
        return 1.0 / (1.0 + math.exp(-max(min(lm_gain + max(priors), 30.0), -30.0)))

    def rank(self, found: list[Scored]) -> list[Edit]:
        """Stage 5: per span the likeliest candidate, as an edit whose confidence is the ranker's probability and
        whose scores are its features. Spintax is template residue, always resolved: its alternatives compete on
        the LM gain alone."""
        if not found:
            return []
        probs = self.ranker.prob_records([s.features for s in found])
        best: dict[tuple[int, int], tuple[float, float, Scored]] = {}
        for p, s in zip(probs.tolist(), found):
            c = s.candidate
            spintax = c.kind == "spintax"
            if self.evidenced(c):
                p = max(p, self.dictionary_confidence(c, s.features["lm_gain"]))
            p, rank = (1.0, s.features["lm_gain"]) if spintax else (p, p)
            key = (c.first, c.last)
            if key not in best or rank > best[key][1]:
                best[key] = (p, rank, s)
        return [
            Edit(
                s.candidate.start,
                s.candidate.end,
                s.candidate.before,
                s.candidate.after,
                p,
                tuple((name, s.features[name]) for name in self.features),
            )
            for p, _, s in best.values()
        ]


def lm_positions(piece: Piece) -> list[int]:
    """The words of a piece the LM may propose its own words for: alphabetic, not a name (a capital only at the
    piece's start) and not an acronym."""
    return [
        i
        for i, t in enumerate(piece.tokens)
        if t.text.isalpha() and (i == 0 or not t.text[0].isupper()) and not (len(t.text) > 1 and t.text.isupper())
    ]


def left(piece: Piece, s: Scored) -> str:
    """The word before a candidate's span in its piece (for the guard's unit rule)."""
    return piece.tokens[s.candidate.first - 1].text if s.candidate.first > 0 else ""


def lm_reading(lm: LanguageModel, text: str) -> tuple[list[Token], list[int], list[int]]:
    """A piece as the language model reads it: its word tokens, its LM ids (the start token first) and the position
    in those ids of each token's chunk (the token and the space before it), then the end."""
    tokens = tokenize(text)
    starts, seq = [], [lm.start_id]
    for chunk in _chunks(text, tokens):
        starts.append(len(seq))
        seq += lm.chunk_ids(chunk)
    starts.append(len(seq))
    return tokens, seq, starts


def _chunks(text: str, tokens: list[Token]) -> list[str]:
    """Each token with the text between it and the token before (its leading space), as the LM reads it."""
    ends = [0] + [t.end for t in tokens]
    return [text[ends[k] : tok.end] for k, tok in enumerate(tokens)]


def _dictionary(paths) -> SpinnerDictionary | None:
    return SpinnerDictionary.load(paths) if paths else None
