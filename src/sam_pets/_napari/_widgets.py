"""Pieces shared by the sam-pets docks: folder pickers, worker callbacks that outlive them."""

from __future__ import annotations

import weakref

from qtpy.QtCore import QEvent, QObject, Signal
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


class DockLifetime(QObject):
    """Whether a dock is still open, for the callbacks of the jobs it started.

    The dock holds it as ``life`` and sets :attr:`closed` when it is destroyed.

    Signals:
        undocked(): napari closed the dock (the widget lost its parent).
    """

    undocked = Signal()

    def __init__(self, dock: QWidget) -> None:
        super().__init__(dock)
        self.closed = False
        self._docked = False
        dock.installEventFilter(self)

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 (Qt name)
        """Emit :attr:`undocked` when napari closes the dock (the widget loses its parent).

        napari's close button takes the widget out of its dock and drops it: the widget is not
        destroyed then (``destroyed`` may never come), so a job it started would go on unseen.
        """
        if ev.type() == QEvent.Type.ParentChange:
            if obj.parent() is not None:
                self._docked = True
            elif self._docked and not self.closed:
                self.undocked.emit()
        return False

    def alive(self, fn):
        """Wrap a worker callback so it does nothing once the dock has been closed.

        Qt may delete a dock's children before its ``destroyed`` signal arrives (the viewer
        closing with a worker still running); a call that meets a deleted object is dropped.
        """

        def call(*args):
            if self.closed:
                return
            try:
                fn(*args)
            except RuntimeError as e:
                if "has been deleted" not in str(e):
                    raise
                self.closed = True

        return call


def stack_sections(dock: QWidget, *sections: QWidget) -> None:
    """Lay the dock's sections out top to bottom, with the free space below them."""
    root = QVBoxLayout(dock)
    for section in sections:
        root.addWidget(section)
    root.addStretch(1)


def folder_row(edit: QLineEdit, title: str) -> QHBoxLayout:
    """``edit`` with a "…" button that fills it from a folder dialog titled ``title``."""
    row = QHBoxLayout()
    button = QPushButton("…")
    button.setToolTip(title)
    button.clicked.connect(lambda *_: pick_folder(edit, title))  # holds the edit, not the dock
    row.addWidget(edit)
    row.addWidget(button)
    return row


def pick_folder(edit: QLineEdit, title: str) -> None:
    """Fill ``edit`` from a folder dialog titled ``title`` (unchanged when cancelled)."""
    path = QFileDialog.getExistingDirectory(edit, title)
    if path:
        edit.setText(path)
