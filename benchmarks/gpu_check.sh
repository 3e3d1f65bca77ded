#!/usr/bin/env bash
# GPU check of gan_modules, at most 10 minutes on one H100/H200:
#   1. training throughput (benchmarks/throughput.py) at batch 128 and 512, in fp32/TF32 and in bf16 + channels_last +
#      fused Adam;
#   2. sample quality (benchmarks/quality.py --preset gpu): DCGAN and WGAN-GP on Fashion-MNIST at 32 px, 4,000
#      generator steps, 2 seeds, against their independent references (benchmarks/references.py).
# Writes gpu_check.json (everything), gpu_check.md (the tables), RESULTS.md (quality.py's report), gpu_check.log and
# grids/ into the output folder: $OUT when set (the device runner's folder), else the folder given, else
# runs/gpu_check.
#
# Needs a bare checkout plus ONE git-ignored folder, .carry/gpu (or $GPU_BUNDLE), built here by
# benchmarks/prepare_gpu_bundle.sh: wheels/ (what our package imports that the GPU image lacks: jsonargparse and its
# signature extras) and fashion-mnist/ (the four IDX files). On the device runner:
#   run(command="bash benchmarks/gpu_check.sh", carry=[".carry/gpu"], timeout_s=600)
#
# usage: bash benchmarks/gpu_check.sh [--dry-run] [OUTPUT_FOLDER]
#   --dry-run  everything on the CPU at a tiny size (2 generator steps, 64 evaluation samples): under ~1 minute
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY=0
DEST=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    -h | --help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu_check.sh: unknown option $arg (use --dry-run and/or an output folder)" >&2; exit 2 ;;
    *) DEST="$arg" ;;
  esac
done
DEST="${DEST:-${OUT:-$ROOT/runs/gpu_check}}"
BUNDLE="${GPU_BUNDLE:-$ROOT/.carry/gpu}"
PY="${PYTHON:-python3}"
mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
LOG="$DEST/gpu_check.log"
: >"$LOG"
say() { echo "[gpu_check $(date +%T)] $*" | tee -a "$LOG"; }
START=$SECONDS

# --- environment: the bundle's wheels on the path, our checkout importable -------------------------------------
if compgen -G "$BUNDLE/wheels/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" \
    "$BUNDLE"/wheels/*.whl >>"$LOG" 2>&1
  export PYTHONPATH="$WORK/site:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
  say "installed $(ls "$BUNDLE"/wheels/*.whl | wc -l) wheels from $BUNDLE/wheels"
else
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled
if ! "$PY" -c "import gan_modules, gan_modules.cli, datamodules" >>"$LOG" 2>&1; then
  say "our package does not import here (see above); build the bundle with benchmarks/prepare_gpu_bundle.sh and carry $BUNDLE"
  exit 1
fi
DATA_ARGS=()
if [ -d "$BUNDLE/fashion-mnist" ]; then
  DATA_ARGS=(--data-dir "$BUNDLE/fashion-mnist")
fi

# --- 1. throughput ----------------------------------------------------------------------------------------------
if [ "$DRY" = 1 ]; then
  DEVICE=cpu
  TP_TIMEOUT=60
  THROUGHPUT=(--device cpu --tiny)
elif grep -q -- '--modes' "$ROOT/benchmarks/throughput.py"; then
  DEVICE=cuda
  TP_TIMEOUT=180
  THROUGHPUT=(--device cuda --batch-sizes 128 512 --modes fp32 bf16-cl-fused)
else  # throughput.py before its --modes interface: fp32 only
  DEVICE=cuda
  TP_TIMEOUT=180
  THROUGHPUT=(--device cuda --batch-size 128 512 --tf32)
fi
say "throughput: benchmarks/throughput.py ${THROUGHPUT[*]}"
if timeout "$TP_TIMEOUT" "$PY" "$ROOT/benchmarks/throughput.py" "${THROUGHPUT[@]}" --json "$WORK/throughput.json" \
  >>"$LOG" 2>&1; then
  say "throughput done ($((SECONDS - START)) s so far)"
else
  say "throughput failed or ran past ${TP_TIMEOUT} s (exit $?); see the log"
fi

# --- 2. quality: one process per (row, seed), in parallel --------------------------------------------------------
if [ "$DRY" = 1 ]; then
  QUALITY=(--preset gpu-dry --device cpu)
  JOBS="${JOBS:-2}"
  Q_TIMEOUT=120
  SEEDS=(0 1)
  ROWS=(dcgan wgan_gp dcgan_reference wgan_gp_reference)
  export OMP_NUM_THREADS=1
else
  QUALITY=(--preset gpu --device cuda)
  JOBS="${JOBS:-8}"
  Q_TIMEOUT="${Q_TIMEOUT:-$((570 - (SECONDS - START)))}"
  SEEDS=(0 1)
  ROWS=(wgan_gp wgan_gp_reference dcgan dcgan_reference)
  export OMP_NUM_THREADS=2
fi
say "quality: benchmarks/quality.py ${QUALITY[*]} ${DATA_ARGS[*]}, rows ${ROWS[*]}, seeds ${SEEDS[*]}, $JOBS jobs, ${Q_TIMEOUT} s"
# GPU: one process per (row, seed), the GPU is far from full with one of these small nets; dry run: one per seed
# (each process pays the imports).
if [ "$DRY" = 1 ]; then GROUPS_=("${ROWS[*]}"); else GROUPS_=("${ROWS[@]}"); fi
parts=()
for seed in "${SEEDS[@]}"; do
  for group in "${GROUPS_[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
    name="q_${group// /+}_${seed}"
    parts+=("$WORK/$name/quality.json")
    # shellcheck disable=SC2086  # a group is a space-separated list of rows
    timeout "$Q_TIMEOUT" "$PY" "$ROOT/benchmarks/quality.py" "${QUALITY[@]}" "${DATA_ARGS[@]}" --models $group \
      --seeds "$seed" --out "$WORK/$name" >"$WORK/$name.log" 2>&1 &
  done
done
wait || true
for log in "$WORK"/q_*.log; do
  { echo "--- $(basename "$log")"; tail -n 20 "$log"; } >>"$LOG"
done
done_parts=()
for p in "${parts[@]}"; do
  if [ -f "$p" ]; then done_parts+=("$p"); else say "no result from $(basename "$(dirname "$p")") (failed or timed out)"; fi
done
if [ "${#done_parts[@]}" -gt 0 ]; then
  "$PY" "$ROOT/benchmarks/quality.py" --merge "${done_parts[@]}" --out "$WORK/quality" >>"$LOG" 2>&1
  cp "$WORK/quality/RESULTS.md" "$DEST/RESULTS.md"
  if [ -d "$WORK/quality/grids" ]; then
    mkdir -p "$DEST/grids"
    cp "$WORK/quality/grids/"*.png "$DEST/grids/"
  fi
fi

# --- 3. report --------------------------------------------------------------------------------------------------
"$PY" "$ROOT/benchmarks/gpu_report.py" --throughput "$WORK/throughput.json" --quality "$WORK/quality/quality.json" \
  --dry-run "$DRY" --seconds "$((SECONDS - START))" --out "$DEST" >>"$LOG" 2>&1
say "wrote $DEST/gpu_check.json and $DEST/gpu_check.md in $((SECONDS - START)) s"
