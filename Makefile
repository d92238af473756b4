# Two entry points for a fresh machine: `make main` (train on the embedded MNIST and export a
# servable model to export/mnist_vae/N) and `make test`. Both create .venv and install tfvae into it first.
PYTHON ?= python3
VENV ?= .venv
RUN_DIR ?= runs/mnist
MODEL_NAME ?= mnist_vae
# The extras installed with tfvae; CI adds tflite, onnx and search, whose tests are skipped without
# them.
EXTRAS ?= test

# One stamp per set of extras: asking for more extras installs them into the existing .venv.
$(VENV)/.installed-$(EXTRAS): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip
	$(VENV)/bin/python -m pip install -e ".[$(EXTRAS)]"
	touch $@

.PHONY: install main test
install: $(VENV)/.installed-$(EXTRAS)

main: install
	$(VENV)/bin/tfvae train --out $(RUN_DIR) --overwrite --dataset mnist --binarize dynamic \
		--hidden 400 --activation relu --latent-dim 20 --optimizer adam --learning-rate 1e-3 \
		--batch-size 128 --epochs 10
	$(VENV)/bin/tfvae evaluate $(RUN_DIR)
	$(VENV)/bin/tfvae export $(RUN_DIR) --model-name $(MODEL_NAME) --base-dir export

# Two processes, a test file each at a time: most of a test's time is spent tracing and
# compiling models, on one core.
test: install
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile
