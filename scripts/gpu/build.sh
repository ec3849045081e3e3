#!/usr/bin/env bash
# Run on the GPU machine (the device tool), from the repository root, after
# scripts/gpu/prepare.sh here:
#
#   device run, carry [".gpu"], timeout_s 600:
#     bash scripts/gpu/build.sh 8 20000
#
# Trains the built-in model's recipe at GPU scale for MINUTES minutes of training (at most
# STEPS steps of batch 64) from .gpu/start.pt, then writes to $OUT: pets.pt (float16, the
# validation-best weights), metrics.jsonl and config.yaml of the run, and the log.
set -euo pipefail
minutes="${1:-8}"
steps="${2:-20000}"
here="$(cd "$(dirname "$0")/../.." && pwd)"
out="${OUT:-$here/.gpu/out}"
mkdir -p "$out" /tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$here"/.gpu/whl/*.whl
export PYTHONPATH="$here/src:/tmp/site" PYTHONUNBUFFERED=1
export SAM_PETS_CMD="python3 -m sam_pets" SAM_PETS_SHARED="$here/.gpu"
export SAM_PETS_MODEL_OUT="$out/pets.pt"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
set -o pipefail
bash "$here/scripts/build_pets_model.sh" --device cuda --from "$here/.gpu/start.pt" \
    --minutes "$minutes" /tmp/pets-build "$steps" 2>&1 | tee "$out/build.log"
cp /tmp/pets-build/run/metrics.jsonl /tmp/pets-build/run/config.yaml "$out/"
ls -la "$out"
