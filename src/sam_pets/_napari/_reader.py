"""napari reader: a sam-pets dataset folder or a COCO JSON file, with an item browser.

Opening one (drag and drop, File > Open, ``viewer.open(path, plugin="sam-pets")``) shows its
first item as an image layer and a ``<item> labels`` layer (the Annotator's target for it)
and docks an item browser listing every item with its object count. Choosing an item shows
that one instead (the previous item's layers stay if their labels were edited). A corrected
item exported from the Annotator to the dataset folder replaces the same item: same name,
its metadata (species, breed, categories, ignore region, split) kept.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from napari.utils.notifications import show_warning
from qtpy.QtWidgets import QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from sam_pets.data.errors import BadInputError
from sam_pets.data.formats.manifest import MANIFEST
from sam_pets.data.sources import ItemSource, is_coco_file, open_items

META_KEY = "sam_pets"


def get_reader(path):
    """The reader hook: :func:`read_items` for a dataset folder or a COCO file, else None."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if p.is_dir() and (p / MANIFEST).is_file():
        return read_items
    if p.name == MANIFEST and p.is_file():
        return read_items
    if is_coco_file(p):
        return read_items
    return None


def item_layers(src: ItemSource, name: str) -> list[tuple]:
    """Layer data of item ``name``: its image and its ``<name> labels``."""
    it = src.load(name)
    meta = {META_KEY: {"kind": src.kind, "path": str(src.path), "item": name, "export": it.meta}}
    return [
        (it.image, {"name": name, "rgb": True, "metadata": meta}, "image"),
        (it.labels, {"name": f"{name} labels", "metadata": meta}, "labels"),
    ]


def read_items(path) -> list[tuple]:
    """The first item's layers; the item browser is docked in the current viewer."""
    path = path[0] if isinstance(path, (list, tuple)) else path
    src = open_items(path)
    layers = item_layers(src, src.names[0])
    import napari

    viewer = napari.current_viewer()
    if viewer is not None:
        browser = ItemBrowser(viewer, src, src.names[0], _digest(layers[1][0]))
        viewer.window.add_dock_widget(browser, name=f"Items: {Path(path).name}", area="right")
    return layers


def _digest(a: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(a).tobytes(), digest_size=16).hexdigest()


class ItemBrowser(QWidget):
    """The items of a dataset or COCO file; choosing one shows it for correcting."""

    def __init__(
        self, viewer, source: ItemSource, current: str | None = None, digest: str = ""
    ) -> None:
        super().__init__()
        self.viewer, self.source = viewer, source
        self.current = current
        self._loaded: dict[str, str] = {}  # item -> digest of its labels as loaded
        if current is not None:
            self._loaded[current] = digest  # the reader's layers, added after this widget
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"{source.kind}: {source.path}"))
        self.list = QListWidget()
        for name in source.names:
            item = QListWidgetItem(f"{name}  ({source.objects(name)} objects)")
            item.setData(256, name)  # Qt.UserRole
            self.list.addItem(item)
        if current in source.names:
            self.list.setCurrentRow(source.names.index(current))
        self.list.currentRowChanged.connect(self._on_row)
        layout.addWidget(self.list)

    def _on_row(self, row: int) -> None:
        if 0 <= row < len(self.source.names):
            self.show_item(self.source.names[row])

    def _layers_of(self, name: str) -> list:
        return [
            ly
            for ly in self.viewer.layers
            if ly.metadata.get(META_KEY, {}).get("item") == name
            and ly.metadata[META_KEY].get("path") == str(self.source.path)
        ]

    def _edited(self, name: str) -> bool:
        labels = [ly for ly in self._layers_of(name) if ly.name == f"{name} labels"]
        if not labels:
            return False
        digest = self._loaded.get(name)
        return bool(digest) and _digest(np.asarray(labels[0].data)) != digest

    def show_item(self, name: str) -> None:
        """Show item ``name``; the previous item's layers go unless their labels were edited."""
        if name == self.current and self._layers_of(name):
            return
        try:
            layers = item_layers(self.source, name)
        except (BadInputError, OSError, KeyError) as e:
            show_warning(f"sam-pets: cannot open item {name!r}: {e}")
            return
        old = self.current
        if old is not None and old != name:
            if self._edited(old):
                show_warning(f"sam-pets: {old!r} has unexported corrections; its layers stay open")
            else:
                for ly in self._layers_of(old):
                    self.viewer.layers.remove(ly)
        for ly in self._layers_of(name):  # shown again: fresh from the file
            self.viewer.layers.remove(ly)
        for data, kwargs, kind in layers:
            getattr(self.viewer, f"add_{kind}")(data, **kwargs)
        self.current = name
        self._remember(name)
        self._select(name)

    def _remember(self, name: str) -> None:
        labels = [ly for ly in self._layers_of(name) if ly.name == f"{name} labels"]
        self._loaded[name] = _digest(np.asarray(labels[0].data)) if labels else ""

    def _select(self, name: str) -> None:
        row = self.source.names.index(name)
        if self.list.currentRow() != row:
            self.list.blockSignals(True)
            self.list.setCurrentRow(row)
            self.list.blockSignals(False)
