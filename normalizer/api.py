"""`normalize(text)`: the one-liner, with the shipped default loaded once, on first use, by whichever thread comes
first."""

from __future__ import annotations

import os
import threading
from typing import Any

from normalizer.pipeline import load

_DEFAULT = None  # the restorer `normalize()` uses: a Normalizer or a Pipeline
_DEFAULT_LOCK = threading.Lock()


def restore_each(restorer, texts: list[str], batch_size: int | None = None) -> tuple[dict[int, Any], dict[int, str]]:
    """`restorer.restore_batch(texts)` that one bad text cannot sink: (restorations by index, errors by index). If
    the call fails, each half is tried again, down to single texts; a text that fails alone gets its error."""
    found: dict[int, Any] = {}
    failed: dict[int, str] = {}
    kwargs = {"batch_size": batch_size} if batch_size else {}

    def attempt(idx: list[int]) -> None:
        try:
            found.update(zip(idx, restorer.restore_batch([texts[k] for k in idx], **kwargs)))
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
    """Restore `text` with the shipped default (loaded once, on first use): the pipeline when the default checkpoint
    has one and its language model loads, else the seq2seq model (see `normalizer.pipeline.load`)."""
    global _DEFAULT
    # Threads calling this for the first time at once must share one load: concurrent loads of the same checkpoint
    # fail in transformers ("Cannot copy out of meta tensor").
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = load(os.environ.get("NORMALIZER_MODEL"))
    return _DEFAULT.normalize(text)
