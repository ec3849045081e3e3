"""Export of annotated images from napari layers into a canonical dataset (runs in a worker)."""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels

from sam_pets._napari import _layers as L


def export_items(image: Image, target: Labels) -> list[tuple]:
    """(name, pixels, labels, source) for every annotated plane of an image."""
    shape = L.spatial_shape(image)
    source = str(image.source.path) if getattr(image.source, "path", None) else None
    data = np.asarray(target.data)
    if len(shape) == 2:
        return [(image.name, L.plane_data(image, ()), data, source)] if data.any() else []
    items = []
    for plane in np.ndindex(*shape[:-2]):
        lab = data[plane]
        if lab.any():
            suffix = "_".join(f"{p:04d}" for p in plane)
            items.append((f"{image.name}_z{suffix}", L.plane_data(image, plane), lab, source))
    return items


def export_job(folder: str, items: list[tuple], coco: bool):
    """Export ``items`` one by one; returns one line per item (``skipped …`` for a refusal)."""
    from sam_pets.data.export import NameTaken, export_annotation

    report = []
    for i, (name, pixels, labels, source) in enumerate(items):
        meta = {"source": source} if source else {}
        try:
            res = export_annotation(
                folder, pixels, labels, name, meta, write_coco=coco and i == len(items) - 1
            )
            n = len(res.record.get("objects", []))
            verb = "replaced" if res.replaced else "added"
            report.append(f"{verb} {res.name} ({n} objects)")
        except NameTaken as e:
            report.append(
                f"skipped {name}: the dataset already has {e.name!r} from another image "
                f"({e.source}); rename the image layer or choose another folder"
            )
        except (ValueError, FileExistsError, OSError) as e:
            report.append(f"skipped {name}: {e}")
    return report
