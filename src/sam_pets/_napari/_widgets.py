"""Pieces shared by the sam-pets docks: folder pickers and worker callbacks that outlive them."""

from __future__ import annotations

import weakref

from qtpy.QtCore import QEvent
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QLineEdit, QPushButton, QVBoxLayout, QWidget


def weak_slot(owner, method: str, *args, **kwargs):
    """A slot calling ``owner.method(*args, **kwargs)`` that does not keep ``owner`` alive.

    Qt holds a connected lambda for as long as its sender lives, and the sender (a button of
    the dock) lives as long as the dock: a lambda that captures the dock keeps it, its viewer
    and every layer of it alive after the viewer has closed.  Signal arguments are dropped.
    """
    ref = weakref.ref(owner)

    def slot(*_):
        obj = ref()
        if obj is not None:
            getattr(obj, method)(*args, **kwargs)

    return slot


class DockHelpers:
    """Mixin for dock widgets; the dock sets ``_dead = True`` when it is destroyed."""

    _dead = False
    _docked = False

    def event(self, ev) -> bool:
        """Call :meth:`_on_undocked` when napari closes the dock (the widget loses its parent).

        napari's close button takes the widget out of its dock and drops it: the widget is not
        destroyed then (``destroyed`` may never come), so a job it started would go on unseen.
        """
        if ev.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked = True
            elif self._docked and not self._dead:
                self._on_undocked()
        return super().event(ev)

    def _on_undocked(self) -> None:
        """The dock was closed: stop what it started (subclasses)."""

    def _alive(self, fn):
        """Wrap a worker callback so it does nothing once the dock has been closed.

        Qt may delete a dock's children before its ``destroyed`` signal arrives (the viewer
        closing with a worker still running); a call that meets a deleted object is dropped.
        """

        def call(*args):
            if self._dead:
                return
            try:
                fn(*args)
            except RuntimeError as e:
                if "has been deleted" not in str(e):
                    raise
                self._dead = True

        return call

    def _stack(self, *sections: QWidget) -> None:
        """Lay the dock's sections out top to bottom, with the free space below them."""
        root = QVBoxLayout(self)
        for section in sections:
            root.addWidget(section)
        root.addStretch(1)

    def _folder_row(self, edit: QLineEdit, title: str) -> QHBoxLayout:
        """``edit`` with a "…" button that fills it from a folder dialog titled ``title``."""
        row = QHBoxLayout()
        button = QPushButton("…")
        button.setToolTip(title)
        button.clicked.connect(weak_slot(self, "_pick_folder", edit, title))
        row.addWidget(edit)
        row.addWidget(button)
        return row

    def _pick_folder(self, edit: QLineEdit, title: str) -> None:
        path = QFileDialog.getExistingDirectory(self, title)
        if path:
            edit.setText(path)
