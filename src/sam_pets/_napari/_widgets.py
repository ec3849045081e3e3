"""Pieces shared by the sam-pets docks: folder pickers and worker callbacks that outlive them."""

from __future__ import annotations

from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QLineEdit, QPushButton, QVBoxLayout, QWidget


class DockHelpers:
    """Mixin for dock widgets; the dock sets ``_dead = True`` when it is destroyed."""

    _dead = False

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
        button.clicked.connect(lambda: self._pick_folder(edit, title))
        row.addWidget(edit)
        row.addWidget(button)
        return row

    def _pick_folder(self, edit: QLineEdit, title: str) -> None:
        path = QFileDialog.getExistingDirectory(self, title)
        if path:
            edit.setText(path)
