"""`normalize(text)`: the one-liner, with the shipped default loaded once, on first use, by whichever thread comes
first."""

from __future__ import annotations

import os
import threading

from normalizer.pipeline import load

_DEFAULT = None  # the restorer `normalize()` uses: a Normalizer or a Pipeline
_DEFAULT_LOCK = threading.Lock()


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
