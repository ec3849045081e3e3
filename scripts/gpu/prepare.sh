#!/usr/bin/env bash
# Prepare, on this machine, what the GPU machine needs to rebuild the built-in model:
#   .gpu/data/oxford_pets_{dev,train}  the Oxford pairs, shrunk to a longer side of 400 px, JPEG quality 85
#                                      (the recipe trains at 256 px; the working tree that
#                                      travels is capped at 64 MiB)
#   .gpu/data/coco_sample/images       the facade photos (copy-paste backgrounds), shrunk too
#   .gpu/whl/                          pycocotools for the GPU machine's Python 3.12
#   .gpu/start.pt                      the start checkpoint (default: the built-in model)
# .gpu/ is git-ignored; name it in the device tool's `carry`, then run scripts/gpu/build.sh
# there (see that script for the exact call).
#
#   bash scripts/gpu/prepare.sh [START_CHECKPOINT]
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
shared="${SAM_PETS_SHARED:-$here/../shared}"
dst="$here/.gpu"
rm -rf "$dst"
mkdir -p "$dst/data" "$dst/whl"
python3 - "$shared/data" "$dst/data" <<'PY'
import shutil
import sys
from pathlib import Path

from PIL import Image

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
MAX = 400


def shrink(path: Path, out: Path, nearest: bool) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(path) as im:
        w, h = im.size
        s = min(1.0, MAX / max(w, h))
        if s < 1.0:
            size = (max(1, round(w * s)), max(1, round(h * s)))
            im = im.resize(size, Image.NEAREST if nearest else Image.LANCZOS)
        if out.suffix.lower() in (".jpg", ".jpeg"):
            im.convert("RGB").save(out, quality=85)
        else:
            im.save(out)


for name in ("oxford_pets_dev", "oxford_pets_train"):
    for sub, nearest in (("images", False), ("trimaps", True)):
        for f in sorted((src / name / sub).iterdir()):
            shrink(f, dst / name / sub / f.name, nearest)
    for f in ("list.txt", "README.md"):
        if (src / name / f).exists():
            shutil.copy(src / name / f, dst / name / f)
for f in sorted((src / "coco_sample" / "images").iterdir()):
    shrink(f, dst / "coco_sample" / "images" / f.name, False)
print("data ready:", dst)
PY
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$dst/whl" "pycocotools==2.0.10" || python3 -m pip download -q --no-deps \
    --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 -d "$dst/whl" pycocotools
cp "${1:-$here/src/sam_pets/weights/pets.pt}" "$dst/start.pt"
du -sh "$dst"
