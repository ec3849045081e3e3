"""Target Labels layers of the Annotator: which layer receives each image's objects.

Every image has its own target, kept by layer id (napari hands plugins proxies, a new object
per access), so switching images never mixes their objects.
"""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_warning

from sam_pets._napari import _layers as L


def layer_id(layer) -> str:
    """A layer's identity (napari hands plugins proxies: a new object per access)."""
    return str(getattr(layer, "unique_id", id(layer)))


class TargetsMixin:
    """Mixin of the Annotator: the image -> target Labels layer map and the Labels box."""

    def _find_layer(self, uid: str | None):
        for layer in self.viewer.layers:
            if uid is not None and layer_id(layer) == uid:
                return layer
        return None

    def _ensure_target(self, image: Image) -> Labels:
        """The image's target Labels layer, made if it has none (or its layer was deleted).

        See :meth:`_existing_target`; when that finds none, a new ``<image> labels`` layer.
        """
        target = self._existing_target(image)
        if target is None:
            # uint16 (65535 objects, then int32): napari colours it without hashing every pixel
            adding, self._adding_layers = self._adding_layers, True
            try:
                named = f"{image.name} labels"
                target = self.viewer.add_layer(L.make_labels(image, named, dtype=np.uint16))
            finally:
                self._adding_layers = adding
            self._targets[layer_id(image)] = layer_id(target)
            self._refresh_layer_choices()
        return target

    def _existing_target(self, image: Image) -> Labels | None:
        """The image's target Labels layer if there is one to use; nothing is made.

        An image's first target is the Labels layer chosen in the dock, else an existing
        ``<image> labels`` layer (e.g. from an earlier dock or a dataset opened by the
        reader), if it fits the image and serves no other image; it is adopted here. A
        deleted target is never replaced by another one of the user's (None).
        """
        uid = layer_id(image)
        target = self._find_layer(self._targets.get(uid))
        if isinstance(target, Labels):
            return target
        if uid in self._targets:
            return None
        taken = set(self._targets.values())
        named = f"{image.name} labels"
        candidates = [self._chosen_labels()]
        if named in self.viewer.layers:
            candidates.append(self.viewer.layers[named])
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
        self._targets[uid] = layer_id(usable[0])
        self._refresh_layer_choices()
        return usable[0]

    def _chosen_labels(self) -> Labels | None:
        name = self.labels_combo.currentText()
        layer = self.viewer.layers[name] if name in self.viewer.layers else None
        return layer if isinstance(layer, Labels) and not L.is_helper(layer) else None

    def _show_target(self) -> None:
        """Show the current image's target in the Labels box."""
        target = self.target_layer()
        combo = self.labels_combo
        combo.blockSignals(True)
        if target is not None:
            combo.setCurrentText(target.name)
        elif self._image_id in self._targets:
            combo.setCurrentIndex(-1)  # its target was deleted: a new one comes with a commit
        combo.blockSignals(False)

    def _on_target_chosen(self) -> None:
        """The user picked a Labels layer: it becomes the current image's target if it fits."""
        image, chosen = self._image_layer(), self._chosen_labels()
        if image is None or chosen is None:
            return
        if not L.fits(chosen, image):
            show_warning(
                f"sam-pets: {chosen.name!r} {L.spatial_shape_of(chosen)} does not fit "
                f"{image.name!r} {L.spatial_shape(image)}; keeping the current target"
            )
            self._show_target()
            return
        self._targets[layer_id(image)] = layer_id(chosen)

    def target_layer(self) -> Labels | None:
        """The Labels layer that receives the current image's committed objects."""
        image = self._image_layer()
        if image is None:
            return None
        layer = self._find_layer(self._targets.get(layer_id(image)))
        return layer if isinstance(layer, Labels) else None
