#!/usr/bin/env bash
# Install sam-pets for development and testing on a fresh Debian/Ubuntu machine.
#   - system libraries for Qt under Xvfb (headless GUI tests), when apt-get is available
#   - sam-pets (editable) with PyQt5 and the test tools
#   - Meta's reference sam2 (test oracle / benchmark baseline only; needs torch first)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends \
    xvfb xauth libgl1 libegl1 libdbus-1-3 libfontconfig1 libxkbcommon-x11-0 \
    libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 \
    libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 >/dev/null
fi

"$PY" -m pip install -q --upgrade pip setuptools wheel
"$PY" -m pip install -q -e ".[test,pyqt5]"
SAM2_BUILD_CUDA=0 "$PY" -m pip install -q --no-build-isolation "sam2==1.1.0"
"$PY" -c "import sam_pets, torch, torchvision, napari, sam2; print('sam-pets', sam_pets.__version__, 'torch', torch.__version__, 'napari', napari.__version__)"
