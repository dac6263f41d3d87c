"""The engines: each proposes scored edits for sentence pieces; `normalizer.restorer.Restorer` does the rest.

- `pipeline`: candidates from thesauri, phrase tables and spintax, scored by a pretrained language model and a
  ranker (the default).
- `seq2seq`: a small encoder-decoder model writing the edits (fast, weaker; the fallback).
"""

ENGINES = ("auto", "pipeline", "seq2seq")
"""Names a user may pick (`auto`: the pipeline when the checkpoint has one and its language model loads)."""

LM_DTYPES = ("auto", "float32", "bfloat16", "float16", "int8")
"""The pipeline's language model precisions a user may pick (`normalizer.device.lm_precision`)."""
