"""Aggregate per-object results: means per protocol and group, and the 3-category mean IoU.

**3-category mean IoU** (Oxford-IIIT Pet style, comparable with its 0.33 baseline): every
evaluated image is a 3-class label map, background (0), cat (1) and dog (2). The ground truth
labels the pet pixels (union of the image's objects) with the image's species and everything
else background; the prediction labels the predicted pet pixels with the same species (SAM is
class-agnostic: the prompt says which animal is meant) and the rest background. Ignored pixels
(trimap border) are left out. One 3x3 confusion matrix is accumulated over all images of the
dataset, the IoU of each class is ``C[j, j] / (sum_i C[i, j] + sum_i C[j, i] - C[j, j])``, and
the 3-category mIoU is the mean over the classes that occur (in the ground truth or the
prediction). Images without a known species ("cat"/"dog") do not take part.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

CLASSES = ("background", "cat", "dog")


def add_to_confusion(conf: np.ndarray, species: str | None, tp, fp, fn, tn) -> None:
    """Add one image's pet-vs-background pixel counts to a (3, 3) confusion (gt rows)."""
    if species not in ("cat", "dog"):
        return
    c = CLASSES.index(species)
    conf[c, c] += tp
    conf[0, c] += fp
    conf[c, 0] += fn
    conf[0, 0] += tn


def three_class_miou(conf: np.ndarray) -> dict | None:
    """Per-class IoU and their mean from a (3, 3) confusion; None if it is empty."""
    conf = np.asarray(conf, dtype=np.float64)
    if conf.sum() == 0:
        return None
    inter = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - inter
    present = union > 0
    per = {
        name: float(inter[j] / union[j]) if present[j] else None for j, name in enumerate(CLASSES)
    }
    return {"miou": float(np.mean(inter[present] / union[present])), "per_class": per}


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def group_means(rows: list[dict], key: str, metric: str = "iou") -> dict[str, dict]:
    """Mean ``metric`` and object count per value of ``key`` (rows with a None key skipped)."""
    groups: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.get(key) is not None:
            groups[r[key]].append(r[metric])
    return {
        g: {"miou" if metric == "iou" else metric: _mean(v), "n": len(v)}
        for g, v in sorted(groups.items())
    }


def summarize_protocol(rows: list[dict], conf: np.ndarray | None) -> dict:
    """Metrics of one (model, protocol): means over objects, groups, 3-category mIoU."""
    out = {
        "n_objects": len(rows),
        "miou": _mean(r["iou"] for r in rows),
        "mdice": _mean(r["dice"] for r in rows),
        "accuracy": _mean(r["accuracy"] for r in rows),
        "per_species": group_means(rows, "species"),
        "per_breed": group_means(rows, "breed"),
        "per_category": group_means(rows, "category"),
    }
    if conf is not None:
        out["three_class"] = three_class_miou(conf)
    return out


def summarize_clicks(rows: list[dict], max_clicks: int) -> dict:
    """mIoU@k curve, mean NoC@85/NoC@90, and the share of objects never reaching 85/90 %."""
    curves = np.array([r["ious"] for r in rows], dtype=np.float64).reshape(-1, max_clicks)
    return {
        "n_objects": len(rows),
        "miou_at_k": curves.mean(0).tolist() if len(rows) else [],
        "noc85": _mean(r["noc85"] for r in rows),
        "noc90": _mean(r["noc90"] for r in rows),
        "failed85": _mean(float(max(r["ious"]) < 0.85) for r in rows),
        "failed90": _mean(float(max(r["ious"]) < 0.90) for r in rows),
        "miou": _mean(r["iou"] for r in rows),
        "per_species": group_means(rows, "species"),
        "per_breed": group_means(rows, "breed"),
    }
