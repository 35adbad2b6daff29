#!/usr/bin/env bash
# Make a trained model the bundled one: copy it into the package and record what
# tests/core/test_bundled_model.py checks (`syn2seq eval` on held-out takes 2^30 + 0..3, with their depth files and,
# for a model that runs without its cue, without them).
#
#   scripts/bundle_model.sh runs/synthetic_tiny_cue5/model.safetensors '{"eta": 1.0}'
#
# The optional second argument is the model's default sampling settings (safetensors metadata "sampling":
# steps, eta), what `syn2seq exo2ego`, eval and the ComfyUI sampler use when they are given none.
#
# The model's recipe (MODEL_CARD.md):
#   syn2seq train --config configs/synthetic_tiny_pretrain.toml --out runs/synthetic_tiny_pretrain
#   syn2seq train --config configs/synthetic_tiny.toml --out runs/synthetic_tiny --max-steps 5360
#   syn2seq train --config configs/synthetic_tiny_refine.toml --out runs/synthetic_tiny_refine
#   syn2seq train --config configs/synthetic_tiny_cue.toml --out runs/synthetic_tiny_cue --minutes 62
#   syn2seq train --config configs/synthetic_tiny_cue2.toml --out runs/synthetic_tiny_cue2 --minutes 35
#   syn2seq train --config configs/synthetic_tiny_cue3.toml --out runs/synthetic_tiny_cue3 --minutes 90
#   syn2seq train --config configs/synthetic_tiny_cue4.toml --out runs/synthetic_tiny_cue4 --minutes 85
#   syn2seq train --config configs/synthetic_tiny_cue5.toml --out runs/synthetic_tiny_cue5 --minutes 55  (+ 40)
# Run it from the repository root.
set -euo pipefail
MODEL=${1:?usage: scripts/bundle_model.sh MODEL.safetensors [SAMPLING_JSON]}
SAMPLING=${2:-}
PY=${PY:-.venv/bin/python}
ASSET=syn2seq_core/assets/models/syn2seq_synthetic_tiny.safetensors
RENDER=(--size 32 --supersample 2 --exo-frames 4 --ego-frames 4)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cp "$MODEL" "$ASSET.tmp"
if [ -n "$SAMPLING" ]; then
  "$PY" - "$ASSET.tmp" "$SAMPLING" <<'PY'
import json, sys

from safetensors import safe_open
from safetensors.torch import save_file

path, sampling = sys.argv[1], json.loads(sys.argv[2])
assert isinstance(sampling, dict) and set(sampling) <= {"steps", "eta"}, sampling
with safe_open(path, framework="pt") as f:
    meta, tensors = dict(f.metadata() or {}), {k: f.get_tensor(k) for k in f.keys()}
meta["sampling"] = json.dumps({**json.loads(meta.get("sampling", "{}")), **sampling})
save_file(tensors, path, metadata=meta)
PY
fi
mv "$ASSET.tmp" "$ASSET" && chmod 644 "$ASSET"
"$PY" -m syn2seq_core render-synthetic --out "$TMP/takes" --takes 4 --seed 1073741824 "${RENDER[@]}"
"$PY" -m syn2seq_core eval --takes "$TMP/takes" --steps 25 --seed 0 --mean --out "$TMP/eval.json"
# The same takes without their depth files (footage without depth), where the model runs without its cue.
if "$PY" -c "from syn2seq_core.generation.pipeline import load_model; raise SystemExit(not load_model().cue_optional)"; then
  "$PY" -m syn2seq_core render-synthetic --out "$TMP/plain" --takes 4 --seed 1073741824 "${RENDER[@]}" --no-depth
  "$PY" -m syn2seq_core eval --takes "$TMP/plain" --steps 25 --seed 0 --mean --out "$TMP/eval_no_depth.json"
fi
"$PY" - "$TMP/eval.json" "${ASSET%.safetensors}.eval_subset.json" "${RENDER[@]}" <<'PY'
import json, sys
from pathlib import Path

from syn2seq_core.io.atomic import write_text_atomic
from syn2seq_core.generation.pipeline import load_model

report, out, render = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]), sys.argv[3:]
summary = report["summary"]
record = {"takes": summary["takes"], "steps": report["steps"], "eta": report["eta"], "seed": report["seed"],
          "model_size": list(load_model().size),
          "seeds": f"2^30 + 0..{summary['takes'] - 1} (syn2seq render-synthetic --seed 1073741824 {' '.join(render)})",
          "render_args": render,
          "methods": {m: {"psnr": round(e["psnr"]["mean"], 4), "ssim": round(e["ssim"]["mean"], 5)}
                      for m, e in summary["methods"].items()}}
no_depth = Path(sys.argv[1]).with_name("eval_no_depth.json")
if no_depth.exists():  # the same takes without depth files (render-synthetic --no-depth)
    record["no_depth"] = {m: {"psnr": round(e["psnr"]["mean"], 4), "ssim": round(e["ssim"]["mean"], 5)}
                          for m, e in json.loads(no_depth.read_text())["summary"]["methods"].items()}
write_text_atomic(out, json.dumps(record, indent=2) + "\n")
print(f"recorded {out}")
PY
