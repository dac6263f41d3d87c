"""LoRA fine-tuning of a causal LM (training.lm_lora) and adapter loading (normalizer.adapter), on a tiny random
Llama: one step learns, save -> load is exact, another base is refused, float32 and bfloat16 autocast both run."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import tiny_lm_dir

pytest.importorskip("peft")

from normalizer.adapter import AdapterMismatch, load_adapter, save_adapter  # noqa: E402
from training.lm_lora import bucketed, train_step, with_lora  # noqa: E402


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return tiny_lm_dir(tmp_path_factory.mktemp("base"))


def lora_model(base_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    return with_lora(model, r=4, alpha=8, dropout=0.0), AutoTokenizer.from_pretrained(base_dir)


def batch(tokenizer):
    ids = tokenizer(["the firm said profits rose .", "he mentioned shares fell ."], padding=True, return_tensors="pt")
    labels = ids.input_ids.masked_fill(ids.attention_mask == 0, -100)
    return {"input_ids": ids.input_ids, "attention_mask": ids.attention_mask, "labels": labels}


@pytest.mark.parametrize("bf16", [False, True])
def test_one_step_lowers_the_loss_and_trains_only_the_adapter(base_dir, bf16):
    model, tokenizer = lora_model(base_dir)
    frozen = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    b = batch(tokenizer)
    first = train_step(model, optimizer, b, bf16=bf16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        after = model(**b).loss.item()
    assert after < first
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if not p.requires_grad)


def test_save_then_load_gives_identical_outputs(base_dir, tmp_path):
    model, tokenizer = lora_model(base_dir)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    train_step(model, optimizer, batch(tokenizer), bf16=False)  # so the adapter is not the identity
    save_adapter(model, tmp_path / "adapter", base_dir)
    assert json.loads((tmp_path / "adapter" / "base.json").read_text())["sha256"]
    loaded, _ = load_adapter(tmp_path / "adapter", base_dir)
    b = batch(tokenizer)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(**b).logits, loaded(**b).logits)


def test_another_base_or_pickled_weights_are_refused(base_dir, tmp_path):
    model, tokenizer = lora_model(base_dir)
    save_adapter(model, tmp_path / "adapter", base_dir)
    other = tiny_lm_dir(tmp_path / "other")
    from safetensors.torch import load_file, save_file

    weights = load_file(other / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 1.0  # same shapes, other weights
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(AdapterMismatch, match="SHA-256"):
        load_adapter(tmp_path / "adapter", other)
    (tmp_path / "adapter" / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(ValueError, match="refusing adapter_model.bin"):
        load_adapter(tmp_path / "adapter", base_dir)


def test_length_buckets_cover_every_pair_once():
    lengths = [(i * 37) % 101 for i in range(250)]

    def mean_spread(batches):
        return sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)

    batches = bucketed(lengths, 8, seed=0, pool=8)
    assert sorted(i for b in batches for i in b) == list(range(250))
    assert mean_spread(batches) < mean_spread(bucketed(lengths, 8, seed=0, pool=1)) / 4  # little padding


def test_training_resumes_from_its_checkpoint(base_dir, tmp_path):
    import argparse

    import datasets

    from training.lm_lora import train

    pairs = tmp_path / "pairs"
    for split, n in (("train", 24), ("dev", 4)):
        spun = ["he mentioned profits rose ."] * n
        rows = {"spun": spun, "original": ["he said profits rose ."] * n, "target": ["mentioned<to> said"] * n}
        datasets.Dataset.from_dict(rows).save_to_disk(str(pairs / split / "shard-00000"))
    args = dict(pairs=str(pairs), lm=str(base_dir), out=str(tmp_path / "run"), batch_size=4, threads=1, minutes=60.0,
                eval_every=60.0, eval_size=2, rank=4, top_layers=None, lr=1e-3, warmup_steps=1, bf16=False,
                decay=True, log_every=1, seed=0)  # fmt: skip
    train(argparse.Namespace(**args, max_steps=3))
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert state["step"] == 3 and state["pairs"] == 12 and (tmp_path / "run" / "adapter" / "base.json").is_file()
    train(argparse.Namespace(**args, max_steps=8))  # 24 pairs = 6 batches: crosses into a second epoch
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert state["step"] == 8 and state["pairs"] == 32 and state["epoch"] == 1
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").open()]
    assert [r["step"] for r in log] == list(range(1, 9))  # one log, no step twice
    rates = [r["lr"] for r in log]
    assert all(0 < y < x for x, y in zip(rates[1:], rates[2:]))  # --decay: falling after the one warm-up step
    curve = [json.loads(line) for line in (tmp_path / "run" / "curve.jsonl").open()]
    assert [r["step"] for r in curve] == [0]  # the start is evaluated once, not again on resume
