"""The restoration pipeline: spintax → candidates → language-model scores → ranker → guard → splice.

    pipeline = Pipeline.from_pretrained("models/default")        # candidates, ranker, channel + SmolLM2
    pipeline.restore("The firm mentioned final 12 months that ...")

Each sentence piece goes through the stages in turn, passing `Scored` candidates along:
1. `normalizer.candidates`: every original a spinner could have swapped each word or phrase from.
2. `normalizer.lm`, one pass over the sentence: each candidate's first sub-token against the spun word's
   (`first_gain`) and the spun span's surprisal. Candidates are pre-ranked by that, and per span only the best
   `prerank_k` above `gate` go on.
3. `normalizer.lm`, continuations: the span plus `right_context` words rescored with the candidate in place, from the
   first pass's KV cache (`lm_gain`).
4. `normalizer.ranker`: features (LM gains, channel evidence from pairs, thesaurus rank and sources, frequencies,
   a/an agreement) combined into a probability; per span the best candidate, applied at or above `threshold`.
5. Guard (numbers, dates, names refused) and splice: text outside an edit is byte-identical to the input.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from normalizer.candidates import CANDIDATES_FILE, Candidate, CandidateTable
from normalizer.core import DEFAULT_MODEL, DocumentCalls, Edit, Normalizer, Rejection, Restoration
from normalizer.edits import GuardConfig, apply_with_repairs, guard_reason, map_back, tokenize
from normalizer.lm import SMOLLM2, LanguageModel
from normalizer.ranker import CHEAP_FEATURES, PRERANKER_FILE, Channel, Ranker, ranker_features
from normalizer.segment import text_list, word_pieces

logger = logging.getLogger(__name__)

PIPELINE_FILE = "pipeline_config.json"
ENGINES = ("auto", "pipeline", "seq2seq", "writer")
_SPINTAX_RE = re.compile(r"\{([^{}\n]*)\}")
_VOWEL = set("aeiouAEIOU")


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
    """Pieces longer than this in LM tokens are left unchanged (and reported as rejected)."""
    max_words: int = 48
    """Longest piece, in word tokens (see `normalizer.segment`)."""
    batch_size: int = 16
    """Sentences per language-model pass."""
    passes: int = 1
    """1, or 2: pieces the first pass changed are scored again with those edits applied."""
    seq2seq: bool = True
    """Add the checkpoint's seq2seq model's proposals to the candidates (when the checkpoint has one)."""
    writer: bool = False
    """Score each rescored candidate with the checkpoint's edit writer (`writer/`, a LoRA adapter over the LM):
    two more ranker features (`WRITER_FEATURES`). The ranker must have been trained with them."""

    def __post_init__(self):
        if self.passes not in (1, 2):
            raise ValueError(f"passes must be 1 or 2, got {self.passes}")
        if self.right_context < 0 or self.prerank_k < 1 or self.max_words < 1 or self.batch_size < 1:
            raise ValueError(f"right_context >= 0, prerank_k, max_words, batch_size >= 1: {self}")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {self.threshold}")
        if self.max_lm_tokens < 8:
            raise ValueError(f"max_lm_tokens must be >= 8, got {self.max_lm_tokens}")

    @classmethod
    def load(cls, directory: str | Path) -> PipelineConfig:
        path = Path(directory) / PIPELINE_FILE
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
        try:
            return cls(**data)
        except TypeError as e:
            raise ValueError(f"{path}: {e}") from None

    def save(self, directory: str | Path) -> None:
        (Path(directory) / PIPELINE_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")


@dataclass
class Scored:
    """A candidate edit with its features (the `Pipeline.features` vector) once scored."""

    candidate: Candidate
    features: list[float]


class Pipeline(DocumentCalls):
    """Restores spun text with candidates from a thesaurus and a pretrained language model to choose among them."""

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
        writer=None,
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
        """Optional seq2seq `Normalizer` whose proposals join the candidates (and are a feature of every candidate)."""
        self.writer = writer
        """Optional `normalizer.writer.EditWriter` that scores every rescored candidate (`WRITER_FEATURES`)."""

    @property
    def features(self) -> tuple[str, ...]:
        """The names of the vector each `Scored` candidate carries (what the ranker was trained on)."""
        return ranker_features(self.writer is not None)

    @classmethod
    def from_pretrained(
        cls, path: str | Path | None = None, *, lm: str | Path = SMOLLM2, device=None, **overrides
    ) -> Pipeline:
        """Load a pipeline checkpoint (candidate table, ranker, channel, config) and the language model.

        `overrides` replace fields of the stored `PipelineConfig` (e.g. `threshold=0.8`)."""
        directory = Path(path) if path is not None else DEFAULT_MODEL
        if not (directory / CANDIDATES_FILE).is_file():
            raise FileNotFoundError(f"{directory}: no {CANDIDATES_FILE} (build it with python -m training.candidates)")
        config = PipelineConfig.load(directory)
        if overrides:
            config = PipelineConfig(**{**asdict(config), **overrides})
        seq2seq = writer = None
        if config.seq2seq and (directory / "config.json").is_file():
            seq2seq = Normalizer.from_pretrained(directory, device=device)
        if config.writer:
            from normalizer.writer import WRITER_DIR, EditWriter

            writer = EditWriter.from_pretrained(directory / WRITER_DIR, lm, device=device)
        return cls(
            CandidateTable.load(directory / CANDIDATES_FILE),
            LanguageModel.from_pretrained(lm, device=device),
            Ranker.load(directory, features=ranker_features(writer is not None)),
            Channel.load(directory),
            Ranker.load(directory, PRERANKER_FILE, CHEAP_FEATURES),
            config,
            seq2seq=seq2seq,
            writer=writer,
        )

    # ---- public API -------------------------------------------------------------------------------------------

    def restore_batch(
        self,
        texts: Iterable[str],
        batch_size: int | None = None,
        progress: bool = False,
        threshold: float | None = None,
    ) -> list[Restoration]:
        """Restore documents (any iterable of strings, read once). `batch_size` (sentences per language-model
        pass) and `threshold` (ranker probability to apply an edit) override the configured ones for this call."""
        texts = text_list(texts)
        if self.ranker is None:
            raise ValueError("this pipeline has no ranker (train one with python -m training.ranker)")
        threshold = threshold if threshold is not None else self.config.threshold
        threshold = threshold if threshold is not None else self.ranker.threshold
        pieces = word_pieces(texts, self.config.max_words)
        found = self._restore_pieces([texts[d][a:b] for d, a, b in pieces], threshold, batch_size, progress)
        edits: list[list[Edit]] = [[] for _ in texts]
        rejected: list[list[Rejection]] = [[] for _ in texts]
        for (d, a, _), (chosen, refused) in zip(pieces, found):
            edits[d] += [replace(e, start=e.start + a, end=e.end + a) for e in chosen]
            rejected[d] += [
                Rejection(replace(r.edit, start=r.edit.start + a, end=r.edit.end + a), r.reason) for r in refused
            ]
        return [Restoration.of(text, ed, rej) for text, ed, rej in zip(texts, edits, rejected)]

    # ---- stages -----------------------------------------------------------------------------------------------

    def _restore_pieces(self, pieces: list[str], threshold: float, batch_size, progress: bool):
        """(edits, rejections) per piece, in piece offsets. With `passes` 2, pieces that changed are scored again
        with their edits applied (a swap next to another is judged in repaired context); a new edit that touches
        an applied one is dropped."""
        results = [self.decide(f, threshold) for f in self.score(pieces, progress, batch_size)]
        for _ in range(self.config.passes - 1):
            redo = [i for i, (chosen, _) in enumerate(results) if chosen]
            if not redo:
                break
            repaired = [apply_with_repairs(pieces[i], results[i][0]) for i in redo]
            again = self.score([text for text, _ in repaired], progress, batch_size)
            for i, (_, repairs), found in zip(redo, repaired, again):
                chosen, refused = results[i]
                added = []
                for e in self.decide(found, threshold)[0]:
                    mapped = map_back(e.start, e.end, repairs)
                    if mapped is not None:
                        added.append(replace(e, start=mapped[0], end=mapped[1]))
                results[i] = (sorted(chosen + added, key=lambda e: e.start), refused)
        return results

    def decide(self, found: list[Scored], threshold: float) -> tuple[list[Edit], list[Rejection]]:
        """Per span the likeliest candidate; applied at or above `threshold`, best first, without overlaps."""
        if not found:
            return [], []
        probs = self.ranker.prob(np.array([s.features for s in found]))
        best: dict[tuple[int, int], tuple[float, float, Scored]] = {}
        for p, s in zip(probs.tolist(), found):
            c = s.candidate
            # Spintax is template residue, always resolved: its alternatives compete on the LM gain alone.
            p = 1.0 if c.kind == "spintax" else p
            key, rank = (c.first, c.last), (s.features[0] if c.kind == "spintax" else p)
            if key not in best or rank > best[key][1]:
                best[key] = (p, rank, s)
        chosen: list[Edit] = []
        refused: list[Rejection] = []
        for p, _, s in sorted(best.values(), key=lambda x: -x[0]):
            c = s.candidate
            edit = Edit(c.start, c.end, c.before, c.after, p, tuple(zip(self.features, s.features)))
            if p < threshold:
                if p >= threshold / 2:
                    refused.append(Rejection(edit, "low confidence"))
                continue
            if any(not (c.end <= e.start or c.start >= e.end) for e in chosen):
                refused.append(Rejection(edit, "overlaps a surer edit"))
                continue
            chosen.append(edit)
        return sorted(chosen, key=lambda e: e.start), sorted(refused, key=lambda r: r.edit.start)

    def score(self, pieces: list[str], progress: bool = False, batch_size: int | None = None) -> list[list[Scored]]:
        """Every surviving candidate of every piece with its features."""
        results: list[list[Scored]] = [[] for _ in pieces]
        order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(pieces), unit="sentence", desc="normalize", leave=False)
        step = batch_size or self.config.batch_size
        if step < 1:
            raise ValueError(f"batch_size must be >= 1, got {step}")
        for k in range(0, len(order), step):
            batch = order[k : k + step]
            for i, found in zip(batch, self._score_batch([pieces[i] for i in batch])):
                results[i] = found
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        return results

    def _prepare(self, text: str, proposals=()):
        """Tokens, LM token ids of the sentence (start token first), each word chunk's first LM position, and the
        candidates (with the seq2seq model's `proposals` merged in) with the LM ids of their replacement chunk."""
        lm = self.lm
        tokens = tokenize(text)
        ends = [0] + [t.end for t in tokens]
        starts, seq = [], [lm.start_id]
        for k, tok in enumerate(tokens):
            starts.append(len(seq))
            seq += lm.chunk_ids(text[ends[k] : tok.end])
        starts.append(len(seq))  # end of the last chunk
        cands = []
        if 1 < len(seq) <= self.config.max_lm_tokens:
            for c in self._candidates(text, tokens, proposals):
                ids = lm.chunk_ids(text[ends[c.first] : c.start] + c.after)
                if ids:
                    cands.append((c, ids))
        return tokens, starts, seq, cands

    def cheap_features(self, pieces: list[str]):
        """One LM pass over `pieces`: per piece, the prepared piece, the first pass's row and, per candidate, the
        `CHEAP_FEATURES` vector (for the pre-ranker and its training). Returns (prepared, state, rows, feats)."""
        proposals = self._seq2seq_proposals(pieces)
        prepared = [self._prepare(text, props) for text, props in zip(pieces, proposals)]
        live = [i for i, p in enumerate(prepared) if p[3]]
        feats: list[list[list[float]]] = [[] for _ in pieces]
        if not live:
            return prepared, None, {}, feats
        state = self.lm.first_pass(
            [prepared[i][2] for i in live],
            [[(prepared[i][1][c.first], ids[0]) for c, ids in prepared[i][3]] for i in live],
        )
        rows = {i: row for row, i in enumerate(live)}
        for i, row in rows.items():
            tokens, starts, _, cands = prepared[i]
            token_lp = state.token_lp[row]
            for (c, _), first_lp in zip(cands, state.gathered[row]):
                spun_lp = token_lp[starts[c.first]]
                feats[i].append(self._cheap(c, tokens, first_lp, spun_lp))
        return prepared, state, rows, feats

    def _score_batch(self, pieces: list[str]) -> list[list[Scored]]:
        cfg = self.config
        prepared, state, rows, feats = self.cheap_features(pieces)
        results: list[list[Scored]] = [[] for _ in pieces]
        items, keep = [], []  # continuation requests, and what each one scores
        for i, row in rows.items():
            tokens, starts, seq, cands = prepared[i]
            if not cands:
                continue
            token_lp = state.token_lp[row]
            pre = np.log(self.preranker.prob(np.array(feats[i])) + 1e-12) if self.preranker else np.zeros(len(cands))
            by_span: dict[tuple[int, int], list] = {}
            for k, ((c, ids), score) in enumerate(zip(cands, pre.tolist())):
                if c.kind == "spintax" or score >= cfg.gate:
                    by_span.setdefault((c.first, c.last), []).append((score, k, c, ids))
            for span, group in by_span.items():
                # The guard (numbers, dates, amounts) only on the candidates that might be rescored: it is slow.
                group.sort(key=lambda g: -g[0])
                by_span[span] = [
                    g
                    for g in group
                    if g[2].kind == "spintax" or guard_reason(g[2].before, g[2].after, self.guard) is None
                ][: cfg.prerank_k]
            for (first, last), group in by_span.items():
                stop = min(last + cfg.right_context, len(tokens))
                right = [t for k in range(last, stop) for t in seq[starts[k] : starts[k + 1]]]
                base = sum(token_lp[starts[first] : starts[stop]])
                surprisal = -sum(token_lp[starts[first] : starts[last]])
                for score, k, c, ids in group:
                    items.append((row, starts[first], ids + right))
                    keep.append((i, k, score, base, surprisal))
        gains = self.lm.continuations(state, items) if items else []
        # gain_gap needs every rescored candidate of a span, so collect first, then build the features.
        span_best: dict[tuple[int, int, int], float] = {}
        done = []
        for (i, k, score, base, surprisal), cont in zip(keep, gains):
            c = prepared[i][3][k][0]
            gain = cont - base
            span_best[(i, c.first, c.last)] = max(span_best.get((i, c.first, c.last), -1e9), gain)
            done.append((i, k, c, score, gain, surprisal))
        for i, k, c, score, gain, surprisal in done:
            gap = gain - span_best[(i, c.first, c.last)]
            results[i].append(Scored(c, feats[i][k] + [score, gain, gap, surprisal]))
        if self.writer is not None:
            live = [i for i, found in enumerate(results) if found]
            requests = [(pieces[i], [(s.candidate.before, s.candidate.after) for s in results[i]]) for i in live]
            for i, scores in zip(live, self.writer.score_candidates(requests)):
                for s, pair in zip(results[i], scores):
                    s.features += list(pair)
        return results

    def _seq2seq_proposals(self, pieces: list[str]) -> list[list[tuple[int, int, str, float]]]:
        """(start, end, after, confidence) of every edit the seq2seq model proposes for each piece (one pass, no
        threshold); empty lists without a seq2seq model."""
        if self.seq2seq is None:
            return [[] for _ in pieces]
        limit = self.seq2seq.config.max_piece_tokens
        fits = [i for i, p in enumerate(pieces) if len(self.seq2seq.tokenizer.encode(p)) <= limit]
        out: list[list[tuple[int, int, str, float]]] = [[] for _ in pieces]
        found = self.seq2seq._propose([pieces[i] for i in fits], self.config.batch_size, False)
        for i, located in zip(fits, found):
            out[i] = [(e.start, e.end, e.after, e.confidence) for e in located]
        return out

    def _candidates(self, text: str, tokens, proposals=()) -> list[Candidate]:
        """Spintax alternatives, table candidates and the seq2seq model's proposals (merged where they agree)."""
        out = spintax_candidates(text, tokens)
        taken = [(c.first, c.last) for c in out]
        free = lambda a, b: all(b <= x or a >= y for x, y in taken)  # noqa: E731
        by_key = {}
        for c in self.table.propose(text, tokens):
            if free(c.first, c.last):
                by_key[(c.first, c.last, c.after.lower())] = len(out)
                out.append(c)
        first = {t.start: k for k, t in enumerate(tokens)}
        last = {t.end: k + 1 for k, t in enumerate(tokens)}
        for start, end, after, conf in proposals:
            if start not in first or end not in last or not free(first[start], last[end]):
                continue
            key = (first[start], last[end], after.lower())
            if key in by_key:
                k = by_key[key]
                out[k] = replace(out[k], seq2seq=max(conf, out[k].seq2seq))
            elif after:
                by_key[key] = len(out)
                out.append(Candidate(start, end, key[0], key[1], text[start:end], after, "seq2seq", seq2seq=conf))
        return out

    def _cheap(self, c: Candidate, tokens, first_lp: float, spun_lp: float) -> list[float]:
        """The `CHEAP_FEATURES` of one candidate."""
        article = tokens[c.first - 1].text.lower() if c.first > 0 else ""
        wrong = fixed = 0.0
        if article in ("a", "an"):
            # By spelling, not sound: the spinner leaves "a"/"an" as it was, so a mismatch marks a swap.
            wrong = float((article == "an") != (c.before[:1] in _VOWEL))
            fixed = float(wrong and (article == "an") == (c.after[:1] in _VOWEL))
        channel, seen = self.channel.log_prob(c.after, c.before)
        thesaurus = c.kind == "thesaurus"
        return [
            first_lp - spun_lp,
            first_lp,
            spun_lp,
            math.log1p(c.rank) if thesaurus else 0.0,
            float(c.kind == "phrase"),
            float(bool(c.sources & 1)),
            float(bool(c.sources & 2)),
            float(bool(c.sources & 4)),
            self.table.zipf(c.after.lower()),
            self.table.zipf(c.before.lower()),
            wrong,
            fixed,
            float(c.last - c.first),
            float(len(c.after.split())),
            channel,
            float(seen),
            max(c.seq2seq, 0.0),
            float(c.seq2seq >= 0),
        ]


def has_pipeline(path: str | Path | None) -> bool:
    """Whether a checkpoint folder carries the pipeline's files."""
    directory = Path(path) if path is not None else DEFAULT_MODEL
    return (directory / CANDIDATES_FILE).is_file()


def load(
    path: str | Path | None = None,
    *,
    engine: str = "auto",
    lm: str | Path = SMOLLM2,
    device=None,
    min_confidence: float | None = None,
):
    """The restorer a checkpoint offers: the pipeline (`engine="pipeline"`), the seq2seq model alone (`"seq2seq"`),
    the edit writer alone (`"writer"`: the LM with the checkpoint's `writer/` adapter), or `"auto"`: the pipeline
    when the checkpoint has one and the language model loads, else the seq2seq model, saying why in one logged
    warning. `min_confidence` is the pipeline's threshold, the seq2seq model's or the writer's."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "writer":
        from normalizer.writer import WRITER_DIR, EditWriter

        directory = Path(path) if path is not None else DEFAULT_MODEL
        options = {} if min_confidence is None else {"min_confidence": min_confidence}
        return EditWriter.from_pretrained(directory / WRITER_DIR, lm, device=device, **options)
    if engine == "pipeline" or (engine == "auto" and has_pipeline(path)):
        try:
            return Pipeline.from_pretrained(path, lm=lm, device=device, threshold=min_confidence)
        except (OSError, ImportError) as e:
            if engine == "pipeline":
                raise
            logger.warning("language-model pipeline unavailable (%s); using the seq2seq model alone", e)
    return Normalizer.from_pretrained(path, device=device, min_confidence=min_confidence)


def spintax_candidates(text: str, tokens) -> list[Candidate]:
    """`{a|b|c}` left in the text by a spinner: each alternative (and `{phrase}`: the phrase without braces)."""
    out = []
    starts = {t.start: k for k, t in enumerate(tokens)}
    ends = {t.end: k for k, t in enumerate(tokens)}
    for m in _SPINTAX_RE.finditer(text):
        first, last = starts.get(m.start()), ends.get(m.end())
        if first is None or last is None:
            continue
        for alt in dict.fromkeys(a.strip() for a in m.group(1).split("|")):
            if alt:
                out.append(Candidate(m.start(), m.end(), first, last + 1, m.group(), alt, "spintax"))
    return out
