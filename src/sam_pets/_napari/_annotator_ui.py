"""Layout of the Annotator dock: its model, annotate, keys and export sections."""

from __future__ import annotations

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from sam_pets._napari._models import available_devices, model_choices
from sam_pets._napari._widgets import folder_row, stack_sections, weak_slot

KEYS = {
    "n": ("commit", "commit the object (new label id, prompts cleared)"),
    "q": ("cycle", "cycle among the candidate masks"),
    "w": ("toggle_polarity", "toggle the polarity of the next point"),
    "Shift-N": ("clear", "clear the prompts (discard the object)"),
    "u": ("undo", "undo the last commit"),
    "g": ("refine", "refine the selected label of the target layer"),
}
KEYS_DOC = {name: doc for name, doc in KEYS.values()}
AUTO_RULE = "auto polarity: a click on the current mask removes it, a click off it adds"

# "First click looks in" entries -> ImagePredictor.first_click_window (share of the longer side)
FIRST_CLICK_WINDOWS = {
    "the whole image": 0.0,
    "1/2 of the image": 0.5,
    "1/4 of the image": 0.25,
    "1/8 of the image": 0.125,
}


class AnnotatorLayout:
    """The Annotator's sections laid out on its dock; the controls are attributes.

    It builds and arranges them (and handles "Open checkpoint…" itself); the dock connects
    the controls' signals to what they do.

    Args:
        dock: The widget the sections are laid out on.
        sections: More sections ("Segment everything", "Propagate"), placed between Annotate
            and Keys.
    """

    def __init__(self, dock: QWidget, *sections: QWidget) -> None:
        stack_sections(
            dock,
            self._model_box(),
            self._image_box(),
            *sections,
            self._keys_box(),
            self._export_box(),
        )

    def _model_box(self) -> QGroupBox:
        box = QGroupBox("Model")
        form = QFormLayout(box)
        self.model_combo = QComboBox()
        self.model_combo.addItems(model_choices())
        self.model_combo.setToolTip(
            "The built-in pets model, Meta's checkpoints (downloaded on first use), "
            "recent checkpoint files, or a randomly initialised config"
        )
        browse = QPushButton("Open checkpoint…")
        browse.setToolTip("Meta .pt, Hugging Face .safetensors or sam-pets checkpoint")
        browse.clicked.connect(weak_slot(self, "_browse_checkpoint"))
        self.device_combo = QComboBox()
        self.device_combo.addItems(available_devices())
        self.precision_combo = QComboBox()
        self.precision_combo.addItems(["auto", "fp32", "bf16"])
        self.precision_combo.setToolTip(
            "auto: bf16 on a GPU, fp32 elsewhere. On a CPU with AMX (recent Intel Xeons), "
            "bf16 embeds Meta's 1024-px models 1.4-1.9x faster, with masks that differ "
            "from fp32's on a few tenths of a percent of the pixels; the small built-in "
            "model does not gain. Applies when the model is loaded"
        )
        self.load_button = QPushButton("Load model")
        self.model_status = QLabel("no model loaded")
        self.zoom_check = QCheckBox("zoom in on the object")
        self.zoom_check.setToolTip(
            "Predict again in a crop around the box or the first mask, embedded on its own: "
            "finer outlines for one more embedding. On by default for the built-in pets "
            "model, off for Meta's (a second 1024-px embedding is slow on a CPU)"
        )
        self.zoom_check.setEnabled(False)
        self.window_combo = QComboBox()
        self.window_combo.addItems(list(FIRST_CLICK_WINDOWS))
        self.window_combo.setToolTip(
            "Where a first click looks for its object when zooming in: the whole image, or "
            "a square around the click of that share of the image's longer side. Choose a "
            "square for small objects (windows on a facade, cells) that the whole image "
            "shows too coarsely; later clicks crop around the mask as usual"
        )
        self.window_combo.setEnabled(False)
        form.addRow(self.model_combo)
        form.addRow(browse)
        form.addRow("Device", self.device_combo)
        form.addRow("Precision", self.precision_combo)
        form.addRow(self.load_button)
        form.addRow(self.model_status)
        form.addRow(self.zoom_check)
        form.addRow("First click looks in", self.window_combo)
        return box

    def _image_box(self) -> QGroupBox:
        box = QGroupBox("Annotate")
        form = QFormLayout(box)
        self.image_combo = QComboBox()
        self.labels_combo = QComboBox()
        self.labels_combo.setToolTip(
            "Committed objects of the current image go here; each image gets its own "
            "'<image> labels' layer unless you pick one that fits it"
        )
        self.overwrite_check = QCheckBox("new objects may overwrite others")
        self.auto_check = QCheckBox("auto polarity")
        self.auto_check.setToolTip(AUTO_RULE)
        self.polarity_label = QLabel()
        self.candidate_label = QLabel("no prediction")
        self.restore_button = QPushButton("Restore")
        self.restore_button.setToolTip(
            "Objects committed to this image in an earlier session (saved as they were "
            "committed, so a crash loses none) that its labels layer does not show"
        )
        self.restore_button.setVisible(False)
        form.addRow("Image", self.image_combo)
        form.addRow("Labels", self.labels_combo)
        form.addRow(self.overwrite_check)
        form.addRow(self.auto_check)
        form.addRow(self.polarity_label)
        form.addRow(self.candidate_label)
        form.addRow(self.restore_button)
        return box

    def _keys_box(self) -> QGroupBox:
        box = QGroupBox("Keys")
        lines = [f"<b>{k}</b>: {doc}" for k, (_, doc) in KEYS.items()]
        lines += ["<b>right-click</b> or <b>Shift-click</b> (add mode): negative point", AUTO_RULE]
        text = QLabel("<br>".join(lines))
        text.setWordWrap(True)
        QVBoxLayout(box).addWidget(text)
        return box

    def _export_box(self) -> QGroupBox:
        box = QGroupBox("Export")
        form = QFormLayout(box)
        self.export_dir = QLineEdit()
        self.export_dir.setPlaceholderText("dataset folder (SAM 2 format)")
        form.addRow(folder_row(self.export_dir, "Dataset folder"))
        self.coco_check = QCheckBox("also write coco.json")
        form.addRow(self.coco_check)
        buttons = QHBoxLayout()
        self.export_image_button = QPushButton("Export image")
        self.export_all_button = QPushButton("Export all annotated")
        buttons.addWidget(self.export_image_button)
        buttons.addWidget(self.export_all_button)
        form.addRow(buttons)
        self.export_status = QLabel("")
        self.export_status.setWordWrap(True)
        form.addRow(self.export_status)
        return box

    def _browse_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.model_combo,
            "SAM 2 checkpoint",
            "",
            "Checkpoints (*.pt *.pth *.safetensors);;All (*)",
        )
        if path:
            self.model_combo.insertItem(0, path)
            self.model_combo.setCurrentIndex(0)
