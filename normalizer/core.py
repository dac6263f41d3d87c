"""The `Normalizer`: load a checkpoint, segment documents, restore pieces in length-sorted batches, guard the edits.

Every character outside an accepted edit is copied from the input unchanged, so the output differs from the input
only where the model proposed a word swap that the faithfulness guard let through.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from normalizer.checkpoint import check_model_folder, read_json_object
from normalizer.device import resolve_device
from normalizer.edits import (
    SEP,
    Edit,
    GuardConfig,
    detokenize,
    guard_reason,
    locate_edits,
    map_back,
    parse_target,
    splice,
)
from normalizer.edits import tokenize as word_tokens
from normalizer.segment import text_list, word_pieces
from normalizer.tokenizer import SPM_FILE, HfTokenizer, SpmTokenizer, load_tokenizer

if TYPE_CHECKING:
    from normalizer.rerank import LmReranker

logger = logging.getLogger(__name__)

CONFIG_FILE = "normalizer_config.json"
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "default"
TARGET_FORMATS = ("edits", "full")


@dataclass(frozen=True)
class Rejection:
    """An edit the model proposed but the normalizer did not apply, and why."""

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
    """Proposed edits that were not applied (faithfulness guard, low confidence, not found in the input)."""
    spin_score: float = 0.0
    """Share of the input's word tokens that were restored: 0 for clean text."""

    @classmethod
    def of(cls, text: str, edits: list[Edit], rejected: list[Rejection]) -> Restoration:
        """The restoration of `text` by `edits` (in order, not overlapping), with its spin score."""
        n_words = sum(1 for t in word_tokens(text) if t.text[0].isalnum())
        n_edited = sum(1 for e in edits for t in word_tokens(e.before) if t.text[0].isalnum())
        return cls(splice(text, edits), edits, rejected, n_edited / n_words if n_words else 0.0)


@dataclass
class InferenceConfig:
    """How a checkpoint is used at inference; stored beside the weights as `normalizer_config.json`."""

    target_format: str = "edits"
    """`edits` (the model emits `before<to> after<sep>...`) or `full` (the model emits the whole sentence)."""
    max_words: int = 48
    """Longest piece fed to the model, in word tokens; longer sentences are cut between words."""
    max_new_tokens: int = 96
    """Generation limit per piece."""
    max_piece_tokens: int = 192
    """Hard bound on a piece's length in model tokens: a piece over it (text without spaces, a 5,000-character
    "word", byte-fallback scripts) is cut in half, at a space where there is one, until every part fits, so that
    memory and time per piece are bounded whatever the script."""
    num_beams: int = 1
    """Beam size (1 = greedy)."""
    min_confidence: float = 0.5
    """Default precision/recall knob for this checkpoint (chosen on dev data); `Normalizer(min_confidence=...)`
    overrides it."""
    passes: int = 1
    """Restoration passes. With 2, every piece that the first pass changed is restored again with those edits
    applied, so words the model could not place in the spun context get a second look in the repaired one; a piece
    the first pass left alone would decode identically, so it is not run again."""
    suppress_empty: bool = False
    """Edits format only: forbid the empty output as the first token, so the model always proposes its likeliest
    edit and `min_confidence` alone decides. A weakly trained model puts its probability on many candidate edits
    at once, so greedy decoding would pick "no edit" almost always."""

    def __post_init__(self):
        if self.target_format not in TARGET_FORMATS:
            raise ValueError(f"target_format must be one of {TARGET_FORMATS}, got {self.target_format!r}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must lie in [0, 1], got {self.min_confidence}")
        if self.max_words < 1 or self.max_new_tokens < 1 or self.num_beams < 1 or self.passes < 1:
            raise ValueError(f"max_words, max_new_tokens, num_beams and passes must be >= 1: {self}")
        if self.max_piece_tokens < 16:
            raise ValueError(f"max_piece_tokens must be >= 16, got {self.max_piece_tokens}")

    @classmethod
    def load(cls, directory: str | Path) -> InferenceConfig:
        path = Path(directory) / CONFIG_FILE
        if not path.exists():
            return cls()
        data = read_json_object(path)
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
        types = {
            "target_format": str,
            "num_beams": int,
            "max_words": int,
            "max_new_tokens": int,
            "passes": int,
            "max_piece_tokens": int,
            "min_confidence": (int, float),
            "suppress_empty": bool,
        }
        for key, value in data.items():
            want = types.get(key)
            if want and (not isinstance(value, want) or (want is not bool and isinstance(value, bool))):
                raise ValueError(f"{path}: {key!r} has the wrong type ({value!r})")
        return cls(**data)

    def save(self, directory: str | Path) -> None:
        (Path(directory) / CONFIG_FILE).write_text(json.dumps(self.__dict__, indent=2) + "\n")


class DocumentCalls:
    """`normalize`, `normalize_batch` and `restore` for a restorer that defines `restore_batch(texts, batch_size,
    progress, threshold)` with `batch_size=None` meaning its own (the pipeline, the edit writer)."""

    def normalize(self, text: str) -> str:
        return self.restore(text).text

    def normalize_batch(self, texts: Iterable[str], batch_size: int | None = None, progress: bool = False) -> list[str]:
        return [r.text for r in self.restore_batch(texts, batch_size=batch_size, progress=progress)]

    def restore(self, text: str) -> Restoration:
        return self.restore_batch([text])[0]


class Normalizer:
    """Restores spun text with a seq2seq checkpoint. Build it with `Normalizer.from_pretrained(path)`."""

    def __init__(
        self,
        model,
        tokenizer: SpmTokenizer | HfTokenizer,
        config: InferenceConfig | None = None,
        *,
        device: str | torch.device | None = None,
        min_confidence: float | None = None,
        guard: GuardConfig = GuardConfig(),
        reranker: LmReranker | None = None,
    ):
        self.config = config or InferenceConfig()
        if min_confidence is None:
            min_confidence = self.config.min_confidence
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must lie in [0, 1], got {min_confidence}")
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.min_confidence = min_confidence
        self.guard = guard
        self.reranker = reranker
        """Optional language-model check of each edit (`normalizer.rerank`); None = the seq2seq model decides."""
        self._sep_id = tokenizer.encode(SEP, add_eos=False)[-1]

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | None = None,
        *,
        device: str | torch.device | None = None,
        local_files_only: bool = True,
        **kwargs,
    ) -> Normalizer:
        """Load a checkpoint directory (default: the shipped model, or $NORMALIZER_MODEL).

        Only safetensors weights are read, and no code from the checkpoint is run. A path that does not exist is an
        error at once; pass `local_files_only=False` to let `transformers` resolve a hub name instead.
        Other keyword arguments go to `Normalizer(...)` (`min_confidence`, `guard`, `reranker`).
        """
        from transformers import AutoModelForSeq2SeqLM

        path = path or os.environ.get("NORMALIZER_MODEL") or DEFAULT_MODEL
        local = Path(path)
        if local.exists():
            if not local.is_dir():
                raise NotADirectoryError(f"model path {local} is a file; expected a checkpoint directory")
            check_model_folder(local)
            config = InferenceConfig.load(local)
            if not (local / SPM_FILE).is_file() and not (local / "tokenizer_config.json").is_file():
                raise FileNotFoundError(f"{local}: no tokenizer ({SPM_FILE} or tokenizer_config.json)")
        elif local_files_only:
            raise FileNotFoundError(f"model directory {local} does not exist")
        dev = resolve_device(device)
        # Half precision on GPU (bf16 where supported: T5 activations can overflow fp16); float32 on CPU.
        if dev.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = torch.float32
        try:
            model = AutoModelForSeq2SeqLM.from_pretrained(
                str(path), dtype=dtype, use_safetensors=True, local_files_only=local_files_only, trust_remote_code=False
            )
            tokenizer = load_tokenizer(path)
        except (KeyError, TypeError, AttributeError, IndexError) as e:
            raise ValueError(f"{path}: the checkpoint does not load ({type(e).__name__}: {e})") from None
        config = config if local.exists() else InferenceConfig()
        return cls(model, tokenizer, config, device=dev, **kwargs)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write weights (safetensors), model and generation config, tokenizer and inference config."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory, safe_serialization=True)
        self.tokenizer.save(directory)
        self.config.save(directory)

    # ---- public API -------------------------------------------------------------------------------------------

    def with_options(
        self,
        *,
        min_confidence: float | None = None,
        passes: int | None = None,
        suppress_empty: bool | None = None,
        reranker: LmReranker | None | type(...) = ...,
    ) -> Normalizer:
        """This normalizer with other inference settings for some calls, sharing the loaded model (nothing is
        copied or reloaded, and this one is left as it is): `n.with_options(min_confidence=0.2).restore_batch(x)`.
        `reranker=None` turns the reranker off; leaving it out keeps this one's."""
        other = copy.copy(self)
        changes = {k: v for k, v in (("passes", passes), ("suppress_empty", suppress_empty)) if v is not None}
        other.config = dataclasses.replace(self.config, **changes)
        if min_confidence is not None:
            if not 0.0 <= min_confidence <= 1.0:
                raise ValueError(f"min_confidence must lie in [0, 1], got {min_confidence}")
            other.min_confidence = min_confidence
        if reranker is not ...:
            other.reranker = reranker
        return other

    def normalize(self, text: str) -> str:
        """The restored text."""
        return self.restore(text).text

    def normalize_batch(self, texts: Iterable[str], batch_size: int = 32, progress: bool = False) -> list[str]:
        """Restored texts, same length and order as `texts`."""
        return [r.text for r in self.restore_batch(texts, batch_size=batch_size, progress=progress)]

    def restore(self, text: str) -> Restoration:
        """The restored text with its edits, rejected proposals and spin score."""
        return self.restore_batch([text])[0]

    def restore_batch(self, texts: Iterable[str], batch_size: int = 32, progress: bool = False) -> list[Restoration]:
        """`restore` over many documents (any iterable of strings, read once); pieces of all documents are batched
        together, sorted by length."""
        texts = text_list(texts)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        pieces = [
            (d, a, b) for d, a0, b0 in word_pieces(texts, self.config.max_words) for a, b in self._fit(texts[d], a0, b0)
        ]
        piece_texts = [texts[d][a:b] for d, a, b in pieces]
        gains: dict[tuple[str, int, int, str], float] = {}
        proposals = self._propose_passes(piece_texts, batch_size, progress, gains)
        per_doc: list[list[tuple[int, str, list[Edit]]]] = [[] for _ in texts]
        for (d, a, _), piece, located in zip(pieces, piece_texts, proposals):
            per_doc[d].append((a, piece, located))
        return [self._assemble(text, found, gains) for text, found in zip(texts, per_doc)]

    # ---- internals --------------------------------------------------------------------------------------------

    def _fit(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """text[start:end] as spans of at most `max_piece_tokens` model tokens, cut in half (at the space nearest
        the middle, else anywhere) until each part fits. Parts keep no surrounding whitespace."""
        limit = self.config.max_piece_tokens
        out, todo = [], [(start, end)]
        while todo:
            a, b = todo.pop()
            # A character costs at most 4 byte-fallback tokens: short spans need no encoding.
            if 4 * (b - a) + 2 <= limit or len(self.tokenizer.encode(text[a:b])) <= limit:
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

    def _assemble(self, text: str, found: list[tuple[int, str, list[Edit]]], gains: dict) -> Restoration:
        edits, rejected = [], []
        for offset, piece, located in found:
            for loc in located:
                edit = dataclasses.replace(loc, start=offset + loc.start, end=offset + loc.end)
                reason = self._reason(piece, loc, gains)
                if reason is None:
                    edits.append(edit)
                elif reason != "no change":
                    rejected.append(Rejection(edit, reason))
        return Restoration.of(text, edits, rejected)

    def _reason(self, piece: str, loc: Edit, gains: dict) -> str | None:
        """Why an edit is not applied (None: it is): the guard, then the confidence, then the reranker."""
        reason = guard_reason(loc.before, loc.after, self.guard)
        if reason is None and loc.confidence < self.min_confidence:
            reason = "low confidence"
        if reason is None and self.reranker is not None:
            gain = gains.get((piece, loc.start, loc.end, loc.after))
            if gain is not None and gain < self.reranker.margin:
                reason = f"language model prefers the input ({gain:+.1f} nats)"
        return reason

    def _accepted(self, piece: str, located: list[Edit], gains: dict) -> list[Edit]:
        return [loc for loc in located if self._reason(piece, loc, gains) is None]

    def _rerank(self, pieces: list[str], results: list[list[Edit]], gains: dict) -> None:
        """Score, with the reranker, every edit that passes the guard and the confidence threshold (into `gains`)."""
        if self.reranker is None:
            return
        keys = []
        for piece, located in zip(pieces, results):
            for loc in located:
                key = (piece, loc.start, loc.end, loc.after)
                if key not in gains and self._reason(piece, loc, {}) is None:
                    keys.append(key)
        pairs = [(piece, piece[:a] + after + piece[b:]) for piece, a, b, after in keys]
        gains.update(zip(keys, self.reranker.gains(pairs)))

    def _propose_passes(self, pieces: list[str], batch_size: int, progress: bool, gains: dict) -> list[list[Edit]]:
        """`_propose`, then `passes - 1` more rounds over the pieces that the previous round changed. A later
        round's edits are mapped back to the piece's own offsets; one that touches an earlier edit is dropped."""
        results = self._propose(pieces, batch_size, progress)
        self._rerank(pieces, results, gains)
        current = list(pieces)
        for _ in range(self.config.passes - 1):
            redo, shifts = [], {}
            for i, located in enumerate(results):
                accepted = self._accepted(pieces[i], located, gains)
                if not accepted:
                    continue
                # Apply this round's accepted edits to the piece; remember, per applied edit, where it sits in the
                # repaired text and how it shifted what follows.
                out, pos, spans = [], 0, []
                for loc in sorted(accepted, key=lambda e: e.start):
                    out.append(pieces[i][pos : loc.start])
                    new_start = sum(map(len, out))
                    out.append(loc.after)
                    spans.append((loc.start, loc.end, new_start, new_start + len(loc.after)))
                    pos = loc.end
                out.append(pieces[i][pos:])
                repaired = "".join(out)
                if repaired != current[i]:
                    current[i] = repaired
                    redo.append(i)
                    shifts[i] = spans
            if not redo:
                break
            again = self._propose([current[i] for i in redo], batch_size, progress)
            self._rerank([current[i] for i in redo], again, gains)
            for i, located in zip(redo, again):
                kept = {(loc.start, loc.end) for loc in self._accepted(pieces[i], results[i], gains)}
                merged = list(results[i])
                for loc in located:
                    mapped = _map_back(loc, shifts[i])
                    if mapped is not None and (mapped.start, mapped.end) not in kept:
                        merged.append(mapped)
                        # The reranker judged this edit in the repaired piece; keep its verdict for the original.
                        verdict = gains.get((current[i], loc.start, loc.end, loc.after))
                        if verdict is not None:
                            gains[(pieces[i], mapped.start, mapped.end, mapped.after)] = verdict
                results[i] = _non_overlapping(merged, kept)
        return results

    @torch.inference_mode()
    def _propose(self, pieces: list[str], batch_size: int, progress: bool) -> list[list[Edit]]:
        """Model proposals for each piece: located edits (piece offsets) with confidences."""
        results: list[list[Edit]] = [[] for _ in pieces]
        if not pieces:
            return results
        encoded = self.tokenizer.encode_batch(pieces)
        order = sorted(range(len(pieces)), key=lambda i: len(encoded[i]))
        batches = [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(pieces), unit="piece", desc="normalize", leave=False)
        for batch in batches:
            for i, proposal in zip(batch, self._generate([encoded[i] for i in batch])):
                results[i] = self._interpret(pieces[i], *proposal)
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        return results

    def _generate(self, batch: list[list[int]]) -> list[tuple[list[int], list[float]]]:
        """Greedy/beam decoding: generated ids (no start token) and each one's log-probability."""
        width = max(len(ids) for ids in batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in batch], device=self.device)  # (B, T)
        attention = (
            torch.arange(width, device=self.device)[None, :]
            < torch.tensor([len(ids) for ids in batch], device=self.device)[:, None]
        ).long()  # (B, T)
        suppress = {}
        if self.config.suppress_empty and self.config.target_format == "edits":
            suppress["begin_suppress_tokens"] = [self.tokenizer.eos_token_id, self.tokenizer.pad_token_id]
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            max_new_tokens=self.config.max_new_tokens,
            num_beams=self.config.num_beams,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
            **suppress,
        )
        scores = self.model.compute_transition_scores(
            out.sequences, out.scores, getattr(out, "beam_indices", None), normalize_logits=self.config.num_beams == 1
        )  # (B, S-1)
        seqs = out.sequences[:, 1:].tolist()
        logps = scores.float().cpu().tolist()
        result = []
        for ids, lp in zip(seqs, logps):
            n = len(ids)
            for k, t in enumerate(ids):
                if t in (self.tokenizer.eos_token_id, pad):
                    n = k + 1 if t == self.tokenizer.eos_token_id else k
                    break
            result.append((ids[:n], lp[:n]))
        return result

    def _interpret(self, piece: str, ids: list[int], logps: list[float]) -> list[Edit]:
        if self.config.target_format == "full":
            return self._interpret_full(piece, ids, logps)
        # Split the output at <sep> and EOS. An edit's confidence is the probability of its tokens and of the
        # terminator after it (an unterminated last edit, cut by max_new_tokens, has none).
        chunks, start = [], 0
        for k, t in enumerate(ids):
            if t in (self._sep_id, self.tokenizer.eos_token_id):
                chunks.append((start, k))
                start = k + 1
        # An unterminated tail was cut by max_new_tokens: its `after` may be cut mid-word, so it is not an edit.
        spans, confs = [], []
        for a, b in chunks:
            parsed = parse_target(self.tokenizer.decode(ids[a:b]))
            if parsed:
                spans.append(parsed[0])
                confs.append(math.exp(sum(logps[a : b + 1])))
        return locate_edits(piece, spans, confs)

    def _interpret_full(self, piece: str, ids: list[int], logps: list[float]) -> list[Edit]:
        """Align a full-sentence output to the input word by word; each differing run becomes an edit."""
        output = self.tokenizer.decode(ids)
        src, tgt = word_tokens(piece), word_tokens(output)
        # Character end of each output token prefix, to find which generated ids produced an output word.
        ends = [len(self.tokenizer.decode(ids[: k + 1])) for k in range(len(ids))]
        matcher = difflib.SequenceMatcher(a=[t.text for t in src], b=[t.text for t in tgt], autojunk=False)
        found = []
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op == "equal":
                continue
            if i1 == i2:  # pure insertion: anchor on the preceding word so the guard can judge it
                if i1 == 0:
                    continue
                i1 -= 1
                j1 = max(j1 - 1, 0)
            after = detokenize([t.text for t in tgt[j1:j2]])
            a_chr = tgt[j1].start if j2 > j1 else 0
            b_chr = tgt[j2 - 1].end if j2 > j1 else 0
            toks = [k for k, e in enumerate(ends) if e > a_chr and (k == 0 or ends[k - 1] < b_chr)]
            conf = math.exp(sum(logps[k] for k in toks)) if toks else 1.0
            start, end = src[i1].start, src[i2 - 1].end
            found.append(Edit(start, end, piece[start:end], after, conf))
        return found


def _map_back(loc: Edit, spans: list[tuple[int, int, int, int]]) -> Edit | None:
    """An edit in a repaired piece, in the original piece's offsets; None where it overlaps a repair."""
    mapped = map_back(loc.start, loc.end, spans)
    return None if mapped is None else dataclasses.replace(loc, start=mapped[0], end=mapped[1])


def _non_overlapping(located: list[Edit], keep: set[tuple[int, int]]) -> list[Edit]:
    """Sorted by start, without overlaps: edits in `keep` first, then the others by confidence."""
    ranked = sorted(located, key=lambda e: ((e.start, e.end) not in keep, -e.confidence))
    chosen: list[Edit] = []
    for loc in ranked:
        if all(loc.end <= c.start or loc.start >= c.end for c in chosen):
            chosen.append(loc)
    return sorted(chosen, key=lambda e: e.start)


__all__ = ["Edit", "Rejection", "Restoration", "InferenceConfig", "Normalizer", "DocumentCalls"]
