#!/usr/bin/env bash
# Builds the one git-ignored folder that benchmarks/gpu_check.sh needs on the GPU machine (default .carry/gpu):
#   wheels/        what our package imports that the GPU image (torch 2.11, lightning 2.6.6, torchmetrics, scipy) lacks:
#                  jsonargparse and its "signatures" extras (docstring-parser, typeshed-client), pure-Python wheels
#                  for CPython 3.12 (the image's Python). wandb and torch-fidelity are not imported at import time.
#   fashion-mnist/ the four Fashion-MNIST IDX files (from Debian's dataset-fashion-mnist, ~30 MB).
# usage: bash benchmarks/prepare_gpu_bundle.sh [FOLDER]
#   FASHION_MNIST_DIR (default /usr/share/datasets/fashion-mnist) and PYTHON (default: .venv/bin/python, else
#   python3, with pip) can be set.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/.carry/gpu}"
FASHION="${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
# versions we test with (pyproject: jsonargparse[signatures]>=4.27)
WHEELS=(jsonargparse==4.53.0 docstring-parser==0.18.0 typeshed-client==2.15.0)

mkdir -p "$DEST/wheels" "$DEST/fashion-mnist"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  if [ -f "$FASHION/$f.gz" ]; then
    cp "$FASHION/$f.gz" "$DEST/fashion-mnist/"
  elif [ -f "$FASHION/$f" ]; then
    cp "$FASHION/$f" "$DEST/fashion-mnist/"
  else
    echo "prepare_gpu_bundle.sh: $FASHION has no $f(.gz); apt-get install dataset-fashion-mnist or set FASHION_MNIST_DIR" >&2
    exit 1
  fi
done
rm -f "$DEST"/wheels/*.whl
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d "$DEST/wheels" "${WHEELS[@]}"
echo "prepare_gpu_bundle.sh: $DEST holds $(ls "$DEST"/wheels/*.whl | wc -l) wheels and the Fashion-MNIST files" \
  "($(du -sh "$DEST" | cut -f1)); carry it: run(..., carry=[\"${DEST#$ROOT/}\"])"
