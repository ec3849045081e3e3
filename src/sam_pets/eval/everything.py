"""Scoring the automatic mask generator ("segment everything") against ground-truth instances.

Two views of the same proposals:

- **COCO mask AP** (pycocotools ``COCOeval``, ``iouType="segm"``, one class, proposals scored
  by their predicted IoU): AP, AP50, AP75 over all images, and AR with up to
  :data:`MAX_DETS` proposals per image (the generator returns far more than COCO's 100);
- **best IoU per object**: for each ground-truth object the IoU of the proposal that fits it
  best (pixels of the item's ignore region left out), its mean, and the share of objects
  found at IoU 0.5 and 0.75; plus the number of proposals per image.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sam_pets.predict.everything import AutoMask

MAX_DETS = 1000


def best_ious(
    proposals: Sequence[AutoMask], gts: np.ndarray, ignore: np.ndarray | None = None
) -> np.ndarray:
    """For each (H, W) object of ``gts`` (K, H, W), the best IoU of any proposal (0 if none)."""
    out = np.zeros(len(gts))
    for k, gt in enumerate(gts):
        valid = gt if ignore is None else gt & ~ignore
        g_area = int(np.count_nonzero(valid))
        if not g_area:
            continue
        rows, cols = np.flatnonzero(valid.any(1)), np.flatnonzero(valid.any(0))
        gy0, gy1, gx0, gx1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        for m in proposals:
            x0, y0, x1, y1 = m.window
            if x0 >= gx1 or x1 <= gx0 or y0 >= gy1 or y1 <= gy0 or m.area == 0:
                continue
            part = valid[y0:y1, x0:x1]
            inter = int(np.count_nonzero(part & m.mask))
            if not inter:
                continue
            p_area = m.area
            if ignore is not None:
                p_area -= int(np.count_nonzero(ignore[y0:y1, x0:x1] & m.mask))
            out[k] = max(out[k], inter / (g_area + p_area - inter))
    return out


@dataclass
class EverythingScores:
    """Ground truth and proposals of every image, for COCO AP; plus best IoUs per object."""

    images: list[dict] = field(default_factory=list)
    gt: list[dict] = field(default_factory=list)
    dt: list[dict] = field(default_factory=list)
    best: list[float] = field(default_factory=list)
    proposals: list[int] = field(default_factory=list)

    def add(
        self,
        proposals: Sequence[AutoMask],
        gts: np.ndarray,
        ignore: np.ndarray | None = None,
        hw: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """Add one image; returns the best IoU of each of its objects.

        ``hw`` is the image's size (needed when ``gts`` holds no object: the proposals of an
        image without objects count as false positives).
        """
        from pycocotools import mask as mask_utils

        gts = np.asarray(gts, dtype=bool)
        if hw is None:
            if not len(gts):
                raise ValueError("give hw for an image without objects")
            hw = gts.shape[1:]
        hw = (int(hw[0]), int(hw[1]))
        gts = gts.reshape(-1, *hw)
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "height": int(hw[0]), "width": int(hw[1])})
        for gt in gts:
            if not gt.any():
                continue
            rle = mask_utils.encode(np.asfortranarray(gt.astype(np.uint8)))
            self.gt.append(
                {
                    "id": len(self.gt) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "segmentation": rle,
                    "area": float(mask_utils.area(rle)),
                    "bbox": list(map(float, mask_utils.toBbox(rle))),
                    "iscrowd": 0,
                }
            )
        if ignore is not None and ignore.any():  # COCO's way of not counting a region
            rle = mask_utils.encode(np.asfortranarray(ignore.astype(np.uint8)))
            self.gt.append(
                {
                    "id": len(self.gt) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "segmentation": rle,
                    "area": float(mask_utils.area(rle)),
                    "bbox": list(map(float, mask_utils.toBbox(rle))),
                    "iscrowd": 1,
                }
            )
        for m in proposals:
            if m.area == 0:
                continue
            rle = mask_utils.encode(np.asfortranarray(m.full(hw).astype(np.uint8)))
            self.dt.append(
                {
                    "id": len(self.dt) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "segmentation": rle,
                    "score": float(m.predicted_iou),
                }
            )
        best = best_ious(proposals, gts, ignore)
        self.best += [float(b) for b, g in zip(best, gts, strict=True) if g.any()]
        self.proposals.append(len(proposals))
        return best

    def summary(self) -> dict:
        """AP, AP50, AP75, AR, best-IoU statistics and proposals per image."""
        best = np.asarray(self.best, dtype=np.float64)
        out = {
            "n_objects": len(best),
            "n_images": len(self.images),
            "best_iou_mean": float(best.mean()) if len(best) else None,
            "found50": float((best >= 0.5).mean()) if len(best) else None,
            "found75": float((best >= 0.75).mean()) if len(best) else None,
            "proposals_per_image": float(np.mean(self.proposals)) if self.proposals else None,
        }
        out.update(self.coco_metrics())
        return out

    def coco_metrics(self) -> dict:
        """COCO mask AP/AP50/AP75 and AR@:data:`MAX_DETS` (None without ground truth)."""
        none = {"ap": None, "ap50": None, "ap75": None, "ar": None}
        if not any(g["iscrowd"] == 0 for g in self.gt):
            return none
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it goes
            gt = COCO()
            gt.dataset = {
                "images": self.images,
                "annotations": self.gt,
                "categories": [{"id": 1, "name": "object"}],
            }
            gt.createIndex()
            if not self.dt:
                return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0, "ar": 0.0}
            dt = gt.loadRes([dict(d) for d in self.dt])
            ev = COCOeval(gt, dt, iouType="segm")
            ev.params.maxDets = [1, 10, MAX_DETS]
            ev.evaluate()
            ev.accumulate()
        # COCOeval.summarize() reads AP at 100 detections only: read the tables at MAX_DETS
        prec = ev.eval["precision"][:, :, 0, 0, -1]  # (IoU thresholds, recall points)
        rec = ev.eval["recall"][:, 0, 0, -1]  # (IoU thresholds,)
        thr = list(np.round(ev.params.iouThrs, 2))
        return {
            "ap": _mean_valid(prec),
            "ap50": _mean_valid(prec[thr.index(0.5)]),
            "ap75": _mean_valid(prec[thr.index(0.75)]),
            "ar": _mean_valid(rec),
        }


def _mean_valid(a: np.ndarray) -> float | None:
    """Mean of a COCOeval table's entries, leaving out its -1 (nothing to score) cells."""
    a = np.asarray(a, dtype=np.float64)
    a = a[a > -1]
    return float(a.mean()) if a.size else None
