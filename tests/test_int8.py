"""int8 linear layers (`normalizer.stages.int8`): close to float32, per-token scales, and the loader's order."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_lm_dir

from normalizer.device import model_dtype
from normalizer.stages.int8 import Int8Linear, quantize_linears
from normalizer.stages.lm import LanguageModel


@pytest.mark.parametrize("shape", [(1, 16, 18), (3, 2, 17, 9), (40, 64, 48)])
def test_int8_linear_is_float32s_within_rounding(shape):
    torch.manual_seed(0)
    *rows, k, n = shape
    linear = torch.nn.Linear(k, n)
    x = torch.randn(*rows, k)
    want = linear(x).detach()
    got = Int8Linear(linear)(x)
    assert got.shape == want.shape and got.dtype == torch.float32
    # Two roundings to 1/254 of each row's range: the error is a small share of the output's scale.
    assert (got - want).abs().max() <= 0.03 * want.abs().max()


def test_each_token_is_rounded_with_its_own_scale():
    """A causal LM's start token carries activations far larger than the rest; one scale for the whole batch
    (what torch's dynamic quantisation does) would round every other token to nothing."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(32, 16, bias=False)
    x = torch.randn(4, 32)
    x[0] *= 1000.0
    want = linear(x).detach()
    got = Int8Linear(linear)(x)
    for row in range(4):
        assert (got[row] - want[row]).abs().max() <= 0.03 * want[row].abs().max()


def test_an_int8_lm_scores_as_its_float32_self_within_tolerance(tmp_path):
    d = tiny_lm_dir(tmp_path / "lm")
    exact = LanguageModel.from_pretrained(d, device="cpu", dtype="float32")
    int8 = LanguageModel.from_pretrained(d, device="cpu", dtype="int8")
    assert int8.int8 and int8.precision == "int8" and exact.precision == "float32"
    assert sum(isinstance(m, Int8Linear) for m in int8.model.modules()) == 8  # q k v o, gate up down, the head
    assert not any(isinstance(m, torch.nn.Linear) for m in int8.model.modules())
    assert int8.linear_flops() == exact.linear_flops()
    seqs = [[exact.start_id, 5, 6, 7, 8], [exact.start_id, 9, 10]]
    for a, b in zip(exact.sequence_logprob(seqs), int8.sequence_logprob(seqs)):
        assert b == pytest.approx(a, abs=0.02)
    gathers = [[(2, 11)], [(1, 12)]]
    items = [(0, 2, [11, 12]), (1, 1, [12, 13, 14])]
    want = exact.continuations(exact.first_pass(seqs, gathers), items)
    got = int8.continuations(int8.first_pass(seqs, gathers), items)
    assert got == pytest.approx(want, abs=0.02)


def test_a_delta_is_laid_over_the_float_weights_before_int8(tmp_path):
    from safetensors.torch import save_file

    d = tiny_lm_dir(tmp_path / "lm")
    base = LanguageModel.from_pretrained(d, device="cpu", dtype="float32")
    name = "model.layers.0.mlp.down_proj.weight"
    tuned = base.model.state_dict()[name] * 3.0
    save_file({name: tuned}, str(tmp_path / "delta.safetensors"))
    int8 = LanguageModel.from_pretrained(d, device="cpu", dtype="int8", delta=tmp_path / "delta.safetensors")
    layer = int8.model.model.layers[0].mlp.down_proj
    dequantised = (layer.weight_int8.float() * layer.weight_scale).t()
    assert (dequantised - tuned).abs().max() <= 0.01 * tuned.abs().max()
    with pytest.raises(ValueError, match="before the model is made int8"):
        int8.apply_delta(tmp_path / "delta.safetensors")


def test_int8_is_for_float32_models_on_the_cpu():
    with pytest.raises(ValueError, match="CPU only"):
        model_dtype(torch.device("cuda"), "int8")
    assert model_dtype(torch.device("cpu"), "int8") == torch.float32
    with pytest.raises(ValueError, match="float32 model on the CPU"):
        quantize_linears(torch.nn.Sequential(torch.nn.Linear(4, 4)).bfloat16())


def test_auto_is_int8_on_x86_cpus_without_native_bf16(monkeypatch, tmp_path):
    from normalizer import device as device_module

    cpu = torch.device("cpu")
    monkeypatch.setattr(device_module, "cpu_supports_bf16", lambda: False)
    monkeypatch.setattr(device_module, "cpu_has_avx2", lambda: True)
    assert device_module.lm_precision(cpu) == "int8"
    assert LanguageModel.from_pretrained(tiny_lm_dir(tmp_path / "lm"), device="cpu").precision == "int8"
    assert device_module.lm_precision(cpu, "float32") == "float32"
    monkeypatch.setattr(device_module, "cpu_supports_bf16", lambda: True)
    assert device_module.lm_precision(cpu) == "bfloat16"
    assert device_module.lm_precision(cpu, "int8") == "int8"
    monkeypatch.setattr(device_module, "cpu_supports_bf16", lambda: False)
    monkeypatch.setattr(device_module, "cpu_has_avx2", lambda: False)  # ARM, or no /proc/cpuinfo
    assert device_module.lm_precision(cpu) == "float32"
    monkeypatch.setattr(device_module, "cpu_has_avx2", lambda: True)
    monkeypatch.setattr(device_module, "int8_supported", lambda: False)
    assert device_module.lm_precision(cpu) == "float32"
    with pytest.raises(ValueError, match="_int_mm"):
        device_module.lm_precision(cpu, "int8")
