#!/usr/bin/env bash
# The trained runs that benchmarks/applications.py measures (docs/applications.md).
# Usage: bash benchmarks/applications_runs.sh [RUNS_DIR]   (default: runs/)
set -euo pipefail
RUNS=${1:-runs}
TFVAE=${TFVAE:-python -m tfvae}
common=(--optimizer adam --learning-rate 0.001 --seed 0 --quiet)
train() { local out=$1; shift; [ -f "$RUNS/$out/model.keras" ] || $TFVAE train --out "$RUNS/$out" "$@" "${common[@]}"; }

# A 2-D latent space, to draw: the VAE and the autoencoder side by side.
train mnist-vae-z2 --latent-dim 2 --epochs 20
train mnist-ae-z2 --model autoencoder --latent-dim 2 --epochs 20
# The paper's MNIST model (20-D latent, 500 tanh units) for features, synthesis and compression.
train mnist-vae-z20 --latent-dim 20 --epochs 30
train mnist-ae-z20 --model autoencoder --latent-dim 20 --epochs 30
# Frey Face (Gaussian p(x|z), 200 hidden units as in the paper) for interpolating expressions.
train frey-vae-z5 --dataset frey_face --latent-dim 5 --hidden 200 --epochs 500
