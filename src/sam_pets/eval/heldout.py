"""Held-out scoring of fine-tuned models: box, one click, and clicks to 85 / 90 % IoU.

Used by :class:`~sam_pets.train.finetune.FinetuneJob` for its before/after comparison.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Generator, Mapping
from dataclasses import dataclass

import numpy as np

from sam_pets.data.errors import BadItemError
from sam_pets.eval.interactive import clicks_to_iou, simulate_clicks
from sam_pets.eval.items import item_names, iter_items
from sam_pets.eval.metrics import iou
from sam_pets.eval.protocols import predict_object
from sam_pets.model import ImageFeatures, Sam2Image
from sam_pets.progress import Progress


@dataclass(frozen=True)
class HeldOutScores:
    """Quality of one model on the held-out annotations.

    Attributes:
        miou_box: Mean IoU with a tight box per object.
        miou_click: Mean IoU with one click at each object's most interior pixel.
        clicks_to_90: Mean number of clicks (first click + correction clicks, capped at
            ``max_clicks``) to reach 90 % IoU (NoC@90).
        objects: Objects scored.
        images: Images scored.
        held_out: False when there was no held-out image and the training images were used.
        clicks_to_85: As ``clicks_to_90`` for 85 % IoU (NoC@85).
        miou_5: Mean IoU after 5 interactions of the same click protocol.
    """

    miou_box: float
    miou_click: float
    clicks_to_90: float
    objects: int
    images: int
    held_out: bool = True
    clicks_to_85: float = float("nan")
    miou_5: float = float("nan")


def iter_compare(
    models: Mapping[str, Sam2Image],
    dataset: str | os.PathLike,
    split: str = "val",
    features: Mapping[str, ImageFeatures] | None = None,
    max_clicks: int = 20,
    device: str = "cpu",
    stop: threading.Event | None = None,
    zoom: bool | None = None,
    first_click_window: float = 0.0,
) -> Generator[Progress, None, dict[str, HeldOutScores]]:
    """Score each model on a split with box, one-click and click-to-90 % protocols.

    Each image is embedded once per distinct image encoder (models sharing an encoder, as
    before and after a decoder-only fine-tune, share the embedding); ``features`` from the
    annotator are used for the first model when given. Items that cannot be read are left
    out (a progress notice names each) and not counted in ``images``. ``zoom`` scores with
    zoom-in prediction on or off (None: each model's default,
    :func:`sam_pets.predict.zoom.default_for`); ``first_click_window`` is the predictors'
    (:class:`~sam_pets.predict.ImagePredictor`).
    """
    from sam_pets.model.fingerprint import encoder_fingerprint
    from sam_pets.predict import ImagePredictor
    from sam_pets.predict.zoom import default_for

    stop = stop or threading.Event()
    held_out = True
    try:
        names = item_names(dataset, split)
    except ValueError:  # no held-out split: score on what there is
        names, held_out = item_names(dataset, "all"), False
    preds = {
        k: ImagePredictor(
            m,
            device=device,
            precision="fp32",
            cache_size=1,
            zoom=default_for(m) if zoom is None else zoom,
            first_click_window=first_click_window,
        )
        for k, m in models.items()
    }
    enc = {k: encoder_fingerprint(m) for k, m in models.items()}
    first = next(iter(models))
    rows: dict[str, list[tuple[float, ...]]] = {k: [] for k in models}
    n_images = 0
    for i, item in enumerate(iter_items(dataset, names, yield_errors=True)):
        if stop.is_set():
            break
        if isinstance(item, BadItemError):
            notice = f"skipped item {item.item!r}: {item.reason}"
            yield Progress(i + 1, len(names), "scoring held-out images", notice=notice)
            continue
        n_images += 1
        done: dict[str, ImageFeatures] = {}  # encoder fingerprint -> this image's features
        for k, p in preds.items():
            hw = item.image.shape[:2]
            given = features.get(item.name) if features and k == first else None
            if enc[k] in done:
                p.set_features(done[enc[k]], hw, item.image)
            elif given is not None:
                p.set_features(given, hw, item.image)
                done[enc[k]] = given
            else:
                done[enc[k]] = p.set_image(item.image)
            for gt in item.masks:
                box = float(iou(predict_object(p, "box", gt, item.ignore), gt, item.ignore))
                # past 90 % IoU and 5 clicks, later clicks change no reported number
                ious = simulate_clicks(
                    p, gt, item.ignore, max_clicks=max_clicks, until=0.9, min_clicks=5
                )
                rows[k].append(
                    (
                        box,
                        ious[0],
                        clicks_to_iou(ious, 0.9, cap=max_clicks),
                        clicks_to_iou(ious, 0.85, cap=max_clicks),
                        ious[min(4, len(ious) - 1)],
                    )
                )
        yield Progress(i + 1, len(names), "scoring held-out images")
    out = {}
    for k, r in rows.items():
        a = np.asarray(r, np.float64).reshape(-1, 5)
        mean = a.mean(0) if len(a) else np.full(5, np.nan)
        out[k] = HeldOutScores(
            float(mean[0]),
            float(mean[1]),
            float(mean[2]),
            len(a),
            n_images,
            held_out,
            clicks_to_85=float(mean[3]),
            miou_5=float(mean[4]),
        )
    return out
