"""Helpers around the napari layers the annotator uses (prompts, boxes, preview, target)."""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels, Points, Shapes
from napari.utils.colormaps.standardize_color import transform_color

from sam_pets.predict.transforms import yx_to_xy

POSITIVE = "lime"
NEGATIVE = "red"
BOX_OBJECT = "lime"
BOX_NO_OBJECT = "red"
POINTS_NAME = "sam-pets prompts"
BOXES_NAME = "sam-pets box"
PREVIEW_NAME = "sam-pets preview"
_HELPER = {"sam_pets": "helper"}  # metadata of the Annotator's own prompt / preview layers


def is_helper(layer) -> bool:
    """True for the Annotator's prompt and preview layers (never a target for objects)."""
    return getattr(layer, "metadata", {}).get("sam_pets") == "helper"


def spatial_shape(image: Image) -> tuple[int, ...]:
    """Shape of the image without the RGB(A) channel axis."""
    data = image.data[0] if image.multiscale else image.data
    return tuple(data.shape[:-1]) if image.rgb else tuple(data.shape)


def same_frame(layer, image: Image) -> bool:
    """Whether ``layer`` has the image's spatial axes, scale and translation."""
    nd = len(spatial_shape(image))
    return (
        layer.ndim == nd
        and np.allclose(layer.scale, image.scale[-nd:])
        and np.allclose(layer.translate, image.translate[-nd:])
    )


def fits(labels: Labels, image: Image) -> bool:
    """Whether a Labels layer can hold the image's objects (same spatial shape)."""
    return not labels.multiscale and tuple(np.shape(labels.data)) == spatial_shape(image)


def spatial_shape_of(labels: Labels) -> tuple[int, ...]:
    """Shape of a Labels layer's data (its first level if multiscale)."""
    return tuple(np.shape(labels.data[0] if labels.multiscale else labels.data))


def plane_index(image: Image, current_step: tuple[int, ...]) -> tuple[int, ...]:
    """Index of the displayed 2D plane in the image's leading (non-YX) axes."""
    nd = len(spatial_shape(image))
    offset = len(current_step) - nd
    return tuple(int(current_step[offset + d]) for d in range(nd - 2))


def plane_data(image: Image, plane: tuple[int, ...]) -> np.ndarray:
    """The pixels of one plane: (H, W) or (H, W, C)."""
    data = image.data[0] if image.multiscale else image.data
    return np.asarray(data[plane] if plane else data)


def make_points(image: Image) -> Points:
    """An empty prompt layer in the image's frame; feature ``label`` is 1 (+) or 0 (-)."""
    nd = len(spatial_shape(image))
    layer = Points(
        np.zeros((0, nd)),
        ndim=nd,
        name=POINTS_NAME,
        size=10,
        face_color=POSITIVE,
        border_color="white",
        features={"label": np.zeros(0, int)},
        scale=image.scale[-nd:],
        translate=image.translate[-nd:],
        metadata=dict(_HELPER),
    )
    layer.feature_defaults = {"label": 1}
    return layer


def make_boxes(image: Image) -> Shapes:
    """An empty Shapes layer for box prompts (rectangles)."""
    nd = len(spatial_shape(image))
    return Shapes(
        ndim=nd,
        name=BOXES_NAME,
        edge_color=BOX_OBJECT,
        face_color="transparent",
        edge_width=2,
        scale=image.scale[-nd:],
        translate=image.translate[-nd:],
        metadata=dict(_HELPER),
    )


def make_preview(image: Image) -> Labels:
    """The preview layer: the current object's mask as 0/1 uint8."""
    layer = make_labels(image, PREVIEW_NAME, 0.5, dtype=np.uint8)
    layer.metadata.update(_HELPER)
    return layer


def make_labels(image: Image, name: str, opacity: float = 0.6, dtype=np.int32) -> Labels:
    """A zero Labels layer matching the image's spatial shape and frame.

    napari colours uint8/uint16 labels without first hashing every pixel to its colormap's
    size, which for a 12 MP photo saves ~40 ms per refresh: the preview (0/1) uses uint8, the
    Annotator's own target layer uint16.
    """
    shape = spatial_shape(image)
    nd = len(shape)
    return Labels(
        np.zeros(shape, dtype),
        name=name,
        opacity=opacity,
        scale=image.scale[-nd:],
        translate=image.translate[-nd:],
    )


def on_plane(coords: np.ndarray, plane: tuple[int, ...]) -> np.ndarray:
    """Rows of (N, nd) layer coordinates that lie on ``plane`` (all rows for 2D)."""
    if not plane or len(coords) == 0:
        return np.ones(len(coords), bool)
    lead = np.round(coords[:, : len(plane)]).astype(int)
    return np.all(lead == np.asarray(plane)[None], axis=1)


def prompt_coords(layer: Points | Shapes) -> list[np.ndarray]:
    """Each point (1, nd) or shape (k, nd) of a prompt layer, in layer coordinates."""
    if isinstance(layer, Points):
        return [row[None] for row in np.asarray(layer.data, float)]
    return [np.asarray(d, float) for d in layer.data]


def inside(coords: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Rows of (N, nd) layer coordinates over an image of spatial ``shape`` (its last 2 axes).

    napari puts pixel centres at integers: the image spans -0.5 .. size - 0.5 on each axis.
    """
    yx = coords[:, -2:]
    return (yx >= -0.5).all(axis=1) & (yx <= np.asarray(shape[-2:], float) - 0.5).all(axis=1)


def read_points(
    points: Points, plane: tuple[int, ...], shape: tuple[int, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Clicks on ``plane`` (and over an image of ``shape``) as (N, 2) (x, y) and labels (N,)."""
    data = np.asarray(points.data, float)
    labels = np.asarray(points.features["label"], int) if len(data) else np.zeros(0, int)
    keep = on_plane(data, plane)
    if shape is not None and len(data):
        keep &= inside(data, shape)
    return yx_to_xy(data[keep][:, -2:]), labels[keep]


def read_box(shapes: Shapes, plane: tuple[int, ...]) -> np.ndarray | None:
    """The last rectangle on ``plane`` as (x0, y0, x1, y1), or ``None``."""
    for corners, kind in zip(reversed(shapes.data), reversed(shapes.shape_type), strict=False):
        corners = np.asarray(corners, float)
        if kind != "rectangle" or not on_plane(corners, plane).all():
            continue
        yx = corners[:, -2:]
        (y0, x0), (y1, x1) = yx.min(0), yx.max(0)
        return np.array([x0, y0, x1, y1], np.float32)
    return None


def color_points(points: Points) -> None:
    """Colour clicks by polarity (positive / negative)."""
    if len(points.data) == 0:
        return
    labels = np.asarray(points.features["label"], int)
    colors = np.where(labels[:, None] == 1, [[0.0, 1.0, 0.0, 1.0]], [[1.0, 0.0, 0.0, 1.0]])
    # napari already gave a new point the current colour; setting colours redraws the layer
    # (~5 ms on the GUI thread), so only when one differs
    if not np.allclose(points.face_color, colors):
        points.face_color = colors


def color_boxes(shapes: Shapes, has_object: bool, plane: tuple[int, ...] = ()) -> None:
    """Colour the boxes on ``plane``: green when the object-score head sees an object, red if not.

    Boxes on other planes of a stack keep the colour of their own last prediction.
    """
    if not len(shapes.data):
        return
    colors = np.array(shapes.edge_color, float)
    new = colors.copy()
    here = [i for i, d in enumerate(prompt_coords(shapes)) if on_plane(d, plane).all()]
    new[here] = transform_color(BOX_OBJECT if has_object else BOX_NO_OBJECT)[0]
    if not np.allclose(new, colors):  # setting colours redraws the layer
        shapes.edge_color = new
