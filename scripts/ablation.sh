#!/usr/bin/env bash
# The central ablation of MODEL_CARD.md: four Syn2Seq finetune variants from one pretrain run, equal budget,
# evaluated on 64 held-out takes at equal wall time and at equal steps, compared per take with paired CIs.
#
#   scripts/ablation.sh [MINUTES] [SET]  (default 40 minutes of wall time, all four variants at once)
#
# SET "shared" (default): the configs below, the stage-2 recipe. SET "full_noise": the same four with stage 3's
# full_noise_prob = 0.3 (configs/ablation_full_noise/), into runs/ablation_full_noise*.
#
#   (a) direct exo -> ego, no transition          configs/ablation/ablation_a_direct.toml
#   (b) flow transition frames, no SLERP cameras  configs/ablation/ablation_b_video_only.toml
#   (c) flow transition frames + SLERP cameras    configs/synthetic_tiny.toml (the bundled model's stage 2)
#   (d) ideal rendered transition + SLERP cameras configs/ablation/ablation_d_ideal.toml
#
# The four variants train at the same time, one thread each, so that all see the same machine and the same
# contention; each is stopped after MINUTES of wall time and its EMA model copied to
# runs/ablation/<variant>.safetensors (equal wall time).
# Equal steps: the largest snapshot step (configs: snapshot_every) that every variant reached. Resumable:
# training resumes from its checkpoint, finished steps are skipped. Run it from the repository root.
set -euo pipefail
MINUTES=${1:-40}
PY=${PY:-.venv/bin/python}
S2S=("$PY" -m syn2seq_core)
export OMP_NUM_THREADS=1
HELDOUT=runs/heldout32
OUT=runs/ablation
SET=${2:-shared}
case "$SET" in
shared)
    declare -A CONFIG=([a_direct]=configs/ablation/ablation_a_direct.toml
                       [b_video_only]=configs/ablation/ablation_b_video_only.toml
                       [c_syn2seq]=configs/synthetic_tiny.toml
                       [d_ideal]=configs/ablation/ablation_d_ideal.toml)
    declare -A RUN=([a_direct]=runs/ablation_a_direct [b_video_only]=runs/ablation_b_video_only
                    [c_syn2seq]=runs/synthetic_tiny [d_ideal]=runs/ablation_d_ideal) ;;
full_noise)
    OUT=runs/ablation_full_noise
    declare -A CONFIG RUN
    for v in a_direct b_video_only c_syn2seq d_ideal; do
        CONFIG[$v]=configs/ablation_full_noise/$v.toml
        RUN[$v]=runs/ablation_full_noise_$v
    done ;;
*) echo "SET: expected 'shared' or 'full_noise', got '$SET'" >&2; exit 2 ;;
esac
mkdir -p "$OUT"

# 1. Pretrain (shared by all variants; its config's max_steps ends it).
"${S2S[@]}" train --config configs/synthetic_tiny_pretrain.toml --out runs/synthetic_tiny_pretrain --no-progress

# 2. Variants, all four at once, MINUTES each.
train_variant() {
    local v=$1
    [[ -f "$OUT/$v.safetensors" ]] && return 0
    "${S2S[@]}" train --config "${CONFIG[$v]}" --out "${RUN[$v]}" --minutes "$MINUTES" --no-progress \
        > "$OUT/$v.train.log" 2>&1
    cp "${RUN[$v]}/model.safetensors" "$OUT/$v.safetensors"
}
for v in a_direct b_video_only c_syn2seq d_ideal; do train_variant "$v" & done
wait

# 3. Held-out takes: seeds 2^30 + 0..63, never drawn in training; the variants' frame layout.
[[ -d "$HELDOUT" ]] || "${S2S[@]}" render-synthetic --out "$HELDOUT" --takes 64 --seed 1073741824 --size 32 \
    --supersample 2 --exo-frames 4 --ego-frames 4

# 4. Eval at equal wall time (the copies above) and at equal steps (common snapshot).
step=$("$PY" - "${RUN[@]}" <<'PY'
import re, sys
from pathlib import Path
common = None
for run in sys.argv[1:]:
    steps = {int(re.findall(r"\d+", p.stem)[0]) for p in Path(run, "snapshots").glob("model_step*.safetensors")}
    common = steps if common is None else common & steps
print(max(common))
PY
)
echo "equal steps: $step"
for v in a_direct b_video_only c_syn2seq d_ideal; do
    snap=$(printf '%s/snapshots/model_step%06d.safetensors' "${RUN[$v]}" "$step")
    [[ -f "$OUT/$v.time.json" ]] || "${S2S[@]}" eval --takes "$HELDOUT" --model "$OUT/$v.safetensors" --steps 25 \
        --seed 0 --mean --out "$OUT/$v.time.json"
    [[ -f "$OUT/$v.steps.json" ]] || "${S2S[@]}" eval --takes "$HELDOUT" --model "$snap" --steps 25 --seed 0 \
        --mean --out "$OUT/$v.steps.json"
done

# 5. Paired comparisons against (c), for samples and for the conditional mean.
for budget in time steps; do
    for method in sample mean; do
        "${S2S[@]}" compare --reference c_syn2seq --method "$method" --out "$OUT/compare_${budget}_${method}.json" \
            $(for v in a_direct b_video_only c_syn2seq d_ideal; do echo "$v=$OUT/$v.$budget.json"; done)
    done
done
