#!/usr/bin/env bash
# One short GPU lease, used whole: three training runs side by side on one GPU for $MINUTES each (the learning rate
# decays over that time, --time-schedule), then fp16 export, a GPU speed benchmark, and everything packed into $OUT
# (at most 8 files of < 16 MiB each, as the lease's file return allows).
#
#   A  medium preset, edit target, encoder auxiliary loss   -> the candidate default model (weights come back)
#   B  medium preset, full-sentence target (same settings)  -> target-format ablation on GPU (logs and metrics only)
#   C  small preset (the shipped architecture), edit target -> model-size ablation (weights come back)
#
# RUNS (one "name: flags" per line) and KEEP (the names whose weights come back, about 45 MB at most in all) choose
# other runs; the defaults are the three above, as the shipped model was trained. The next lease's lead, say:
#   RUNS="gpu-medium-full: --preset medium --target-format full" KEEP=gpu-medium-full MINUTES=7 OUT=... bash ...
#
# Needs data/encoded.npz (python -m training.encoded ...), data/tokenizer and data/testsets. No `datasets`, lexicon
# packages or network needed on the GPU machine. Dry run on CPU:
#   DEVICE=cpu MEDIUM=tiny SMALL=tiny BS=16 MINUTES=0.2 OUT=/tmp/lease bash training/gpu_lease.sh
set -u
MINUTES=${MINUTES:-6}
DEVICE=${DEVICE:-cuda}
MEDIUM=${MEDIUM:-medium}
SMALL=${SMALL:-small}
BS=${BS:-256}
OUT=${OUT:?set OUT to the folder that comes back}
RUNS=${RUNS:-"gpu-medium-edits: --preset $MEDIUM
gpu-medium-full: --preset $MEDIUM --target-format full
gpu-small-edits: --preset $SMALL"}
KEEP=${KEEP:-"gpu-medium-edits gpu-small-edits"}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
mkdir -p "$OUT" logs runs pack
t0=$(date +%s)
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
  nproc; } > logs/machine.txt 2>&1

common=(--pairs data/encoded.npz --tokenizer data/tokenizer --device "$DEVICE" --no-progress --max-steps 1000000
        --max-minutes "$MINUTES" --time-schedule --batch-size "$BS" --lr 5e-4 --warmup-steps 300 --clean-share 0.15
        --eval-every 2500 --eval-size 300 --save-every 1000 --log-every 50 --aux-weight 0.5)
launch() {  # name, extra flags...
  local name=$1; shift
  local limit=$(python3 -c "print(int($MINUTES * 60 + 150))")
  timeout "$limit" python3 -m training.train "${common[@]}" --out-dir "runs/$name" "$@" > "logs/$name.log" 2>&1
  local rc=$?
  if [ $rc -ne 0 ] && [ $(( $(date +%s) - t0 )) -lt 150 ]; then  # died early: once more in fp32
    echo "== $name exited $rc; retrying with --precision fp32" >> "logs/$name.log"
    rm -rf "runs/$name"
    timeout "$limit" python3 -m training.train "${common[@]}" --out-dir "runs/$name" --precision fp32 "$@" \
        >> "logs/$name.log" 2>&1
  fi
}
pids=()
while IFS=: read -r name flags; do
  [ -n "$name" ] || continue
  # shellcheck disable=SC2086  # the flags are words
  launch "$name" $flags & pids+=($!)
done <<< "$RUNS"
( while sleep 30; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null; done ) \
    > logs/gpu-util.txt &
monitor=$!
wait "${pids[@]}"
kill $monitor 2>/dev/null
echo "training done at $(( $(date +%s) - t0 )) s" >> logs/machine.txt

for name in $KEEP; do
  src="runs/$name/model"
  [ -f "$src/model.safetensors" ] || src="runs/$name/checkpoint"  # killed at the time limit: last checkpoint
  if [ -f "$src/model.safetensors" ]; then
    python3 -m training.export "$src" "pack/$name" >> logs/export.log 2>&1
    timeout 90 python3 -m evaluation.bench --model "pack/$name" --testset data/testsets/synthetic-bestspinner-r0.3.jsonl \
        --n 80 --devices "$DEVICE" --batch-sizes 8 64 256 --latency-n 30 --out "$OUT/bench-$name.json" \
        >> logs/bench.log 2>&1
    tar -C pack -cf - "$name" | split -b 15M -d - "$OUT/$name.tar.part"
  fi
done
echo "all done at $(( $(date +%s) - t0 )) s" >> logs/machine.txt
tar -czf "$OUT/logs.tar.gz" logs runs/*/train_log.jsonl runs/*/model/metrics.json runs/*/model/training_config.json \
    2>/dev/null
ls -la "$OUT"
tail -n 3 logs/*.log
cat logs/machine.txt
