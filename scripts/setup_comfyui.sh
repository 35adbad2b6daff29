#!/usr/bin/env bash
# Make a ComfyUI checkout ready to run this pack and its ComfyUI tests (developers; needs PyPI, not GitHub).
#
#   scripts/setup_comfyui.sh COMFY_DIR
#
# COMFY_DIR must already hold a ComfyUI checkout (git clone https://github.com/Comfy-Org/ComfyUI, or any copy
# of it); this script does not download ComfyUI. It
#   1. makes a separate virtual environment COMFY_DIR/.venv (ComfyUI's own, not the pack's .venv);
#   2. installs torch + torchvision (TORCH_SPEC, default the pair this project was tested with; override for
#      your platform, e.g. TORCH_SPEC="torch torchvision" or a CPU index through PIP_INDEX_URL);
#   3. installs ComfyUI's requirements with torch held at the installed version (torchaudio is skipped:
#      ComfyUI only loses its audio nodes without it), plus `requests` (ComfyUI 0.3.x imports it at start);
#   4. installs this pack's requirements.txt (what ComfyUI-Manager would install), and pycolmap (the optional
#      `cameras` extra of pyproject.toml, for Syn2Seq Estimate Cameras; WITH_CAMERAS=0 skips it);
#   5. links the pack into COMFY_DIR/custom_nodes/syn2seq (skipped if something else is there).
# Environment (all optional):
#   COMFY_VENV=DIR  put the venv at DIR instead of COMFY_DIR/.venv (then nothing is written into COMFY_DIR
#                   if LINK_PACK=0 too: a read-only checkout works); `make test` uses .venv-comfy here
#   LINK_PACK=0     skip step 5 (the node tests link the pack into a temporary --base-directory themselves)
#   PYTHON=python3  the Python that makes the venv;  TORCH_SPEC as in step 2
# Then:
#   cd COMFY_DIR && .venv/bin/python main.py --cpu                 # the server with the pack
#   COMFYUI_PATH=COMFY_DIR .venv/bin/python -m pytest tests/nodes  # from the pack: the ComfyUI tests
#   (with COMFY_VENV: COMFYUI_PATH=COMFY_DIR COMFYUI_PYTHON=COMFY_VENV/bin/python .venv/bin/python -m pytest ...)
set -euo pipefail

if [[ $# -ne 1 ]]; then
    sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
COMFY_DIR=$(cd "$1" && pwd)
PACK_DIR=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
VENV=${COMFY_VENV:-"$COMFY_DIR/.venv"}
LINK_PACK=${LINK_PACK:-1}

if [[ ! -f "$COMFY_DIR/main.py" || ! -d "$COMFY_DIR/comfy_api" ]]; then
    echo "error: $COMFY_DIR is not a ComfyUI checkout (expected main.py and comfy_api/)" >&2
    exit 1
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "==> creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
VENV=$(cd "$VENV" && pwd)
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install -q --upgrade pip

echo "==> torch: $TORCH_SPEC"
# shellcheck disable=SC2086
"${PIP[@]}" install $TORCH_SPEC

TORCH_VERSION=$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
grep -v -E '^\s*torchaudio\b' "$COMFY_DIR/requirements.txt" > "$TMP/comfy-requirements.txt"
echo "torch==$TORCH_VERSION" > "$TMP/constraints.txt"

echo "==> ComfyUI requirements (torch held at $TORCH_VERSION, torchaudio skipped)"
"${PIP[@]}" install -r "$TMP/comfy-requirements.txt" -c "$TMP/constraints.txt" requests

echo "==> pack requirements ($PACK_DIR/requirements.txt)"
"${PIP[@]}" install -r "$PACK_DIR/requirements.txt" -c "$TMP/constraints.txt"

# The optional `cameras` extra (pycolmap, COLMAP's bindings: a CPU wheel of ~38 MB), so that Syn2Seq Estimate
# Cameras runs COLMAP here as it does for users who install it; without it the node falls back to OpenCV for
# short clips. Its version range is the one in pyproject.toml's [cameras] extra.
CAMERAS_SPEC=$(sed -n 's/^cameras = \["\(.*\)"\]$/\1/p' "$PACK_DIR/pyproject.toml")
if [[ -n "$CAMERAS_SPEC" && "${WITH_CAMERAS:-1}" != 0 ]]; then
    echo "==> cameras extra: $CAMERAS_SPEC (WITH_CAMERAS=0 skips it)"
    "${PIP[@]}" install "$CAMERAS_SPEC" -c "$TMP/constraints.txt"
fi

LINK="$COMFY_DIR/custom_nodes/syn2seq"
if [[ "$LINK_PACK" == 0 ]]; then
    echo "==> LINK_PACK=0: $LINK not made"
elif [[ -L "$LINK" || ! -e "$LINK" ]]; then
    ln -sfn "$PACK_DIR" "$LINK"
    echo "==> linked $LINK -> $PACK_DIR"
else
    echo "==> $LINK exists and is not a link; left as it is"
fi

echo "done. Start ComfyUI:  cd $COMFY_DIR && $VENV/bin/python main.py --cpu"
echo "      Run the tests:  cd $PACK_DIR && COMFYUI_PATH=$COMFY_DIR COMFYUI_PYTHON=$VENV/bin/python" \
     ".venv/bin/python -m pytest tests/nodes"
