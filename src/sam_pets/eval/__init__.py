"""Evaluation: segmentation metrics (pure numpy/torch, no Qt or napari).

- :mod:`sam_pets.eval.metrics`: IoU, Dice and pixel accuracy with an ignore mask.
"""
