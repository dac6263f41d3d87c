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


WORDS = "the firm said mentioned profits rose climbed on tuesday shares fell . he it".split()


def tiny_lm_dir(path):
    """A random one-layer Llama and a word-level tokenizer, saved as a model directory."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<s>", "</s>", "<unk>", *WORDS])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path
