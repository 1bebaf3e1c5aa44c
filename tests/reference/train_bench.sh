#!/usr/bin/env bash
# GPU figures for issue 5 (run on the GPU machine after scripts/gpu-build): KD step
# tokens/s and LoRA vs full fine-tune step time and memory at GPT-2 124M and 355M shapes
# with random weights, fp32, batch 8 x 1024 tokens, SDPA attention; each run is 3
# untimed warm-up steps then 10 timed steps (device synchronised around each step).
# Writes one JSON file per run into OUTDIR and prints a summary table.
# Usage: tests/reference/train_bench.sh PATH/TO/gpt2-bench OUTDIR [batch] [seq_len]
set -euo pipefail
bench=$1
out=$2
batch=${3:-8}
seq=${4:-1024}
mkdir -p "$out"
common=(--device cuda --attention sdpa --batch "$batch" --seq-len "$seq" --warmup 3 --repeats 10)
run() {
  local name=$1
  shift
  "$bench" train-bench "$@" "${common[@]}" >"$out/$name.json" 2>"$out/$name.err" || {
    echo "$name failed:"; tail -n 5 "$out/$name.err"; return 0; }
}
for m in 124M 355M; do
  run "full-$m" --mode full --model "$m"
  run "lora-$m" --mode lora --model "$m" --rank 8 --targets c_attn
  run "lora-all-$m" --mode lora --model "$m" --rank 8 --targets c_attn,attn.c_proj,mlp.c_fc,mlp.c_proj
done
run "kd-355M-to-124M" --mode kd --teacher 355M --model 124M
run "kd-124M-to-6L" --mode kd --teacher 124M --model "" --student-layers 6
python3 - "$out" <<'PY'
import glob, json, os, sys
rows = []
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    j = json.load(open(f))
    m, st, tp = j["memory_mb"], j["step_time_s"], j["tokens_per_s"]
    rows.append(f"| {os.path.basename(f)[:-5]} | {j['params']:,} | {j['trainable_params']:,} | "
                f"{st['mean']*1e3:.1f} ± {st['std']*1e3:.1f} (n={st['n']}) | {tp['mean']:,.0f} ± {tp['std']:,.0f} | "
                f"{j['peak_mb'].get('cuda_allocated', float('nan')):,.0f} | {m['weights']:,.0f} | {m['gradients']:,.0f} | "
                f"{m['optimizer_state']:,.0f} | {m['activations']:,.0f} |")
print("| run | params | trainable | step ms | tokens/s | peak MB | weights MB | grads MB | optimizer MB | activations MB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
print("\n".join(rows))
PY
