#!/usr/bin/env bash
# The device check for a lent GPU machine (run from the repo root there). Prepare here:
#   CARGO_TARGET_DIR=target-gpu cargo build -p xwin-infer -p xwin-bench --features xwin-model/wgpu
#   mkdir -p .gpu && cp target-gpu/debug/xwin-{infer,bench} .gpu/ && strip .gpu/* \
#     && (cd .gpu && tar -cf - xwin-infer xwin-bench | xz -T2 -6 > bins.tar.xz && rm xwin-infer xwin-bench)
#   and the Vulkan loader debs in .gl/ (see the device tool's README); carry .gl and .gpu.
#   Run it as one call: `bash scripts/gpu_check.sh` with timeout_s 600 (BUDGET below is 540).
# A session is lent 15 minutes of device time, start included, so every step runs under one
# deadline (BUDGET seconds from the start) and the steps come in the order of #15's done-when:
# 760M fixed-shape SFT, wgpu f32 and bf16 beside PyTorch CUDA fp32 and bf16 autocast (tokens/s,
# peak GPU memory, model FLOP utilisation against the H200's 67 TFLOP/s f32 and 989 bf16
# dense); the memory estimate against the measured peak of a 7B-shaped stack with 2 layers;
# then, while time is left, HF parity of logits and greedy tokens through wgpu/Vulkan,
# inference and the smaller training configs. A step that would start with under 20 s left is
# skipped and says so. Results land in $OUT (at most 8 files come back: all go in one log and
# one folder of JSON lines).
set -o pipefail
start=$(date +%s)
budget="${BUDGET:-540}"
out="${OUT:-/tmp}"
log="$out/gpu_check.log"
results="$out/results.jsonl"
: > "$results"

# step NAME LIMIT CMD...: runs CMD for at most LIMIT seconds and never past the deadline; its
# last output line (a JSON object from our benchmarks) goes to results.jsonl under NAME.
step() {
  local name="$1" limit="$2"
  shift 2
  local left=$(( start + budget - $(date +%s) ))
  if (( left < 20 )); then
    echo "== $name: skipped, ${left} s left" | tee -a "$log"
    return
  fi
  (( limit > left )) && limit=$left
  echo "== $name (limit ${limit} s)" | tee -a "$log"
  local t0
  t0=$(date +%s)
  # GPU memory in use, sampled every 100 ms while the step runs: one measure for both sides
  # (PyTorch's own max_memory_allocated leaves out its context and cache).
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$out/mem.log" &
  local sampler=$!
  timeout "$limit" "$@" > "$out/step.out" 2>> "$log"
  local rc=$?
  kill "$sampler"
  wait "$sampler" 2> /dev/null
  cat "$out/step.out" >> "$log"
  local last peak
  last=$(grep '^{' "$out/step.out" | tail -1)
  peak=$(sort -n "$out/mem.log" | tail -1)
  printf '{"step": "%s", "rc": %d, "wall_s": %d, "gpu_mem_peak_mib": %s, "result": %s}\n' \
    "$name" "$rc" "$(( $(date +%s) - t0 ))" "${peak:-null}" "${last:-null}" >> "$results"
  echo "== $name: rc $rc in $(( $(date +%s) - t0 )) s" | tee -a "$log"
}

{
  (cd .gpu && tar -xJf bins.tar.xz)
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
} >> "$log" 2>&1
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
nvidia-smi -L | tee -a "$log"
export PYTHONUNBUFFERED=1
# Kernels tuned once are kept for the later steps (burn's autotune cache).
export XDG_CACHE_HOME=/tmp/xwin-cache

train=(--batch 8 --repeats 3)
step xwin_f32_760m 120 .gpu/xwin-bench train --device wgpu --size 760m "${train[@]}" --peak-tflops 67
step torch_fp32_760m 60 python3 scripts/bench_train_torch.py --device cuda --size 760m "${train[@]}" --peak-tflops 67
step torch_bf16_760m 60 python3 scripts/bench_train_torch.py --device cuda --bf16 --size 760m "${train[@]}" --peak-tflops 989
step xwin_bf16_760m 120 .gpu/xwin-bench train --device wgpu --size 760m "${train[@]}" --precision bf16 --peak-tflops 989
# The estimate (printed in full, and as estimated_peak_mib in the step's JSON) against the
# measured peak of the same shape.
step xwin_estimate_7b2l 20 .gpu/xwin-bench --device wgpu memory --size 7b-2l --batch 4 --seq 1024
step xwin_f32_7b2l 90 .gpu/xwin-bench train --device wgpu --size 7b-2l --batch 4 --seq 1024 --repeats 2
step parity_wgpu 60 python3 scripts/check_parity.py .gpu/xwin-infer --device wgpu
step xwin_f16_760m 90 .gpu/xwin-bench train --device wgpu --size 760m "${train[@]}" --precision f16 --peak-tflops 989
step xwin_infer 45 .gpu/xwin-bench infer --device wgpu --repeats 3
step torch_infer 30 python3 scripts/bench_infer_torch.py --device cuda --repeats 3
for size in 21m 143m; do
  step "xwin_f32_$size" 45 .gpu/xwin-bench train --device wgpu --size "$size" "${train[@]}" --peak-tflops 67
  step "torch_fp32_$size" 30 python3 scripts/bench_train_torch.py --device cuda --size "$size" "${train[@]}" --peak-tflops 67
done
rm -f "$out/step.out" "$out/mem.log"
echo "== done in $(( $(date +%s) - start )) s" | tee -a "$log"
