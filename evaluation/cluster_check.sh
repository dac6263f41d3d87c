#!/usr/bin/env bash
# normalize-batch against a real Ray cluster started as a user would (issue 24, item 12), loopback only:
#   a head node and one worker node on this machine (`ray start`), a job with --address, the worker node killed
#   mid-job, the job's result checked (every record once, in order) or resumed, then `ray stop`.
#
#   bash evaluation/cluster_check.sh [RECORDS] [OUT_DIR]      # writes OUT_DIR/cluster-check.json
#
# Needs the batch extra (Ray) and the shipped model's seq2seq engine (no language model: it loads in seconds).
set -euo pipefail
records=${1:-600}
out=${2:-reports/cluster-check}
port=6390
work=$(mktemp -d)
mkdir -p "$out"
export RAY_AUTH_MODE=token  # a `ray start` head enables token auth; clients and nodes read ~/.ray/auth_token
trap 'ray stop --force >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

python - "$records" "$work/in.jsonl" <<'EOF'
import json, sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    for i in range(n):
        text = f"Record {i}: the minister mentioned {i} jobs." if i % 3 == 0 else f"Record {i} is clean."
        f.write(json.dumps({"text": text, "i": i}) + "\n")
EOF

ray stop --force >/dev/null 2>&1 || true
ray start --head --port $port --num-cpus 1 --node-ip-address 127.0.0.1 --include-dashboard=false \
    --disable-usage-stats >"$work/head.log" 2>&1
ray start --address 127.0.0.1:$port --num-cpus 1 --node-ip-address 127.0.0.1 --disable-usage-stats \
    >"$work/worker.log" 2>&1
sleep 3
nodes=$(ray status 2>/dev/null | grep -c '^ 1 node_' || true)
raylets=$(pgrep -f 'raylet/raylet' | sort -n)
worker_raylet=$(echo "$raylets" | tail -n 1)  # the node started second

start=$(date +%s)
set +e
normalize-batch "$work/in.jsonl" -o "$work/out" --address 127.0.0.1:$port --engine seq2seq --workers 2 \
    --cpus-per-worker 1 --shard-size 20 --format jsonl --no-progress >"$work/job1.log" 2>&1 &
job=$!
# Kill the worker node once some shards are done (its raylet and every process it started).
for _ in $(seq 1 600); do
    done_shards=$(python -c "import json,sys; print(len(json.load(open(sys.argv[1]))['shards']))" \
        "$work/out/_manifest.json" 2>/dev/null || echo 0)
    [ "$done_shards" -ge 3 ] && break
    kill -0 $job 2>/dev/null || break
    sleep 0.5
done
killed_at=$done_shards
pkill -9 -P "$worker_raylet" 2>/dev/null
kill -9 "$worker_raylet" 2>/dev/null
wait $job
rc1=$?
# Whatever the first run did, the same command finishes the job (on the head node alone).
normalize-batch "$work/in.jsonl" -o "$work/out" --address 127.0.0.1:$port --engine seq2seq --workers 1 \
    --cpus-per-worker 1 --shard-size 20 --format jsonl --no-progress >"$work/job2.log" 2>&1
rc2=$?
set -e
end=$(date +%s)

python - "$work/out" "$records" "$out/cluster-check.json" "$nodes" "$killed_at" "$rc1" "$rc2" "$((end - start))" \
    "$work/job1.log" "$work/job2.log" <<'EOF'
import json, sys
from pathlib import Path
out, n, report = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
nodes, killed_at, rc1, rc2, seconds = map(int, sys.argv[4:9])
rows = [json.loads(line) for p in sorted(out.glob("part-*.jsonl")) for line in p.read_text().splitlines()]
positions = [r["position"] for r in rows]
result = {
    "records": n,
    "nodes_before_kill": nodes,
    "shards_done_when_the_worker_node_was_killed": killed_at,
    "first_run_exit": rc1,
    "first_run_last_line": (Path(sys.argv[9]).read_text().strip().splitlines() or [""])[-1][:300],
    "resume_exit": rc2,
    "resume_summary": Path(sys.argv[10]).read_text().strip().splitlines()[-3:],
    "output_records": len(rows),
    "every_record_once_in_order": sorted(positions) == list(range(n)) and [r["i"] for r in sorted(rows, key=lambda r: r["position"])] == list(range(n)),
    "restored_mentioned": sum("said" in (r.get("restored") or "") for r in rows),
    "seconds": seconds,
}
report.write_text(json.dumps(result, indent=2) + "\n")
print(json.dumps(result, indent=2))
sys.exit(0 if result["every_record_once_in_order"] and rc2 == 0 else 1)
EOF
