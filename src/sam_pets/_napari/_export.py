"""Export of annotated images from napari layers into a canonical dataset (runs in a worker)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_info, show_warning

from sam_pets._napari import _layers as L
from sam_pets._napari._workers import function_worker

if TYPE_CHECKING:
    from sam_pets._napari._annotator import AnnotatorWidget


def export_items(image: Image, target: Labels) -> list[tuple]:
    """(name, pixels, labels, metadata) for every annotated plane of an image.

    The labels are copies: objects committed while an export waits or runs belong to the next.
    The metadata has the image's ``source`` file; for an item opened from a dataset or COCO
    file (see ``_reader``), also what its re-export keeps (species, breed, categories,
    ignore region, split).
    """
    shape = L.spatial_shape(image)
    source = str(image.source.path) if getattr(image.source, "path", None) else None
    data = np.asarray(target.data)
    meta = {"source": source} if source else {}
    if len(shape) == 2:
        opened = image.metadata.get("sam_pets", {})
        if opened.get("item") == image.name:
            meta.update(opened.get("export", {}))
        return [(image.name, L.plane_data(image, ()), data.copy(), meta)] if data.any() else []
    items = []
    for plane in np.ndindex(*shape[:-2]):
        lab = data[plane]
        if lab.any():
            suffix = "_".join(f"{p:04d}" for p in plane)
            items.append(
                (f"{image.name}_z{suffix}", L.plane_data(image, plane), lab.copy(), dict(meta))
            )
    return items


def export_job(folder: str, items: list[tuple], coco: bool, exported: list | None = None):
    """Export ``items`` one by one; returns one line per item (``skipped …`` for a refusal).

    ``exported`` (if given) receives ``(journal key, labels)`` of each item written.
    """
    from sam_pets.data.export import NameTaken, export_annotation
    from sam_pets.data.fsutil import image_key

    report = []
    for i, (name, pixels, labels, meta) in enumerate(items):
        try:
            res = export_annotation(
                folder, pixels, labels, name, meta, write_coco=coco and i == len(items) - 1
            )
            n = len(res.record.get("objects", []))
            verb = "replaced" if res.replaced else "added"
            report.append(f"{verb} {res.name} ({n} objects)")
            if exported is not None:
                exported.append((image_key(pixels), labels))
        except NameTaken as e:
            report.append(
                f"skipped {name}: the dataset already has {e.name!r} from another image "
                f"({e.source}); rename the image layer or choose another folder"
            )
        except (ValueError, FileExistsError, OSError) as e:
            report.append(f"skipped {name}: {e}")
    return report


class Exporter:
    """The Annotator's Export section: annotated images into a dataset folder.

    Args:
        dock: The Annotator dock; its Export controls, current image, targets and journal.
    """

    def __init__(self, dock: AnnotatorWidget) -> None:
        self._dock = dock

    def suggest_folder(self, image: Image | None) -> None:
        """An item opened from a dataset folder is exported back there unless told otherwise."""
        opened = {} if image is None else image.metadata.get("sam_pets", {})
        folder = self._dock.ui.export_dir
        if opened.get("kind") == "dataset" and not folder.text().strip():
            folder.setText(opened["path"])

    def export(self, all_images: bool = False) -> None:
        """Export the current (or every annotated) image + labels to the dataset folder."""
        dock, ui = self._dock, self._dock.ui
        folder = ui.export_dir.text().strip()
        if not folder:
            show_warning("sam-pets: choose a dataset folder first")
            return
        image = dock.image_layer()
        # the current image's target: its own, else its "<image> labels" layer (an item
        # opened from a dataset before any model was loaded); none is made for an export
        target = dock.targets.existing(image) if image is not None else None
        pairs = list(dock.targets.annotated.values()) if all_images else [(image, target)]
        items = [
            it for i, t in pairs if i is not None and t is not None for it in export_items(i, t)
        ]
        if not items:
            show_warning("sam-pets: no annotated image to export")
            return
        done: list = []
        worker = function_worker(
            export_job,
            folder,
            items,
            ui.coco_check.isChecked(),
            done,
            _progress={"desc": "Exporting"},  # one call, no steps to count
        )
        worker.returned.connect(dock.life.alive(lambda report: self._on_exported(report, done)))
        worker.errored.connect(dock.life.alive(lambda e: dock.fail("Export failed", e)))
        dock.start(worker, in_order=True)

    def _on_exported(self, report: list[str], exported=()) -> None:
        self._dock.journal.exported(exported)  # saved in the dataset: the journal's job is done
        self._dock.ui.export_status.setText("\n".join(report))
        skipped = [line for line in report if line.startswith("skipped")]
        (show_warning if skipped else show_info)("sam-pets: " + "; ".join(skipped or report))
