"""The pipeline's stages, in the order a sentence meets them (see `normalizer.engines.pipeline`):

- `candidates`: every original a spinner could have swapped each word or phrase from (inverted thesauri with
  inflection, phrase tables, spintax).
- `lm`: a pretrained causal language model; one pass per sentence, then cached continuations per candidate.
- `features`: the named features of a candidate, computed in one place beside their schema.
- `ranker`: the channel model (how spinners swap) and the logistic rankers that turn features into a confidence.
"""
