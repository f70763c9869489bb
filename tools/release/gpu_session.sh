#!/usr/bin/env bash
# On one GPU machine without the data set: time folder-mode `pcc implant` (shipped weights), then train
# from a carried surface cache, export the weights and score them on the bundled example case.
#
#   COMMIT=$(git rev-parse HEAD) tools/release/gpu_session.sh CACHE_DIR OUT_DIR CONFIG [more `pcc train fit` arguments]
#
# CACHE_DIR: a cache folder built where the data is (`pcc train fit --config CONFIG` builds it; its
# cases.json lists the cases; tools/release/compact_cache.py makes a smaller copy to carry).
# Writes to OUT_DIR: bench_folder_gpu.txt, train.log, metrics.csv, weights_gpu.pt (split into parts of
# 10 MB: `cat weights_gpu.pt.part-* > weights_gpu.pt`), weights_gpu.json, bench_gpu.csv, implant_gpu.log.
# FOLDER_CASES=0 skips the folder timing; DEVICE=cpu with e.g. `--trainer.max_steps 5
# --trainer.accelerator cpu` tries the script without a GPU.
set -euo pipefail
cache=${1:?usage: tools/release/gpu_session.sh CACHE_DIR OUT_DIR CONFIG}
out=${2:?usage: tools/release/gpu_session.sh CACHE_DIR OUT_DIR CONFIG}
config=${3:?usage: tools/release/gpu_session.sh CACHE_DIR OUT_DIR CONFIG}
shift 3
device=${DEVICE:-cuda}
folder_cases=${FOLDER_CASES:-32}
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
cd "$(dirname "$0")/../.."  # the repository root

gpu=$( (nvidia-smi --query-gpu=name --format=csv,noheader || echo "no GPU") | head -1)
echo "$gpu, $(nproc) CPU cores" | tee "$out/bench_folder_gpu.txt" > "$out/train.log"

# 1. Folder mode, whole command (start-up and model load included), shipped weights.
if [ "$folder_cases" -gt 0 ]; then
    timeout 60 python -m tools.benchmarks.bench_folder --cases 3 --workers 1 --device "$device" >> "$out/bench_folder_gpu.txt" 2>&1 || true
    timeout 120 python -m tools.benchmarks.bench_folder --cases "$folder_cases" --workers 8,14 --device "$device" >> "$out/bench_folder_gpu.txt" 2>&1 || true
fi

# 2. Training.
command="pcc train fit --config $config $*"
start=$(date +%s)
python3 -m pcc.cli train fit --config "$config" --data.root "${PCC_DATA:-../shared/data}/skullfix/training_set" \
    --data.cache_dir "$cache" --trainer.enable_progress_bar false "$@" >> "$out/train.log" 2>&1
minutes=$(python3 -c "print(round(($(date +%s) - $start) / 60, 2))")
echo "training took $minutes min (wall, start-up included)" | tee -a "$out/train.log"

# 3. Export the weights (split: files coming back from the machine are limited in size).
name=$(python3 -c "import yaml, sys; print(yaml.safe_load(open(sys.argv[1]))['trainer']['logger']['init_args']['name'])" "$config")
run=$(ls -d runs/"$name"/version_* | sort -V | tail -1)
cp "$run/metrics.csv" "$out/metrics.csv" || echo "no metrics.csv in $run" >> "$out/train.log"
python -m tools.release.export_weights "$run/checkpoints/last.ckpt" --out "$out/weights_gpu.pt" --command "$command" \
    --commit "${COMMIT:-unknown}" \
    --machine "$gpu, torch $(python3 -c 'import torch; print(torch.__version__)'), torch Chamfer" \
    --train-minutes "$minutes" >> "$out/train.log" 2>&1
split -b 10M "$out/weights_gpu.pt" "$out/weights_gpu.pt.part-" && rm "$out/weights_gpu.pt"
model=$(mktemp -d)/weights_gpu.pt
cat "$out"/weights_gpu.pt.part-* > "$model"

# 4. The bundled example case three times (the first includes CUDA's warm-up): accuracy and stage times.
bench=$(mktemp -d)
mkdir -p "$bench/defective_skull" "$bench/implant"
for copy in 005 005b 005c; do
    cp pcc/examples/defective_skull_005.nrrd "$bench/defective_skull/$copy.nrrd"
    cp pcc/examples/implant_005.nrrd "$bench/implant/$copy.nrrd"
done
timeout 120 python -m tools.benchmarks.bench_implant --root "$bench" --cases all --model "$model" --device "$device" \
    --csv "$out/bench_gpu.csv" > "$out/implant_gpu.log" 2>&1 || true
