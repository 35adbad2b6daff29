#!/bin/sh
# `make gpu-check`: syn2seq selfcheck --gpu with this machine's own CUDA torch (README, "GPU check").
#   GPU_CHECK_PY  a Python with CUDA torch (default python3)
#   WHEELHOUSE    a folder made by scripts/gpu_wheelhouse.sh (default wheelhouse): when it is there, its wheels
#                 are installed first, offline, into .venv-gpu, a venv that sees the machine's own torch
# Arguments go to syn2seq selfcheck --gpu (--dry-run, --only, --timeout, --out). stdout: the one JSON summary.
# Exit: 0 passed, 1 a step failed, 77 no CUDA (nothing ran), 2 bad options.
set -eu
cd "$(dirname "$0")/.."
PY=${GPU_CHECK_PY:-python3}
WHEELHOUSE=${WHEELHOUSE:-wheelhouse}
if [ -f "$WHEELHOUSE/requirements.txt" ]; then
  if [ ! -x .venv-gpu/bin/python ]; then
    "$PY" -m venv --system-site-packages .venv-gpu >&2
  fi
  .venv-gpu/bin/python -m pip install -q --no-index --no-deps --find-links "$WHEELHOUSE" \
    -r "$WHEELHOUSE/requirements.txt" >&2
  PY=.venv-gpu/bin/python
fi
exec "$PY" -m syn2seq_core selfcheck --gpu "$@"
