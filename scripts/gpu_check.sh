#!/usr/bin/env bash
# The device check for a lent GPU machine (run from the repo root there). Prepare here:
#   CARGO_TARGET_DIR=target-gpu cargo build -p xwin-infer -p xwin-bench --features xwin-model/wgpu
#   mkdir -p .gpu && cp target-gpu/debug/xwin-{infer,bench} .gpu/ && strip .gpu/* \
#     && (cd .gpu && tar -cf - xwin-infer xwin-bench | xz -T2 -6 > bins.tar.xz && rm xwin-infer xwin-bench)
#   and the Vulkan loader debs in .gl/ (see the device tool's README); carry .gl and .gpu.
# Checks HF parity of logits and greedy tokens through wgpu/Vulkan, then benchmarks wgpu
# against PyTorch CUDA on the same card: inference, and the training step at 21M, 143M and
# 760M (PyTorch fp32 and bf16 autocast) with model FLOP utilisation against the H200's peaks
# (67 TFLOP/s f32 without tensor cores, 989 bf16 dense), then the memory estimate against the
# measured peak GPU memory of a 7B-shaped stack with 2 layers. Results land in $OUT.
set -o pipefail
(cd .gpu && tar -xJf bins.tar.xz)
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
nvidia-smi -L
export PYTHONUNBUFFERED=1
out="${OUT:-/tmp}"
timeout 180 python3 scripts/check_parity.py .gpu/xwin-infer --device wgpu 2>&1 | tee "$out/parity_wgpu.json"
timeout 120 .gpu/xwin-bench infer --device wgpu --repeats 5 2>&1 | tee "$out/xwin_wgpu.json"
timeout 90 python3 scripts/bench_infer_torch.py --device cuda --repeats 5 2>&1 | tee "$out/torch_cuda.json"
for size in 21m 143m 760m; do
  timeout 150 .gpu/xwin-bench train --device wgpu --size "$size" --batch 8 --repeats 5 --peak-tflops 67 2>&1 | tee "$out/xwin_wgpu_train_$size.json"
  timeout 90 python3 scripts/bench_train_torch.py --device cuda --size "$size" --batch 8 --repeats 5 --peak-tflops 67 2>&1 | tee "$out/torch_cuda_train_$size.json"
  timeout 90 python3 scripts/bench_train_torch.py --device cuda --bf16 --size "$size" --batch 8 --repeats 5 --peak-tflops 989 2>&1 | tee "$out/torch_cuda_bf16_train_$size.json"
done
# xwin's mixed precision at 760M (bf16 products; f16 in case bf16 does not compile on Vulkan)
# beside PyTorch's bf16 autocast above: the issue's ">= 0.5x" line.
for p in bf16 f16; do
  timeout 150 .gpu/xwin-bench train --device wgpu --size 760m --batch 8 --repeats 5 --precision "$p" --peak-tflops 989 2>&1 | tee "$out/xwin_wgpu_${p}_train_760m.json"
done
.gpu/xwin-bench --device wgpu memory --size 7b-2l --batch 4 --seq 1024 | tee "$out/xwin_estimate_7b2l.txt"
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$out/gpu_mem_7b2l.log" &
sampler=$!
timeout 150 .gpu/xwin-bench train --device wgpu --size 7b-2l --batch 4 --seq 1024 --repeats 2 2>&1 | tee "$out/xwin_wgpu_train_7b2l.json"
kill "$sampler"
echo "peak GPU memory (MiB, nvidia-smi): $(sort -n "$out/gpu_mem_7b2l.log" | tail -1)"
