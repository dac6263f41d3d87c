"""Helpers shared by the tests."""

from __future__ import annotations

import torch


def tiny_model(tokenizer, seed: int = 0):
    from transformers import T5Config, T5ForConditionalGeneration

    from training.train import load_preset

    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=tokenizer.vocab_size,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        **load_preset("tiny"),
    )
    return T5ForConditionalGeneration(config)


def scripted(normalizer, propose):
    """Make `normalizer` emit `propose(piece) -> target string` instead of running the model (logp 0 = sure)."""
    tok = normalizer.tokenizer

    def fake_generate(batch):
        out = []
        for ids in batch:
            target = tok.encode(propose(tok.decode(ids)))
            out.append((target, [0.0] * len(target)))
        return out

    normalizer._generate = fake_generate
    return normalizer
