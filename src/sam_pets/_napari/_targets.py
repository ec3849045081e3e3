"""Target Labels layers of the Annotator: which layer receives each image's objects.

Every image has its own target, kept by layer id (napari hands plugins proxies, a new object
per access), so switching images never mixes their objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_warning

from sam_pets._napari import _layers as L

if TYPE_CHECKING:
    from sam_pets._napari._annotator import AnnotatorWidget


def layer_id(layer) -> str:
    """A layer's identity (napari hands plugins proxies: a new object per access)."""
    return str(getattr(layer, "unique_id", id(layer)))


def find_layer(viewer, uid: str | None):
    """The layer of ``viewer`` with the identity ``uid`` (see :func:`layer_id`), or None."""
    for layer in viewer.layers:
        if uid is not None and layer_id(layer) == uid:
            return layer
    return None


class TargetLayers:
    """The image -> target Labels layer map of an Annotator dock, and its Labels box.

    It also keeps :attr:`annotated`: image id -> (image, target) of every image that got
    objects in this dock (what is exported and fine-tuned on).

    Args:
        dock: The Annotator dock; its viewer, current image, Labels box and layer choices.
    """

    def __init__(self, dock: AnnotatorWidget) -> None:
        self._dock = dock
        self._targets: dict[str, str] = {}  # image id -> id of its target Labels layer
        self.annotated: dict[str, tuple[Image, Labels]] = {}

    def mark_annotated(self, image: Image, target: Labels) -> None:
        """``image`` got objects in ``target`` (by commit, restore or segment everything)."""
        self.annotated[layer_id(image)] = (image, target)

    def assign(self, image: Image, target: Labels) -> None:
        """Make ``target`` the Labels layer that receives ``image``'s objects."""
        self._targets[layer_id(image)] = layer_id(target)

    def ensure(self, image: Image) -> Labels:
        """The image's target Labels layer, made if it has none (or its layer was deleted).

        See :meth:`existing`; when that finds none, a new ``<image> labels`` layer.
        """
        target = self.existing(image)
        if target is None:
            dock = self._dock
            # uint16 (65535 objects, then int32): napari colours it without hashing every pixel
            with dock.adding_layers():
                named = f"{image.name} labels"
                target = dock.viewer.add_layer(L.make_labels(image, named, dtype=np.uint16))
            self.assign(image, target)
            dock.refresh_layer_choices()
        return target

    def existing(self, image: Image) -> Labels | None:
        """The image's target Labels layer if there is one to use; nothing is made.

        An image's first target is the Labels layer chosen in the dock, else an existing
        ``<image> labels`` layer (e.g. from an earlier dock or a dataset opened by the
        reader), if it fits the image and serves no other image; it is adopted here. A
        deleted target is never replaced by another one of the user's (None).
        """
        viewer = self._dock.viewer
        uid = layer_id(image)
        target = find_layer(viewer, self._targets.get(uid))
        if isinstance(target, Labels):
            return target
        if uid in self._targets:
            return None
        taken = set(self._targets.values())
        named = f"{image.name} labels"
        candidates = [self._chosen_labels()]
        if named in viewer.layers:
            candidates.append(viewer.layers[named])
        usable = [
            c
            for c in candidates
            if isinstance(c, Labels)
            and not L.is_helper(c)
            and layer_id(c) not in taken
            and L.fits(c, image)
        ]
        if not usable:
            return None
        self.assign(image, usable[0])
        self._dock.refresh_layer_choices()
        return usable[0]

    def _chosen_labels(self) -> Labels | None:
        layers = self._dock.viewer.layers
        name = self._dock.ui.labels_combo.currentText()
        layer = layers[name] if name in layers else None
        return layer if isinstance(layer, Labels) and not L.is_helper(layer) else None

    def show(self) -> None:
        """Show the current image's target in the Labels box."""
        target = self.current()
        combo = self._dock.ui.labels_combo
        combo.blockSignals(True)
        if target is not None:
            combo.setCurrentText(target.name)
        elif self._dock.image_id in self._targets:
            combo.setCurrentIndex(-1)  # its target was deleted: a new one comes with a commit
        combo.blockSignals(False)

    def on_chosen(self) -> None:
        """The user picked a Labels layer: it becomes the current image's target if it fits."""
        image, chosen = self._dock.image_layer(), self._chosen_labels()
        if image is None or chosen is None:
            return
        if not L.fits(chosen, image):
            show_warning(
                f"sam-pets: {chosen.name!r} {L.spatial_shape_of(chosen)} does not fit "
                f"{image.name!r} {L.spatial_shape(image)}; keeping the current target"
            )
            self.show()
            return
        self.assign(image, chosen)

    def current(self) -> Labels | None:
        """The Labels layer that receives the current image's committed objects."""
        image = self._dock.image_layer()
        if image is None:
            return None
        layer = find_layer(self._dock.viewer, self._targets.get(layer_id(image)))
        return layer if isinstance(layer, Labels) else None
