"""Run another module as on an x86 CPU with AVX2 but without native bf16, for measuring on a machine that has more.

    python -m evaluation.as_avx2 evaluation.bench_pipeline --pipeline models/default ... --dtype int8

torch's kernels are limited to AVX2 through its own environment variables (set before torch is imported: the
process re-executes itself once with them), and `normalizer.device.cpu_supports_bf16` answers False, so that
`auto` precisions choose what they would on such a CPU. An emulation: the kernels are the ones an AVX2 CPU would
run, the clock, caches and memory are this machine's.
"""

from __future__ import annotations

import os
import runpy
import sys

AVX2_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "DNNL_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2",
}


def main(argv: list[str]) -> None:
    if not argv or argv[0].startswith("-"):
        sys.exit("usage: python -m evaluation.as_avx2 MODULE [ARGS...]")
    if any(os.environ.get(k) != v for k, v in AVX2_ENV.items()):
        if "torch" in sys.modules:
            sys.exit("evaluation.as_avx2: torch was imported before the AVX2 limits could be set")
        os.execve(sys.executable, [sys.executable, "-m", "evaluation.as_avx2", *argv], {**os.environ, **AVX2_ENV})
    import normalizer.device as device

    device.cpu_supports_bf16 = lambda: False
    sys.argv = [argv[0], *argv[1:]]
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
