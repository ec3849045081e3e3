"""napari integration (private): widgets, readers, writers and sample data.

The only sam_pets package allowed to import napari, Qt (through qtpy) or magicgui. It is reached
through the ``napari.yaml`` manifest, never imported by the core.
"""

import sys

# Mesa's software OpenGL (llvmpipe: Xvfb, VMs, many laptops) and Triton each carry their own
# LLVM. Once napari has created its OpenGL canvas, importing Triton (which torch and
# torchvision pull in lazily through torch._dynamo) crashes the process with a segfault.
# The napari process never needs Triton (it only generates CUDA kernels for torch.compile),
# so hide it from torch here unless it was imported before the GL driver was loaded.
sys.modules.setdefault("triton", None)
