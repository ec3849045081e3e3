"""sam-pets: human-in-the-loop segmentation with SAM 2 in napari.

Importing this package is cheap: it pulls in neither torch, Qt nor napari.
"""

__version__ = "0.1.0"
