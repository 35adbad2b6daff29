#!/bin/sh
# `make gpu-check`: syn2seq selfcheck --gpu with this machine's own CUDA torch (README, "GPU check").
#   GPU_CHECK_PY    a Python with CUDA torch (default python3)
#   WHEELHOUSE      a folder made by scripts/gpu_wheelhouse.sh (default wheelhouse): when it is there, its wheels
#                   are installed first, offline, into GPU_CHECK_DEPS, put on PYTHONPATH in front of that Python's
#                   own packages (torch stays the machine's own)
#   GPU_CHECK_DEPS  where (default .gpu-deps; reinstalled when the wheelhouse's list changes)
# Arguments go to syn2seq selfcheck --gpu (--dry-run, --only, --timeout, --out). stdout: the one JSON summary.
# Exit: 0 passed, 1 a step failed, 77 no CUDA (nothing ran), 2 bad options.
set -eu
cd "$(dirname "$0")/.."
PY=${GPU_CHECK_PY:-python3}
WHEELHOUSE=${WHEELHOUSE:-wheelhouse}
DEPS=${GPU_CHECK_DEPS:-.gpu-deps}
if [ -f "$WHEELHOUSE/requirements.txt" ]; then
  stamp="$DEPS/.syn2seq-installed-$(cksum < "$WHEELHOUSE/requirements.txt" | cut -d ' ' -f 1)"
  if [ ! -f "$stamp" ]; then
    rm -rf "$DEPS"
    echo "gpu-check: installing $WHEELHOUSE into $DEPS (offline) ..." >&2
    "$PY" -m pip install -q --no-index --no-deps --find-links "$WHEELHOUSE" --target "$DEPS" \
      -r "$WHEELHOUSE/requirements.txt" >&2
    touch "$stamp"
  fi
  PYTHONPATH="$(cd "$DEPS" && pwd)${PYTHONPATH:+:$PYTHONPATH}"
  export PYTHONPATH
fi
exec "$PY" -m syn2seq_core selfcheck --gpu "$@"
