#!/usr/bin/env bash
# Rebuild the built-in pets model (src/sam_pets/weights/pets.pt) from scratch on Oxford-IIIT Pet.
#
#   bash scripts/build_pets_model.sh [WORKDIR] [STEPS] [FINAL_STEPS]
#
# Data: ../shared/data/oxford_pets_train (747 pairs) + the train part of a seeded, breed-
# stratified 75/25 split of ../shared/data/oxford_pets_dev (180 pairs); the other 60 dev
# pairs are the validation split, never trained on. Model: the `cpu_small` SAM 2 config at
# 256 px input, random init, trained with interactive prompts (box or click + 3 correction
# clicks), AdamW lr 8e-4, cosine over STEPS, batch 8; then resumed up to FINAL_STEPS (the
# schedule is stretched to the new total, as `sam-pets train --resume --steps` does). The
# validation-best checkpoint is stored in float16.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$HOME/sam-pets-build}"
steps="${2:-1600}"
final="${3:-$steps}"
shared="${SAM_PETS_SHARED:-$here/../shared}"
mkdir -p "$work"
sam-pets convert oxford-pets "$shared/data/oxford_pets_dev" "$work/dev" --val-fraction 0.25 --seed 0 -q
sam-pets convert oxford-pets "$shared/data/oxford_pets_train" "$work/train" --val-fraction 0 -q
sam-pets merge "$work/all" "$work/dev" "$work/train"
sam-pets train "$work/all" --config cpu_small --config-file "$here/scripts/pets_model.yaml" \
    --resolution 256 --steps "$steps" --batch-size 8 --threads "$(nproc)" --seed 0 \
    --val-every 200 --val-items 60 --out "$work/run" --quiet
if [ "$final" -gt "$steps" ]; then
    sam-pets train --resume "$work/run" --steps "$final" --threads "$(nproc)" --quiet
fi
python - "$work/run/best.pt" "$here/src/sam_pets/weights/pets.pt" <<'PY'
import sys

import torch

from sam_pets.model.checkpoint import load_model, read_checkpoint, save_checkpoint

src, dst = sys.argv[1:]
meta = read_checkpoint(src).metadata
save_checkpoint(load_model(src), dst, {"built_from": meta}, overwrite=True, dtype=torch.float16)
print("wrote", dst)
PY
