"""The seq2seq engine: a small encoder-decoder model that writes each piece's edits (`before<to> after<sep> ...`).

Fast and weaker than the pipeline (`normalizer.engines.pipeline`); the fallback when the language model is not
installed, and a source of candidates inside the pipeline. It proposes edits with the probability of the tokens
that write them as their confidence; the shared `Restorer` decides which to apply.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from normalizer.checkpoint import (
    SEQ2SEQ_CONFIG_FILE,
    SPM_FILE,
    check_model_folder,
    read_config,
    resolve_checkpoint,
)
from normalizer.device import model_dtype, resolve_device
from normalizer.edits import SEP, Edit, GuardConfig, locate_edits, parse_target
from normalizer.restorer import Restorer, check_threshold
from normalizer.tokenizer import HfTokenizer, SpmTokenizer, load_tokenizer

logger = logging.getLogger(__name__)


@dataclass
class InferenceConfig:
    """How a seq2seq checkpoint is used at inference; stored beside the weights as `normalizer_config.json`."""

    max_words: int = 48
    """Longest piece fed to the model, in word tokens; longer sentences are cut between words."""
    max_new_tokens: int = 96
    """Generation limit per piece."""
    max_piece_tokens: int = 192
    """Hard bound on a piece's length in model tokens (see `Restorer.max_piece_tokens`)."""
    threshold: float = 0.5
    """Default precision/recall knob for this checkpoint (chosen on dev data by `training.tune`)."""
    passes: int = 1
    """Restoration passes: with 2, every piece the first pass changed is restored again with those edits applied
    (chosen on dev data by `training.tune`)."""
    suppress_empty: bool = False
    """Forbid the empty output as the first token, so the model always proposes its likeliest edit and the
    threshold alone decides (a weakly trained model would otherwise almost always emit "no edit")."""
    batch_size: int = 32
    """Pieces per generate call."""

    def __post_init__(self):
        check_threshold(self.threshold)
        if self.max_words < 1 or self.max_new_tokens < 1 or self.passes not in (1, 2) or self.batch_size < 1:
            raise ValueError(f"max_words, max_new_tokens, batch_size >= 1 and passes 1 or 2: {self}")
        if self.max_piece_tokens < 16:
            raise ValueError(f"max_piece_tokens must be >= 16, got {self.max_piece_tokens}")

    @classmethod
    def load(cls, directory: str | Path) -> InferenceConfig:
        return read_config(cls, Path(directory) / SEQ2SEQ_CONFIG_FILE)

    def save(self, directory: str | Path) -> None:
        (Path(directory) / SEQ2SEQ_CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")


class Seq2SeqRestorer(Restorer):
    """Restores spun text with a seq2seq checkpoint. Build it with `Seq2SeqRestorer.from_pretrained(path)`."""

    def __init__(
        self,
        model,
        tokenizer: SpmTokenizer | HfTokenizer,
        config: InferenceConfig | None = None,
        *,
        device: str | torch.device | None = None,
        threshold: float | None = None,
        guard: GuardConfig = GuardConfig(),
    ):
        self.config = config or InferenceConfig()
        self.threshold = check_threshold(self.config.threshold if threshold is None else threshold)
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.guard = guard
        self.sep_id = tokenizer.encode(SEP, add_eos=False)[-1]

    @property
    def max_words(self) -> int:
        return self.config.max_words

    @property
    def max_piece_tokens(self) -> int:
        return self.config.max_piece_tokens

    @property
    def passes(self) -> int:
        return self.config.passes

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | None = None,
        *,
        device: str | torch.device | None = None,
        local_files_only: bool = True,
        **kwargs,
    ) -> Seq2SeqRestorer:
        """Load a checkpoint directory (default: `$NORMALIZER_MODEL`, else the shipped model).

        Only safetensors weights are read, and no code from the checkpoint is run. A path that does not exist is an
        error at once; pass `local_files_only=False` to let `transformers` resolve a hub name instead.
        Other keyword arguments go to `Seq2SeqRestorer(...)` (`threshold`, `guard`).
        """
        from transformers import AutoModelForSeq2SeqLM

        local = resolve_checkpoint(path)
        config = InferenceConfig()
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
        try:
            model = AutoModelForSeq2SeqLM.from_pretrained(
                str(local),
                dtype=model_dtype(dev),
                use_safetensors=True,
                local_files_only=local_files_only,
                trust_remote_code=False,
            )
            tokenizer = load_tokenizer(local)
        except (KeyError, TypeError, AttributeError, IndexError) as e:
            raise ValueError(f"{local}: the checkpoint does not load ({type(e).__name__}: {e})") from None
        return cls(model, tokenizer, config, device=dev, **kwargs)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write weights (safetensors), model and generation config, tokenizer and inference config."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory, safe_serialization=True)
        self.tokenizer.save(directory)
        self.config.save(directory)

    def with_options(
        self, *, threshold: float | None = None, passes: int | None = None, suppress_empty: bool | None = None
    ) -> Seq2SeqRestorer:
        """This restorer with other inference settings, sharing the loaded model (nothing is copied or reloaded,
        and this one is left as it is): `r.with_options(passes=1).restore_batch(x)`."""
        other = copy.copy(self)
        changes = {k: v for k, v in (("passes", passes), ("suppress_empty", suppress_empty)) if v is not None}
        other.config = dataclasses.replace(self.config, **changes)
        if threshold is not None:
            other.threshold = check_threshold(threshold)
        return other

    # ---- the engine -------------------------------------------------------------------------------------------

    def piece_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def cache_key(self) -> tuple:
        return (repr(self.config), repr(self.guard), id(self.model), id(self.tokenizer))

    @torch.inference_mode()
    def propose(
        self,
        pieces: list[str],
        *,
        batch_size: int | None = None,
        progress: bool = False,
        documents: list[str] | None = None,
    ) -> list[list[Edit]]:
        """The model's edits for each piece (piece offsets), each with the probability of writing it (the model
        reads pieces alone: `documents` is not used)."""
        results: list[list[Edit]] = [[] for _ in pieces]
        if not pieces:
            return results
        batch_size = batch_size or self.config.batch_size
        encoded = self.tokenizer.encode_batch(pieces)
        order = sorted(range(len(pieces)), key=lambda i: len(encoded[i]))
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(pieces), unit="piece", desc="normalize", leave=False)
        for k in range(0, len(order), batch_size):
            batch = order[k : k + batch_size]
            for i, (ids, logps) in zip(batch, self.generate([encoded[i] for i in batch])):
                results[i] = self.interpret(pieces[i], ids, logps)
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        return results

    def generate(self, batch: list[list[int]]) -> list[tuple[list[int], list[float]]]:
        """Greedy decoding: generated ids (no start token, up to and including EOS) and each one's log-probability."""
        width = max(len(ids) for ids in batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in batch], device=self.device)  # (B, T)
        attention = (
            torch.arange(width, device=self.device)[None, :]
            < torch.tensor([len(ids) for ids in batch], device=self.device)[:, None]
        ).long()  # (B, T)
        suppress = {}
        if self.config.suppress_empty:
            suppress["begin_suppress_tokens"] = [self.tokenizer.eos_token_id, self.tokenizer.pad_token_id]
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            max_new_tokens=self.config.max_new_tokens,
            num_beams=1,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
            **suppress,
        )
        scores = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)  # (B, S-1)
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

    def interpret(self, piece: str, ids: list[int], logps: list[float]) -> list[Edit]:
        """Located edits from generated ids. Output is split at <sep> and EOS; an edit's confidence is the
        probability of its tokens and of the terminator after it. An unterminated tail (cut by `max_new_tokens`)
        may end mid-word, so it is not an edit."""
        chunks, start = [], 0
        for k, t in enumerate(ids):
            if t in (self.sep_id, self.tokenizer.eos_token_id):
                chunks.append((start, k))
                start = k + 1
        spans, confs = [], []
        for a, b in chunks:
            parsed = parse_target(self.tokenizer.decode(ids[a:b]))
            if parsed:
                spans.append(parsed[0])
                confs.append(math.exp(sum(logps[a : b + 1])))
        return locate_edits(piece, spans, confs)
