"""A checkpoint folder: where it is, what its files are called, and their checks before any heavy import reads them.

    models/default/
        config.json, model.safetensors, generation_config.json, spiece.model   the seq2seq model (transformers)
        normalizer_config.json                                                  its inference settings
        pipeline_config.json                                                    the pipeline's settings
        candidates.npz, channel.json.gz, preranker.json, ranker.json            the pipeline's stages

A checkpoint is found once (`resolve_checkpoint`: a path, else `$NORMALIZER_MODEL`, else the shipped
`models/default`). Nothing in it may run code: folders whose configs ask transformers for custom classes
(`auto_map`) are refused, weights are read only from safetensors, and every JSON file must hold the types its reader
expects; checks name the file and the field at fault.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "default"
"""The shipped checkpoint (in the repository; `pip install -e .` keeps it in place)."""
MODEL_ENV = "NORMALIZER_MODEL"
"""Environment variable naming the checkpoint used when no path is given."""

SEQ2SEQ_CONFIG_FILE = "normalizer_config.json"
PIPELINE_FILE = "pipeline_config.json"
CANDIDATES_FILE = "candidates.npz"
RANKER_FILE = "ranker.json"
PRERANKER_FILE = "preranker.json"
CHANNEL_FILE = "channel.json.gz"
SPM_FILE = "spiece.model"
LM_DELTA_FILE = "lm_delta.safetensors"
WORD_RATES_FILE = "word_rates.json"
"""Word counts of clean news (`training.word_rates`), for the document prior's `key_weight`."""
"""Tensors of the scoring LM that replace the base's (`training.lm_news`): its top layers adapted to news."""


def resolve_checkpoint(path: str | Path | None = None) -> Path:
    """The checkpoint folder to load: `path`, else `$NORMALIZER_MODEL`, else the shipped model. Every loader and
    every command resolves it here, so which checkpoint runs never depends on which engine loads it."""
    chosen = path if path not in (None, "") else os.environ.get(MODEL_ENV) or DEFAULT_MODEL
    return Path(chosen)


def has_pipeline(path: str | Path | None = None) -> bool:
    """Whether a checkpoint folder carries the pipeline's files."""
    return (resolve_checkpoint(path) / CANDIDATES_FILE).is_file()


CODE_CONFIGS = ("config.json", "tokenizer_config.json", "generation_config.json", "processor_config.json")
# Integer fields of a model config that transformers would otherwise trip over deep inside model construction.
_INT_FIELDS = (
    "vocab_size",
    "d_model",
    "d_kv",
    "d_ff",
    "num_layers",
    "num_decoder_layers",
    "num_heads",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "pad_token_id",
    "eos_token_id",
    "decoder_start_token_id",
    "bos_token_id",
    "max_position_embeddings",
)


def read_json_object(path: Path) -> dict:
    """A JSON file that must hold an object; ValueError naming the file otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def read_data_file(path: str | Path, max_bytes: int, what: str):
    """The JSON in a saved data file no larger than `max_bytes`, refused before it is read when larger; a ValueError
    naming the file and `what` it should be otherwise."""
    if Path(path).stat().st_size > max_bytes:
        raise ValueError(f"{path}: larger than {max_bytes // 2**20} MB, not {what}")
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ValueError(f"{path}: not {what} ({type(e).__name__})") from None


_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def read_config(cls, path: Path):
    """A settings dataclass from a JSON file of its fields (the defaults where the file is absent): unknown keys, a
    value of the wrong type for its field (`int`, `float`, `bool`, `str`, or `X | None`) and a value its
    `__post_init__` refuses are ValueErrors naming the file."""
    import dataclasses

    if not path.exists():
        return cls()
    data = read_json_object(path)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    for key, value in data.items():
        kinds = [k.strip() for k in str(fields[key].type).split("|")]
        if value is None and "None" in kinds:
            continue
        allowed = tuple(t for k in kinds if k != "None" for t in _TYPES.get(k, (object,)))
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise ValueError(f"{path}: {key!r} has the wrong type ({value!r})")
    try:
        return cls(**data)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def refuse_custom_code(directory: Path) -> None:
    """Raise ValueError if a model folder's configs ask transformers to import code from the folder."""
    for name in CODE_CONFIGS:
        path = directory / name
        if path.is_file() and "auto_map" in read_json_object(path):
            raise ValueError(f"{path}: asks for custom code (auto_map); refusing to load code from a model folder")


def check_safetensors(path: Path) -> None:
    """The file is a complete safetensors file: a readable header whose tensors all lie inside the file."""
    size = path.stat().st_size
    if size < 8:
        raise ValueError(f"{path}: {size} bytes, too short to be safetensors weights (truncated?)")
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > size - 8 or n > 100_000_000:
            raise ValueError(f"{path}: header of {n} bytes does not fit in the file's {size} (truncated?)")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: unreadable header ({e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header is not a JSON object")
    data = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise ValueError(f"{path}: tensor {name!r} has no valid data_offsets")
        if offsets[1] > data:
            raise ValueError(f"{path}: tensor {name!r} ends at byte {offsets[1]} of {data} (truncated?)")


def check_model_folder(directory: Path) -> None:
    """Everything `transformers` will read from a model folder, checked first: no custom code, a config with
    sane types, complete safetensors weights."""
    refuse_custom_code(directory)
    weights = sorted(directory.glob("*.safetensors"))
    if not weights:
        raise FileNotFoundError(f"no safetensors weights in {directory} (pickled weights are not loaded)")
    config = directory / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{directory}: no config.json")
    data = read_json_object(config)
    for key in _INT_FIELDS:
        if key in data and data[key] is not None and (not isinstance(data[key], int) or isinstance(data[key], bool)):
            raise ValueError(f"{config}: {key!r} must be an integer, got {data[key]!r}")
    for path in weights:
        check_safetensors(path)


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
