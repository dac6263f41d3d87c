"""Fixtures built, never downloaded: a tiny SentencePiece model trained in memory and a two-layer T5."""

from __future__ import annotations

import random

import pytest
from helpers import tiny_model

SENTENCES = [
    "The company said profits rose 5% on Tuesday after the results.",
    "Shares in the firm fell sharply in early trading in New York.",
    "The government mentioned that the war would end next year.",
    "Officials stated the freight train was late because of the storm.",
    "Analysts expect the bank to raise interest rates again in March.",
    "He said the deal was worth $1.2bn and would create 300 jobs.",
    "Prices rose faster than expected, but wages did not keep up.",
    "The minister will visit the region later this week, aides said.",
    "Visit https://example.com or write to press@example.org for details.",
    "“Curly quotes” — dashes – tabs\tand café, naïve, 日本語, 😀 emoji.",
]


def corpus() -> list[str]:
    rng = random.Random(0)
    out = []
    for _ in range(40):
        s = SENTENCES[:]
        rng.shuffle(s)
        out += s
    return out


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    from training.tokenizer import train_tokenizer

    d = tmp_path_factory.mktemp("tok")
    train_tokenizer(corpus(), d, vocab_size=400)
    return d


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from normalizer.tokenizer import SpmTokenizer

    return SpmTokenizer(tokenizer_dir / "spiece.model")


@pytest.fixture()
def normalizer(tokenizer):
    from normalizer.engines.seq2seq import InferenceConfig, Seq2SeqRestorer

    return Seq2SeqRestorer(
        tiny_model(tokenizer), tokenizer, InferenceConfig(max_new_tokens=32), device="cpu", threshold=0.0
    )


@pytest.fixture(scope="session")
def saved_model_dir(tmp_path_factory, tokenizer):
    from normalizer.engines.seq2seq import InferenceConfig, Seq2SeqRestorer

    d = tmp_path_factory.mktemp("model")
    restorer = Seq2SeqRestorer(tiny_model(tokenizer), tokenizer, InferenceConfig(max_new_tokens=12), device="cpu")
    restorer.save_pretrained(d)
    return d
