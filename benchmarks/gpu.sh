#!/usr/bin/env bash
# The GPU figures for benchmarks/README.md, in one run: examples/s for the paper's MLP and the
# 784-400-20 ReLU model, XLA on and off, in float32 and with mixed precision (float16, bfloat16),
# then the log-likelihood benchmark (k = 5000) over all 10,000 MNIST test images, then the
# ResNet VAE with 6 latent groups of likelihood_table.py trained for HIERARCHY_MINUTES (120) on
# dynamically binarized MNIST and scored by importance sampling (k = 5000, all 10,000 test images).
#
#   PYTHON=/path/to/python [HIERARCHY_MINUTES=120] benchmarks/gpu.sh [OUT_DIR]
#
# PYTHON is an interpreter with tfvae's dependencies and a CUDA build of TensorFlow
# (pip install "tensorflow[and-cuda]==2.21.0"); OUT_DIR (default $OUT, else ./gpu-results)
# receives one JSON file per benchmark and the log. About 10 minutes on one recent GPU, and the
# hierarchy's minutes (HIERARCHY_MINUTES=0 leaves it out); a rerun continues its run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
OUT_DIR="${1:-${OUT:-gpu-results}}"
mkdir -p "$OUT_DIR"
exec > >(tee "$OUT_DIR/gpu.log") 2>&1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PYTHON" -c "import tensorflow as tf; print('TensorFlow', tf.__version__, tf.config.list_physical_devices('GPU'))"

for precision in none float16 bfloat16; do
  flag=()
  [ "$precision" != none ] && flag=(--mixed-precision "$precision")
  echo "== training throughput, mixed precision: $precision"
  "$PYTHON" benchmarks/train_throughput.py --configs paper,relu --xla on,off --epochs 4 \
      "${flag[@]}" --json | tee "$OUT_DIR/train_throughput_$precision.json"
done

echo "== log-likelihood, k = 5000, all 10,000 test images"
"$PYTHON" benchmarks/log_likelihood.py --examples 10000 --samples 5000 --xla on \
    --batch-size 500 --chunk-size 1000 --json | tee "$OUT_DIR/log_likelihood.json"

HIERARCHY_MINUTES="${HIERARCHY_MINUTES:-120}"
if [ "$HIERARCHY_MINUTES" != 0 ]; then
  echo "== the ResNet VAE with 6 latent groups, $HIERARCHY_MINUTES minutes, NLL (k = 5000)"
  "$PYTHON" benchmarks/likelihood_table.py --budget cpu --minutes "$HIERARCHY_MINUTES" \
      --models resnet_groups --k 5000 --test-examples 10000 --out "$OUT_DIR/likelihood"
fi
