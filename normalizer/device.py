"""Where and in what precision models run: one device policy and one dtype policy, used by every loader."""

from __future__ import annotations

import functools
from pathlib import Path

import torch


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`auto`/None picks CUDA when present, else CPU; asking for CUDA where there is none is a ValueError."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but this torch has no usable CUDA device")
    return dev


@functools.cache
def _cpu_flags() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bfloat16 matrix units (AMX or AVX512-BF16); elsewhere bf16 is emulated and
    several times slower than float32 (measured: 7x slower on an AVX2-only EPYC)."""
    flags = _cpu_flags()
    return "amx_bf16" in flags or "avx512_bf16" in flags


def cpu_has_avx2() -> bool:
    """Whether this is an x86 CPU with AVX2 (Linux: /proc/cpuinfo), the kind int8 was measured on; elsewhere
    (ARM, or no /proc/cpuinfo) `auto` does not choose int8."""
    return " avx2" in _cpu_flags()


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
INT8 = "int8"
"""A language model's precision besides `DTYPES`: float32 weights loaded, then its linear layers' products run in
int8 on the CPU (`normalizer.stages.int8`)."""


@functools.cache
def int8_supported() -> bool:
    """Whether this torch multiplies int8 matrices on the CPU (`torch._int_mm`, a private call that int8 layers
    need), tried once on a small product."""
    try:
        a = torch.ones(2, 16, dtype=torch.int8)
        return bool(torch._int_mm(a, a.t().contiguous())[0, 0] == 16)
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def lm_precision(device: torch.device, dtype: str = "auto") -> str:
    """The language model's precision by name: `auto` is int8 on x86 CPUs with AVX2 but without native bf16
    (where torch can multiply int8), else `model_dtype`'s. Measured with AVX2 kernels only: 1.2x faster than
    float32 on a whole file, quality within noise (README, "int8 on CPUs without native bf16"); where bf16 is
    native it is no faster than int8, and stays."""
    if dtype == "auto" and device.type == "cpu" and not cpu_supports_bf16() and cpu_has_avx2() and int8_supported():
        return INT8
    if dtype == INT8:
        model_dtype(device, dtype)  # the checks
        if not int8_supported():
            raise ValueError(f"dtype int8 needs torch._int_mm on the CPU, which torch {torch.__version__} lacks")
        return INT8
    return str(model_dtype(device, dtype)).removeprefix("torch.")


def model_dtype(device: torch.device, dtype: str = "auto") -> torch.dtype:
    """The precision models are loaded in: `auto` is bfloat16 on CUDA cards that support it (float16 on older ones)
    and on CPUs with native bf16 units, float32 elsewhere; or one of `DTYPES` by name; `int8` (CPU only) loads
    float32, which the language model's loader then converts."""
    if dtype == INT8:
        if device.type != "cpu":
            raise ValueError(f"dtype int8 runs on the CPU only, not on {device}")
        return torch.float32
    if dtype != "auto":
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be auto, int8 or one of {', '.join(DTYPES)}, got {dtype!r}")
        return DTYPES[dtype]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_supports_bf16() else torch.float32
