"""The entry points: `load()` picks and loads an engine for a checkpoint, `normalize(text)` is the one-liner with the
shipped default loaded once, on first use, by whichever thread comes first, and `restore_each` restores a batch
that one bad text cannot sink (the CLI and `normalize-batch` use it)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from normalizer.checkpoint import has_pipeline, resolve_checkpoint
from normalizer.engines import ENGINES
from normalizer.restorer import Restorer, check_threshold
from normalizer.stages.lm import SMOLLM2

logger = logging.getLogger(__name__)

_DEFAULT: Restorer | None = None  # the restorer `normalize()` uses
_DEFAULT_LOCK = threading.Lock()


def load(
    path: str | Path | None = None,
    *,
    engine: str = "auto",
    lm: str | Path = SMOLLM2,
    device=None,
    threshold: float | None = None,
    dictionaries: list[str | Path] = (),
    lm_dtype: str = "auto",
) -> Restorer:
    """The restorer a checkpoint offers (default: `$NORMALIZER_MODEL`, else the shipped model): the pipeline
    (`engine="pipeline"`), the seq2seq model alone (`"seq2seq"`), or `"auto"`: the pipeline when the checkpoint has
    one and the language model loads, else the seq2seq model, saying why in one logged warning. `threshold`
    replaces the checkpoint's own (None keeps it). `dictionaries`: spinner dictionary files (`key|alt|alt` lines)
    the texts' spinner may have used; they need the pipeline (the seq2seq engine cannot use them: a ValueError).
    `lm_dtype`: the pipeline's language model precision (`normalizer.device.lm_precision`: auto, float32, bfloat16,
    float16, int8)."""
    from normalizer.engines.pipeline import Pipeline
    from normalizer.engines.seq2seq import Seq2SeqRestorer

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if threshold is not None:
        check_threshold(threshold)
    directory = resolve_checkpoint(path)
    if engine == "pipeline" or (engine == "auto" and has_pipeline(directory)):
        try:
            return Pipeline.from_pretrained(
                directory, lm=lm, device=device, threshold=threshold, dictionaries=dictionaries, lm_dtype=lm_dtype
            )
        except (OSError, ImportError) as e:
            if engine == "pipeline" or dictionaries:
                raise
            logger.warning("language-model pipeline unavailable (%s); using the seq2seq model alone", e)
    if dictionaries:
        raise ValueError("spinner dictionaries need the pipeline engine; the seq2seq model cannot use them")
    return Seq2SeqRestorer.from_pretrained(directory, device=device, threshold=threshold)


def restore_each(
    restorer: Restorer, texts: list[str], batch_size: int | None = None, groups: list | None = None
) -> tuple[dict[int, Any], dict[int, str]]:
    """`restorer.restore_batch(texts)` that one bad text cannot sink: (restorations by index, errors by index). If
    the call fails, each half is tried again, down to single texts; a text that fails alone gets its error.
    `groups`: see `Restorer.restore_batch`."""
    found: dict[int, Any] = {}
    failed: dict[int, str] = {}

    def attempt(idx: list[int]) -> None:
        try:
            extra = {"groups": [groups[k] for k in idx]} if groups is not None else {}
            found.update(zip(idx, restorer.restore_batch([texts[k] for k in idx], batch_size=batch_size, **extra)))
        except Exception as e:  # noqa: BLE001 - any failure of one text must not lose the rest
            if len(idx) == 1:
                failed[idx[0]] = f"restoration failed ({type(e).__name__}: {e})"
                return
            attempt(idx[: len(idx) // 2])
            attempt(idx[len(idx) // 2 :])

    if texts:
        attempt(list(range(len(texts))))
    return found, failed


def normalize(text: str) -> str:
    """Restore `text` with the default checkpoint (`$NORMALIZER_MODEL`, else the shipped one; loaded once, on first
    use): the pipeline when it has one and its language model loads, else the seq2seq model (see `load`)."""
    global _DEFAULT
    # Threads calling this for the first time at once must share one load: concurrent loads of the same checkpoint
    # fail in transformers ("Cannot copy out of meta tensor").
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = load()
    return _DEFAULT.normalize(text)
