"""The edit writer: a pretrained causal LM fine-tuned (LoRA) to write a sentence's edit list, used two ways.

1. As a restorer on its own: greedy decoding of `{spun}\\nEdits: before<to> after<sep> ...`; an edit's confidence is
   the probability of its tokens and of the separator or end after it, so `min_confidence` trades recall for
   precision as it does for the seq2seq model.
2. As a scorer inside the pipeline (`normalizer.pipeline`, `PipelineConfig.writer`): for each candidate the direct
   model's log P(` after` | sentence, ` before<to>`) and log P(` before<to> after` | sentence), two more ranker
   features, from one pass over the prompt and the pipeline's cached continuations.

    writer = EditWriter.from_pretrained("models/default/writer")      # adapter folder; base: smollm2
    writer.restore("He mentioned the struggle was over.")

The adapter is loaded with `normalizer.adapter.load_adapter` (safetensors only, base SHA-256 checked) and merged
into the base weights, so inference costs what the base model costs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import torch

from normalizer.core import DocumentCalls, Rejection, Restoration
from normalizer.edits import SEP, TO, Edit, GuardConfig, guard_reason, locate_edits, parse_target
from normalizer.lm import SMOLLM2, LanguageModel
from normalizer.segment import text_list, word_pieces

logger = logging.getLogger(__name__)

PROMPT = "{bos}{spun}\nEdits:"
"""The writer's prompt; the answer is ` ` + the edit target (`normalizer.edits.make_target`) + EOS."""
WRITER_DIR = "writer"
"""The adapter's folder inside a pipeline checkpoint."""
WRITER_CONFIG = "writer_config.json"
"""Optional, in the adapter folder: the writer's options (`min_confidence`, ...) as plain JSON."""


class EditWriter(DocumentCalls):
    """A causal LM that writes edit lists, with the calls the restorer and the pipeline need."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        min_confidence: float = 0.5,
        max_words: int = 48,
        max_prompt_tokens: int = 192,
        max_new_tokens: int = 48,
        batch_size: int = 16,
        guard: GuardConfig = GuardConfig(),
    ):
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must lie in [0, 1], got {min_confidence}")
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.lm = LanguageModel(model, tokenizer)
        self.model, self.tokenizer = self.lm.model, tokenizer
        self.min_confidence = min_confidence
        self.max_words = max_words
        self.max_prompt_tokens = max_prompt_tokens
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.guard = guard

    @classmethod
    def from_pretrained(cls, adapter: str | Path, base: str | Path = SMOLLM2, *, device=None, **options) -> EditWriter:
        """The base model with the adapter in `adapter` merged in (float32 on CPU, bfloat16 on CUDA)."""
        from normalizer.adapter import load_adapter
        from normalizer.device import resolve_device

        dev = resolve_device(device)
        config = Path(adapter) / WRITER_CONFIG
        if config.is_file():
            from normalizer.checkpoint import read_json_object

            stored = read_json_object(config)
            unknown = set(stored) - {"min_confidence", "max_words", "max_prompt_tokens", "max_new_tokens", "batch_size"}
            if unknown:
                raise ValueError(f"{config}: unknown keys {sorted(unknown)}")
            options = {**stored, **options}
        model, tokenizer = load_adapter(adapter, base)
        model = model.merge_and_unload()
        if dev.type == "cuda":
            model = model.to(torch.bfloat16)
        return cls(model.to(dev), tokenizer, **options)

    # ---- prompts ----------------------------------------------------------------------------------------------

    def prompt_ids(self, spun: str) -> list[int]:
        bos = self.tokenizer.bos_token or ""
        return self.tokenizer(PROMPT.format(bos=bos, spun=spun), add_special_tokens=False).input_ids

    # ---- restorer ---------------------------------------------------------------------------------------------

    def restore_batch(
        self,
        texts: Iterable[str],
        batch_size: int | None = None,
        progress: bool = False,
        threshold: float | None = None,
    ) -> list[Restoration]:
        """Restore documents; edits below `threshold` (default `min_confidence`) are reported as rejected."""
        texts = text_list(texts)
        threshold = self.min_confidence if threshold is None else threshold
        pieces = word_pieces(texts, self.max_words)
        proposed = self.propose([texts[d][a:b] for d, a, b in pieces], batch_size, progress)
        edits: list[list[Edit]] = [[] for _ in texts]
        rejected: list[list[Rejection]] = [[] for _ in texts]
        for (d, a, _), found in zip(pieces, proposed):
            chosen: list[Edit] = []
            for e in sorted(found, key=lambda e: -e.confidence):
                e = Edit(e.start + a, e.end + a, e.before, e.after, e.confidence)
                reason = guard_reason(e.before, e.after, self.guard)
                if reason is None and e.confidence < threshold:
                    reason = "low confidence"
                if reason is None and any(not (e.end <= c.start or e.start >= c.end) for c in chosen):
                    reason = "overlaps a surer edit"
                if reason is None:
                    chosen.append(e)
                else:
                    rejected[d].append(Rejection(e, reason))
            edits[d] += chosen
        return [
            Restoration.of(t, sorted(ed, key=lambda e: e.start), sorted(rej, key=lambda r: r.edit.start))
            for t, ed, rej in zip(texts, edits, rejected)
        ]

    @torch.inference_mode()
    def propose(self, pieces: list[str], batch_size: int | None = None, progress: bool = False) -> list[list[Edit]]:
        """Greedy edit lists for `pieces`: edits located in each piece (piece offsets), with confidences. Pieces
        over `max_prompt_tokens` get none."""
        results: list[list[Edit]] = [[] for _ in pieces]
        prompts = {i: self.prompt_ids(p) for i, p in enumerate(pieces)}
        order = sorted((i for i in prompts if len(prompts[i]) <= self.max_prompt_tokens), key=lambda i: len(prompts[i]))
        step = batch_size or self.batch_size
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(order), unit="sentence", desc="normalize", leave=False)
        for k in range(0, len(order), step):
            batch = order[k : k + step]
            for i, (ids, logps) in zip(batch, self._generate([prompts[i] for i in batch])):
                results[i] = self._interpret(pieces[i], ids, logps)
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        return results

    def _generate(self, prompts: list[list[int]]) -> list[tuple[list[int], list[float]]]:
        """Greedy continuations of left-padded prompts: generated ids (through EOS) and each one's log-probability."""
        pad, eos = self.tokenizer.pad_token_id, self.tokenizer.eos_token_id
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.lm.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.lm.device)
        out = self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=pad,
            eos_token_id=eos,
        )
        scores = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        result = []
        for seq, lp in zip(out.sequences[:, width:].tolist(), scores.float().cpu().tolist()):
            n = seq.index(eos) + 1 if eos in seq else len(seq)
            result.append((seq[:n], lp[:n]))
        return result

    def _interpret(self, piece: str, ids: list[int], logps: list[float]) -> list[Edit]:
        """The edits of one generated list, located in `piece`. An edit's confidence is the probability of the
        tokens that write it and of the separator or EOS that ends it; an edit cut off by `max_new_tokens` (no
        terminator) is dropped: its `after` may stop mid-word."""
        eos = self.tokenizer.eos_token_id
        ended = bool(ids) and ids[-1] == eos
        body = ids[:-1] if ended else ids
        text = self.tokenizer.decode(body)
        ends = [len(self.tokenizer.decode(body[: k + 1])) for k in range(len(body))]
        starts = [0] + ends[:-1]
        spans, confs, a = [], [], 0
        while a <= len(text):
            b = text.find(SEP, a)
            last = b < 0
            if last and not ended:
                break
            b = len(text) if last else b
            stop = b if last else b + len(SEP)
            lp = sum(p for s, e, p in zip(starts, ends, logps) if e > a and s < stop)
            if last:
                lp += logps[len(body)]
            parsed = parse_target(text[a:b])
            if parsed:
                spans.append(parsed[0])
                confs.append(float(torch.tensor(lp).exp()))
            if last:
                break
            a = b + len(SEP)
        return locate_edits(piece, spans, confs)

    # ---- scorer -----------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def score_candidates(self, requests: list[tuple[str, list[tuple[str, str]]]]) -> list[list[tuple[float, float]]]:
        """For each (piece, [(before, after), ...]): per candidate (log P(` after` | piece, ` before<to>`),
        log P(` before<to> after` | piece)), the candidate scored as the list's first edit. Every piece is scored
        whatever its length (the pipeline bounds its pieces: `PipelineConfig.max_lm_tokens`)."""
        out: list[list[tuple[float, float]]] = [[(0.0, 0.0)] * len(c) for _, c in requests]
        live = [k for k, (piece, cands) in enumerate(requests) if cands]
        prompts = {k: self.prompt_ids(requests[k][0]) for k in live}
        for a in range(0, len(live), self.batch_size):
            chunk = live[a : a + self.batch_size]
            state = self.lm.first_pass([prompts[k] for k in chunk], [[] for _ in chunk])
            items, index = [], []
            for row, k in enumerate(chunk):
                n = len(prompts[k])
                heads: dict[str, int] = {}
                for j, (before, after) in enumerate(requests[k][1]):
                    head = self.lm.chunk_ids(f" {before}{TO}")
                    whole = self.lm.chunk_ids(f" {before}{TO} {after}")
                    if whole[: len(head)] != head or len(whole) == len(head):
                        whole = head + self.lm.chunk_ids(f" {after}")
                    if before not in heads:
                        heads[before] = len(items)
                        items.append((row, n, head))
                        index.append(None)
                    items.append((row, n, whole))
                    index.append((k, j, heads[before]))
            scores = self.lm.continuations(state, items)
            for entry, lp in zip(index, scores):
                if entry is not None:
                    k, j, h = entry
                    out[k][j] = (lp - scores[h], lp)
        return out


__all__ = ["EditWriter", "PROMPT", "WRITER_DIR"]
