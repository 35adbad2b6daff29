#!/usr/bin/env bash
# Make a trained model the bundled one: copy it into the package and record what
# tests/core/test_bundled_model.py checks (`syn2seq eval` on held-out takes 2^30 + 0..3).
#
#   scripts/bundle_model.sh runs/synthetic_tiny_refine/model.safetensors
#
# The model's recipe (MODEL_CARD.md):
#   syn2seq train --config configs/synthetic_tiny_pretrain.toml --out runs/synthetic_tiny_pretrain
#   syn2seq train --config configs/synthetic_tiny.toml --out runs/synthetic_tiny --max-steps 5360
#   syn2seq train --config configs/synthetic_tiny_refine.toml --out runs/synthetic_tiny_refine
# Run it from the repository root.
set -euo pipefail
MODEL=${1:?usage: scripts/bundle_model.sh MODEL.safetensors}
PY=${PY:-.venv/bin/python}
ASSET=syn2seq_core/assets/models/syn2seq_synthetic_tiny.safetensors
RENDER=(--size 32 --supersample 2 --exo-frames 4 --ego-frames 4)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cp "$MODEL" "$ASSET.tmp" && mv "$ASSET.tmp" "$ASSET"
"$PY" -m syn2seq_core render-synthetic --out "$TMP/takes" --takes 4 --seed 1073741824 "${RENDER[@]}"
"$PY" -m syn2seq_core eval --takes "$TMP/takes" --steps 25 --seed 0 --mean --out "$TMP/eval.json"
"$PY" - "$TMP/eval.json" "${ASSET%.safetensors}.eval_subset.json" "${RENDER[@]}" <<'PY'
import json, sys
from pathlib import Path

from syn2seq_core.atomic import write_text_atomic
from syn2seq_core.pipeline import load_model

report, out, render = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]), sys.argv[3:]
summary = report["summary"]
record = {"takes": summary["takes"], "steps": report["steps"], "seed": report["seed"],
          "model_size": list(load_model().size),
          "seeds": f"2^30 + 0..{summary['takes'] - 1} (syn2seq render-synthetic --seed 1073741824 {' '.join(render)})",
          "render_args": render,
          "methods": {m: {"psnr": round(e["psnr"]["mean"], 4), "ssim": round(e["ssim"]["mean"], 5)}
                      for m, e in summary["methods"].items()}}
write_text_atomic(out, json.dumps(record, indent=2) + "\n")
print(f"recorded {out}")
PY
