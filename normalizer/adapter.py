"""A LoRA adapter over a pretrained causal language model, tied to the exact base file it was trained on.

An adapter folder holds `adapter_config.json` and `adapter_model.safetensors` (as `peft` saves them) and
`base.json`: the base model's name and SHA-256. Loading checks, before `peft` reads anything, that the folder has
no pickled weights and no code references, and that the base given is the one the adapter was trained on: an
adapter over other weights would load without complaint and produce nonsense.

    model, tokenizer = load_adapter("models/lm-edits", base="smollm2")
"""

from __future__ import annotations

import json
from pathlib import Path

from normalizer.checkpoint import read_json_object

BASE_FILE = "base.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


class AdapterMismatch(ValueError):
    """The base model given is not the one the adapter was trained on."""


def base_identity(base: str | Path) -> tuple[Path, str]:
    """(the base's loadable path, its SHA-256): of the GGUF file for `smollm2` or a `.gguf`, else of the folder's
    `model.safetensors`."""
    from normalizer.checkpoint import sha256_file
    from normalizer.lm import SMOLLM2, smollm2_file

    path = smollm2_file() if str(base) == SMOLLM2 else Path(base)
    if path.is_dir():
        weights = path / "model.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(f"{path}: no model.safetensors (a LoRA base must be a safetensors model)")
        return path, sha256_file(weights)
    if not path.is_file():
        raise FileNotFoundError(f"base model not found: {path}")
    return path, sha256_file(path)


def check_adapter_folder(directory: Path) -> dict:
    """The adapter's `base.json`, after checking the folder holds what a safe load needs and nothing else."""
    if not directory.is_dir():
        raise FileNotFoundError(f"adapter folder not found: {directory}")
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS, BASE_FILE):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory}: missing {name}")
    pickled = [p.name for p in directory.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".py")]
    if pickled:
        raise ValueError(f"{directory}: refusing {', '.join(sorted(pickled))} (only safetensors and JSON are read)")
    config = read_json_object(directory / ADAPTER_CONFIG)
    if "auto_map" in config or config.get("peft_type") != "LORA":
        raise ValueError(f"{directory / ADAPTER_CONFIG}: not a plain LoRA config (peft_type LORA, no auto_map)")
    base = read_json_object(directory / BASE_FILE)
    if not isinstance(base.get("sha256"), str) or len(base["sha256"]) != 64:
        raise ValueError(f"{directory / BASE_FILE}: no base sha256")
    return base


def save_adapter(model, directory: str | Path, base: str | Path) -> None:
    """Save a `peft` LoRA model's adapter (safetensors) with the identity of its base."""
    directory = Path(directory)
    model.save_pretrained(directory, safe_serialization=True)
    path, digest = base_identity(base)
    (directory / BASE_FILE).write_text(json.dumps({"base": str(base), "file": path.name, "sha256": digest}, indent=1))


def load_adapter(directory: str | Path, base: str | Path = "smollm2", *, dtype=None, trainable: bool = False):
    """(model, tokenizer): the base causal LM with the adapter applied; `AdapterMismatch` if `base` is not the
    file the adapter was trained on."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from normalizer.checkpoint import check_model_folder
    from normalizer.lm import _converted_gguf

    directory = Path(directory)
    expected = check_adapter_folder(directory)
    path, digest = base_identity(base)
    if digest != expected["sha256"]:
        raise AdapterMismatch(
            f"{directory} was trained on {expected.get('file', 'a base')} (SHA-256 {expected['sha256'][:16]}...); "
            f"{path} has SHA-256 {digest[:16]}...: give the base it was trained on"
        )
    folder = _converted_gguf(path) if path.suffix == ".gguf" else path
    check_model_folder(folder)
    kwargs = {"local_files_only": True, "trust_remote_code": False}
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype or torch.float32, use_safetensors=True, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return PeftModel.from_pretrained(model, directory, is_trainable=trainable), tokenizer
