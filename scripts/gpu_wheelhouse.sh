#!/bin/sh
# Make a wheelhouse for `make gpu-check` on a bare GPU machine (CUDA torch, nothing else of ours), here, where
# there is internet and this checkout's environments (.venv from `make test`, .venv-comfy when present) run:
# every package installed there, at the version installed there, except torch and what comes with it
# (torchvision, torchaudio, triton, nvidia-*: the GPU machine has its own CUDA build). Run it on the GPU
# machine's Python version and platform (e.g. the same container image); copy the checkout with the folder.
#   scripts/gpu_wheelhouse.sh [DIR] [--list-only]      (DIR default wheelhouse; --list-only: the list, no wheels)
set -eu
cd "$(dirname "$0")/.."
DIR=${1:-wheelhouse}
mkdir -p "$DIR"
for py in .venv/bin/python .venv-comfy/bin/python; do
  if [ -x "$py" ]; then "$py" -m pip freeze --exclude-editable; fi
done | grep -v -E ' @ |^-e |^#' \
  | grep -v -i -E '^(torch|torchvision|torchaudio|triton|nvidia-[a-z0-9-]*|syn2seq)==' \
  | awk -F '==' '{ name = tolower($1); gsub(/_/, "-", name); if (!(name in seen)) { seen[name] = 1; print } }' \
  > "$DIR/requirements.txt"
echo "gpu_wheelhouse: $(wc -l < "$DIR/requirements.txt") packages -> $DIR/requirements.txt" >&2
if [ "${2:-}" = "--list-only" ]; then exit 0; fi
# Wheels as published where there are some; the others built here (same platform as the GPU machine).
.venv/bin/python -m pip wheel -q --no-deps -w "$DIR" -r "$DIR/requirements.txt"
echo "gpu_wheelhouse: $(ls "$DIR"/*.whl | wc -l) wheels in $DIR" >&2
