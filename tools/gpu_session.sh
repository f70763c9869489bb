#!/usr/bin/env bash
# Train the shipped model on one GPU from a carried surface cache, then time `pcc implant` there.
#
#   tools/gpu_session.sh CACHE_DIR OUT_DIR [more `pcc train fit` arguments]
#
# CACHE_DIR: a cache folder built where the data is (`pcc train fit --config configs/skullfix.yaml`
# builds it; its cases.json lists the cases), so the GPU machine needs no NRRD data set.
# Writes to OUT_DIR: train.log, metrics.csv, skullfix_gpu.pt (split into parts of 10 MB:
# `cat skullfix_gpu.pt.part-* > skullfix_gpu.pt`), skullfix_gpu.json, bench_gpu.csv, implant_gpu.log.
# DEVICE=cpu and e.g. `--trainer.max_steps 5 --trainer.accelerator cpu` try the script without a GPU.
set -euo pipefail
cache=${1:?usage: tools/gpu_session.sh CACHE_DIR OUT_DIR}
out=${2:?usage: tools/gpu_session.sh CACHE_DIR OUT_DIR}
shift 2
device=${DEVICE:-cuda}
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
cd "$(dirname "$0")/.."

gpu=$( (nvidia-smi --query-gpu=name --format=csv,noheader || echo "no GPU") | head -1)
echo "$gpu" > "$out/train.log"
command="pcc train fit --config configs/skullfix.yaml --data.root ../shared/data/skullfix/training_set"
start=$(date +%s)
python3 -m pcc.cli train fit --config configs/skullfix.yaml --data.root ../shared/data/skullfix/training_set \
    --data.cache_dir "$cache" --trainer.enable_progress_bar false "$@" >> "$out/train.log" 2>&1
minutes=$(python3 -c "print(round(($(date +%s) - $start) / 60, 2))")
echo "training took $minutes min (wall, start-up included)" | tee -a "$out/train.log"

run=$(ls -d runs/skullfix/version_* | sort -V | tail -1)
cp "$run/metrics.csv" "$out/metrics.csv"
python3 tools/export_weights.py "$run/checkpoints/last.ckpt" --out "$out/skullfix_gpu.pt" --command "$command" \
    --machine "$gpu, torch $(python3 -c 'import torch; print(torch.__version__)'), torch Chamfer" \
    --train-minutes "$minutes" >> "$out/train.log" 2>&1
split -b 10M "$out/skullfix_gpu.pt" "$out/skullfix_gpu.pt.part-" && rm "$out/skullfix_gpu.pt"
model=$(mktemp -d)/skullfix_gpu.pt
cat "$out"/skullfix_gpu.pt.part-* > "$model"

# The bundled example case three times (the first includes CUDA's warm-up): accuracy and stage times.
bench=$(mktemp -d)
mkdir -p "$bench/defective_skull" "$bench/implant" "$bench/folder"
for copy in 005 005b 005c; do
    cp pcc/examples/defective_skull_005.nrrd "$bench/defective_skull/$copy.nrrd"
    cp pcc/examples/implant_005.nrrd "$bench/implant/$copy.nrrd"
done
timeout 150 python3 tools/bench_implant.py --root "$bench" --cases all --model "$model" --device "$device" --csv "$out/bench_gpu.csv" \
    > "$out/implant_gpu.log" 2>&1
# Folder mode of the command line: one model load for five cases.
for copy in a b c d e; do cp pcc/examples/defective_skull_005.nrrd "$bench/folder/case_$copy.nrrd"; done
start=$(date +%s.%N)
timeout 150 python3 -m pcc.cli implant "$bench/folder" -o "$bench/implants" --model "$model" --device "$device" >> "$out/implant_gpu.log" 2>&1
python3 -c "print(f'folder of 5 cases: {$(date +%s.%N) - $start:.1f} s wall, start-up and model load included')" \
    | tee -a "$out/implant_gpu.log"
