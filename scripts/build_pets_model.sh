#!/usr/bin/env bash
# Rebuild the built-in pets model (src/sam_pets/weights/pets.pt) on Oxford-IIIT Pet.
#
#   bash scripts/build_pets_model.sh [--device cpu|cuda] [--from CKPT|scratch] [--minutes M]
#                                    WORKDIR STEPS [FINAL_STEPS]
#
# Data: ../shared/data/oxford_pets_train (747 pairs) + the train part of a seeded, breed-
# stratified 75/25 split of ../shared/data/oxford_pets_dev (180 pairs); the other 60 dev
# pairs are the validation split, never trained on ($SAM_PETS_SHARED replaces ../shared).
#
# Recipe (scripts/pets_model.yaml): the `cpu_small` SAM 2 config at 256 px input, trained with
# interactive prompts (box 40 % or click, + 7 correction clicks, every round supervised); two in
# three samples are crops around the pet with a random margin per side (what zoom-in
# prediction sees), three in ten have the pet pasted onto another background (a strip of
# another photo beside its pet, or a facade photo of ../shared/data/coco_sample), plus flips,
# scale and colour jitter. AdamW, cosine schedule over STEPS; then resumed up to FINAL_STEPS
# (the schedule is stretched to the new total, as `sam-pets train --resume --steps` does).
# --from starts from a checkpoint (default: the built-in model; `scratch`: random init, lr
# 8e-4). The validation-best checkpoint is stored in float16 as src/sam_pets/weights/pets.pt.
#
# --device cuda runs the same recipe at GPU scale (batch 64, bf16, 12 loader workers) and
# stops after --minutes (default 8) of training, keeping what it has (Ctrl-C semantics: the
# run is saved and can be resumed). Prepare the GPU machine's inputs here first with
# `bash scripts/gpu/prepare.sh` (see that script), then run scripts/gpu/build.sh there.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
device=cpu
from="$here/src/sam_pets/weights/pets.pt"
minutes=8
while [[ $# -gt 0 && "$1" == --* ]]; do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --from) from="$2"; shift 2 ;;
        --minutes) minutes="$2"; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
work="${1:-$HOME/sam-pets-build}"
steps="${2:-4000}"
final="${3:-$steps}"
shared="${SAM_PETS_SHARED:-$here/../shared}"
# the command line; where the package is not installed: SAM_PETS_CMD="python3 -m sam_pets"
read -r -a sp <<< "${SAM_PETS_CMD:-sam-pets}"
mkdir -p "$work"
if [ ! -f "$work/all/dataset.json" ]; then
    "${sp[@]}" convert oxford-pets "$shared/data/oxford_pets_dev" "$work/dev" --val-fraction 0.25 --seed 0 -q
    "${sp[@]}" convert oxford-pets "$shared/data/oxford_pets_train" "$work/train" --val-fraction 0 -q
    "${sp[@]}" merge "$work/all" "$work/dev" "$work/train"
fi
start=(--checkpoint "$from")
lr=()  # scripts/pets_model.yaml's 3e-4 for batch 8, from a trained model
if [ "$from" = scratch ]; then
    start=(--config cpu_small)
    lr=(--lr 8e-4)
fi
if [ "$device" = cuda ]; then  # batch 64: lr scaled by about sqrt(8)
    lr=(--lr 8e-4)
    [ "$from" = scratch ] && lr=(--lr 2e-3)
fi
backgrounds=()
if [ -d "$shared/data/coco_sample/images" ]; then
    backgrounds=(--background "$shared/data/coco_sample/images")
fi
common=(--config-file "$here/scripts/pets_model.yaml" --resolution 256 --seed 0
        --val-every 250 --val-items 60 --out "$work/run" --quiet)
if [ "$device" = cuda ]; then
    # 64 images a step; bf16 autocast; the loader decodes and augments in 12 processes.
    # `timeout -s INT` is a Ctrl-C: the run saves its state, best.pt and last.pt, and stops.
    timeout -s INT "$((minutes * 60))" \
        "${sp[@]}" train "$work/all" "${start[@]}" "${lr[@]}" "${backgrounds[@]}" "${common[@]}" \
        --steps "$steps" --batch-size 64 --device cuda --precision bf16 --num-workers 12 \
        || { rc=$?; [ "$rc" -eq 124 ] || [ "$rc" -eq 130 ] || exit "$rc"; }
else
    "${sp[@]}" train "$work/all" "${start[@]}" "${lr[@]}" "${backgrounds[@]}" "${common[@]}" \
        --steps "$steps" --batch-size 8 --threads "$(nproc)"
    if [ "$final" -gt "$steps" ]; then
        "${sp[@]}" train --resume "$work/run" --steps "$final" --threads "$(nproc)" --quiet
    fi
fi
best="$work/run/best.pt"
[ -f "$best" ] || best="$work/run/last.pt"
out="${SAM_PETS_MODEL_OUT:-$here/src/sam_pets/weights/pets.pt}"
python - "$best" "$out" <<'PY'
import sys

import torch

from sam_pets.model.checkpoint import load_model, read_checkpoint, save_checkpoint

src, dst = sys.argv[1:]
meta = read_checkpoint(src).metadata
save_checkpoint(load_model(src), dst, {"built_from": meta}, overwrite=True, dtype=torch.float16)
print("wrote", dst)
PY
