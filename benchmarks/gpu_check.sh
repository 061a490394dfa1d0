#!/usr/bin/env bash
# The GPU checks of `dataprep train`, in one run on one NVIDIA GPU (about 4 minutes on an H200):
#   1. the tiny model learns on the bundled sample corpus through the reader's pinned copy-out,
#      and a rerun with a larger --steps continues from the checkpoint;
#   2. asking for more processes than GPUs stops with one sentence;
#   3. throughput: tokens/s, MFU and data-wait fraction of tiny and gpt2-124m (--compile),
#      each beside the same model on synthetic tokens already on the GPU.
#
#     bash benchmarks/gpu_check.sh [RESULTS_DIR]
set -uo pipefail
results=${1:-gpu-results}
mkdir -p "$results"
tmp=$(mktemp -d)
dp() { python3 -m dataprep "$@"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())"

echo "== 1. loss falls on the sample corpus (tiny, bf16, one GPU) =="
dp shard sample_data -o "$tmp/shards" --quiet
dp tokenize "$tmp/shards" -o "$tmp/tok" --seq-len 256 --quiet
run="$tmp/run"
train=(train "$tmp/tok" --out "$run" --model tiny --batch-size 32 --lr 3e-3 --device cuda
  --nproc-per-node 1 --num-workers 1 --eval-dir "$tmp/tok" --eval-every 150
  --eval-batches 5 --checkpoint-every 150 --quiet --json)
dp "${train[@]}" --steps 300 && dp "${train[@]}" --steps 450
cp "$run/metrics.jsonl" "$results/loss-metrics.jsonl"
python3 - "$run/metrics.jsonl" <<'EOF'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
losses = [(r["step"], r["loss"]) for r in records if "loss" in r]
evals = [(r["step"], round(r["eval_loss"], 3)) for r in records if "eval_loss" in r]
steps = [s for s, _ in losses]
start = sum(v for _, v in losses[:5]) / 5
end = sum(v for _, v in losses[-10:]) / 10
ok = start > 5.0 and end < start - 1.5 and steps == sorted(set(steps)) and steps[-1] == 450
print(f"loss first 5 steps {start:.3f} -> last 10 {end:.3f}; eval {evals}; "
      f"steps {steps[0]}..{steps[-1]} without gaps or repeats: {steps == sorted(set(steps))}")
print("LOSS CHECK", "PASSED" if ok else "FAILED")
EOF

echo "== 2. more processes than GPUs =="
dp train "$tmp/tok" --out "$tmp/bad" --device cuda --nproc-per-node 2 --steps 1
echo "exit code $? (2 expected)"

echo "== 3. throughput =="
bench() {
  local model=$1 batch=$2
  shift 2
  python3 benchmarks/bench_train_gpu.py --model "$model" --batch-size "$batch" "$@" \
    --json "$results/bench-$model-bs$batch.json"
}
bench tiny 64 --steps 200
bench gpt2-124m 16 --steps 60 --compile
bench gpt2-124m 32 --steps 60 --compile
rm -rf "$tmp"
