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


class ScriptedModel(torch.nn.Module):
    """A stand-in seq2seq model behind transformers' public `generate` API: for each input piece it "generates"
    `propose(piece)` (an edit-list or full-sentence target), every token at log-probability `logp`."""

    def __init__(self, tokenizer, propose, logp: float = 0.0):
        super().__init__()
        self.tok, self.propose, self.logp = tokenizer, propose, logp
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the module a device

    def generate(self, input_ids, attention_mask, max_new_tokens, **kwargs):
        from types import SimpleNamespace

        rows = []
        for ids, mask in zip(input_ids.tolist(), attention_mask.tolist()):
            piece = self.tok.decode([i for i, m in zip(ids, mask) if m])
            rows.append(self.tok.encode(self.propose(piece))[:max_new_tokens])
        width = max(len(r) for r in rows)
        seq = torch.full((len(rows), width + 1), self.tok.pad_token_id)  # column 0: the decoder start
        for b, r in enumerate(rows):
            seq[b, 1 : 1 + len(r)] = torch.tensor(r, dtype=torch.long)
        return SimpleNamespace(sequences=seq, scores=tuple(torch.zeros(len(rows), 1) for _ in range(width)))

    def compute_transition_scores(self, sequences, scores, beam_indices=None, normalize_logits=True):
        return torch.full((sequences.shape[0], sequences.shape[1] - 1), self.logp)


def scripted(normalizer, propose, logp: float = 0.0):
    """Give `normalizer` a `ScriptedModel` that proposes `propose(piece)` (logp 0 = sure)."""
    normalizer.model = ScriptedModel(normalizer.tokenizer, propose, logp)
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


def run_cli(tmp_path, model_dir, data: bytes, *args: str) -> tuple[int, bytes]:
    """`normalize IN -o OUT --model DIR ...` on `data`: (exit code, output bytes or b"" when none was written)."""
    from normalizer.cli import main

    src = tmp_path / "in.txt"
    src.write_bytes(data)
    out = tmp_path / "out.txt"
    code = main([str(src), "-o", str(out), "--model", str(model_dir), "--device", "cpu", "--no-progress", *args])
    return code, out.read_bytes() if out.exists() else b""


def tiny_bpe_lm_dir(path, texts: list[str], layers: int = 2):
    """A random small Llama with a byte-level BPE tokenizer trained on `texts` (decoding gives text back exactly,
    as SmolLM2's does), saved as a model directory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    special = ["<pad>", "<s>", "</s>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tk.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=tk.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        initializer_range=0.5,  # peaked outputs, as a pretrained model has: LoRA alone can then fit a few pairs
    )
    LlamaForCausalLM(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path
