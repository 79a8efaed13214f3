#!/usr/bin/env bash
# Every GPU-only measurement of the speed issue in one call of the lent machine, most important
# first, each under its own time limit, never past BUDGET_S in all (scripts/gpu/README.md):
#   1. train-step score/energy, small UNet, batch 16 and 128: vulkan vs wgpu in f32
#   2. the same on vulkan in flex32 and bf16 (tensor cores), batch 128; each dtype again with
#      the flipped-conv VJP (`--conv-vjp flipped-conv`); sampling cost (bench eval); gradcheck
#   3. the CIFAR config, batch 16 and 128
#   4. the 2-D default trained on the GPU and on the CPU from the same initial weights and data,
#      losses compared step by step (scripts/gpu/compare_losses.py)
#   5. CubeCL's per-kernel profile of the energy step
# Results: $OUT/summary.txt and $OUT/gpu-results.tar.gz (every log and JSON).
# Dry run on a CPU: `BACKENDS=flex DTYPES=f32 CONFIGS=toy2d BATCHES=4 scripts/gpu/measure.sh`.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/gpu-measure}
XTASK=${XTASK:-}
if [ -z "$XTASK" ]; then  # the kit's compressed binary (build_kit.sh), unpacked with Python's lzma
  XTASK=/tmp/ebdiff-xtask
  python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.gpu/xtask.xz'), open('$XTASK', 'wb'))" ||
    { echo "error: no .gpu/xtask.xz; run scripts/gpu/build_kit.sh here and carry .gpu" >&2; exit 1; }
  chmod +x "$XTASK"
fi
BACKENDS=${BACKENDS:-"vulkan wgpu"}
DTYPES=${DTYPES:-"flex32 bf16"}          # besides f32, on the first backend
CONFIGS=${CONFIGS:-"unet-small cifar"}
BATCHES=${BATCHES:-"16 128"}
QUALITY_STEPS=${QUALITY_STEPS:-300}
BUDGET_S=${BUDGET_S:-500}
PYTHON=${PYTHON:-python3}   # with torch, for the initial weights of step 4
# Dense peaks of an H200 SXM (as an H100 SXM): tensor cores for f16/bf16 inputs (flex32 feeds
# them f16), none for plain f32 on Vulkan (no TF32 there).
declare -A PEAK=([f32]=67 [flex32]=989 [bf16]=989 [f16]=989)
R=$OUT/results
mkdir -p "$R"
start=$(date +%s)
left() { echo $((BUDGET_S - ($(date +%s) - start))); }
summary() { echo "$*" | tee -a "$OUT/summary.txt"; }

if ls .gl/*.deb >/dev/null 2>&1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ -f "$icd" ] && export VK_DRIVER_FILES=$icd
fi
summary "== $(date -u +%FT%TZ) $(cat .gpu/BUILD.txt 2>/dev/null | head -2 | tr '\n' ' ')"
command -v nvidia-smi >/dev/null && nvidia-smi > "$R/nvidia-smi.txt" 2>&1

# run NAME LIMIT_S ARGS...: one xtask process, skipped when the budget cannot hold it.
run() {
  local name=$1 limit=$2; shift 2
  if [ "$(left)" -lt "$limit" ]; then summary "$name: skipped (budget)"; return 1; fi
  local t0=$(date +%s)
  timeout "$limit" "$XTASK" "$@" > "$R/$name.log" 2>&1
  local rc=$?
  summary "$name: rc $rc, $(( $(date +%s) - t0 )) s"
  return $rc
}

bench() {  # bench BACKEND DTYPE CONFIG BATCH LIMIT [CONV_VJP]
  local vjp=${6:-transposed}
  local name=train-$1-$2-$3-b$4${6:+-$6}
  run "$name" "$5" --backend "$1" --dtype "$2" --conv-vjp "$vjp" bench train-step --config "configs/$3.toml" \
    --batch "$4" --warmup 3 --iters 5 --peak-tflops "${PEAK[$2]}" --json "$R/$name.json" &&
    grep -E "^(score|energy)|ratio" "$R/$name.log" | sed "s/^/  /" | tee -a "$OUT/summary.txt"
}

first=${BACKENDS%% *}
small=${CONFIGS%% *}
for b in $BATCHES; do for be in $BACKENDS; do bench "$be" f32 "$small" "$b" 90; done; done
for dt in $DTYPES; do bench "$first" "$dt" "$small" "${BATCHES##* }" 90; done
# The conv VJP through the forward-conv kernels (Burn's conv_transpose2d has no implicit-GEMM or
# tensor-core path on GPUs): the energy/score ratio at batch 128 is what it should lower.
for dt in f32 $DTYPES; do bench "$first" "$dt" "$small" "${BATCHES##* }" 90 flipped-conv; done
# Sampling cost: energy + ∇ₓE per example (no autodiff), 2-D MLP and small UNet.
run "eval-$first-toy2d" 60 --backend "$first" bench eval --config configs/toy2d.toml \
  --batch 100,1000,10000 && tail -3 "$R/eval-$first-toy2d.log" | sed "s/^/  /" | tee -a "$OUT/summary.txt"
run "eval-$first-$small" 60 --backend "$first" bench eval --config "configs/$small.toml" \
  --batch 16,128 && tail -2 "$R/eval-$first-$small.log" | sed "s/^/  /" | tee -a "$OUT/summary.txt"
# The GPU kernels pass the same VJP and finite-difference checks as the CPU's.
for cfg in "$small" toy2d; do run "gradcheck-$first-$cfg" 60 --backend "$first" gradcheck \
  --config "configs/$cfg.toml" && tail -3 "$R/gradcheck-$first-$cfg.log" | sed "s/^/  /" | tee -a "$OUT/summary.txt"; done
for cfg in ${CONFIGS#"$small"}; do
  for b in $BATCHES; do for be in $BACKENDS; do bench "$be" f32 "$cfg" "$b" 120; done; done
  for dt in $DTYPES; do bench "$first" "$dt" "$cfg" "${BATCHES##* }" 120; done
done

# 4. The same initial weights (drawn once by PyTorch: each backend's own RNG would draw others)
# and the same batches (drawn on the host): any difference between the loss curves comes from
# the device's arithmetic.
q=$R/quality
mkdir -p "$q"
sed -e "s/^steps = .*/steps = $QUALITY_STEPS/" -e 's/^log_every = .*/log_every = 1/' \
  configs/toy2d.toml > "$q/toy2d.toml"
"$PYTHON" scripts/torch/export_init.py "$q/toy2d.toml" "$q/init.safetensors" > "$q/init.log" 2>&1 ||
  summary "quality: export_init.py failed ($q/init.log)"
train() { run "quality-$1" 150 --backend "$2" train --config "$q/toy2d.toml" --out "$q/$1" \
  --init-from "$q/init.safetensors" --quiet; }
if [ -f "$q/init.safetensors" ] && train "$first" "$first" && train cpu flex; then
  python3 scripts/gpu/compare_losses.py "$q/cpu/metrics.jsonl" "$q/$first/metrics.jsonl" \
    > "$R/quality-compare.txt" 2>&1
  sed "s/^/  /" "$R/quality-compare.txt" | tee -a "$OUT/summary.txt"
fi

# 5. Per-kernel times of the energy step (first backend, f32, small UNet, largest batch).
CUBECL_DEBUG_OPTION=profile run profile-$first 60 --backend "$first" bench train-step \
  --config "configs/$small.toml" --batch "${BATCHES##* }" --warmup 1 --iters 1

summary "total $(( $(date +%s) - start )) s"
tar czf "$OUT/gpu-results.tar.gz" -C "$OUT" results
