"""Track objects through a video or stack from a prompts file, as a job with progress.

Prompts file (JSON)::

    {"objects": [
        {"id": 1, "frame": 0, "points": [[210, 350], [250, 220]], "labels": [1, 0]},
        {"id": 2, "frame": 0, "box": [300, 0, 500, 400]},
        {"id": 1, "frame": 40, "points": [[190, 330]], "labels": [1]}
    ]}

Each entry is one object's prompt on one frame (clicks in frame pixels, x then y; labels 1
positive, 0 negative; or a box x0, y0, x1, y1, optionally with clicks). An object may have
entries on several frames. The result is one label image per frame (the object's id where
it wins, 0 elsewhere): where objects overlap, the one with the higher logit takes the pixel.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sam_pets._atomic import atomic_write_text
from sam_pets.progress import Progress

DIRECTIONS = ("both", "forward", "backward")


class PromptsError(ValueError):
    """A prompts file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class FramePrompt:
    """One object's prompt on one frame."""

    obj_id: int
    frame: int
    points: np.ndarray | None = None  # (N, 2) x, y
    labels: np.ndarray | None = None  # (N,)
    box: np.ndarray | None = None  # (4,)


def read_prompts(
    path: str | os.PathLike, num_frames: int, hw: tuple[int, int]
) -> list[FramePrompt]:
    """Parse and check a prompts file against the frames (count and size).

    Raises:
        PromptsError: unreadable JSON, a bad entry (the message names which and why).
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise PromptsError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PromptsError(f"{path}: not valid JSON ({e})") from None
    entries = doc.get("objects") if isinstance(doc, dict) else doc
    if not isinstance(entries, list) or not entries:
        raise PromptsError(f'{path}: expected {{"objects": [...]}} with at least one entry')
    h, w = hw
    out: list[FramePrompt] = []
    seen: set[tuple[int, int]] = set()
    for i, e in enumerate(entries):
        where = f"{path}: objects[{i}]"
        if not isinstance(e, dict):
            raise PromptsError(f"{where}: expected an object, got {type(e).__name__}")
        unknown = set(e) - {"id", "frame", "points", "labels", "box"}
        if unknown:
            raise PromptsError(f"{where}: unknown key(s) {sorted(unknown)}")
        obj, frame = e.get("id"), e.get("frame", 0)
        if not isinstance(obj, int) or isinstance(obj, bool) or obj < 1:
            raise PromptsError(f"{where}: 'id' must be an integer >= 1 (it is the label value)")
        if not isinstance(frame, int) or isinstance(frame, bool) or not 0 <= frame < num_frames:
            raise PromptsError(f"{where}: 'frame' must be an integer in 0..{num_frames - 1}")
        if (obj, frame) in seen:
            raise PromptsError(f"{where}: object {obj} has a second entry on frame {frame}")
        seen.add((obj, frame))
        pts = labels = box = None
        if "points" in e or "labels" in e:
            try:
                pts = np.asarray(e.get("points"), np.float64).reshape(-1, 2)
                labels = np.asarray(e.get("labels"), np.int64).reshape(-1)
            except (TypeError, ValueError):
                raise PromptsError(
                    f"{where}: 'points' must be [[x, y], ...] and 'labels' [1|0, ...]"
                ) from None
            if len(pts) != len(labels) or not len(pts):
                raise PromptsError(f"{where}: {len(pts)} points but {len(labels)} labels")
            if not set(labels.tolist()) <= {0, 1}:
                raise PromptsError(f"{where}: labels are 1 (positive) or 0 (negative)")
            if (
                not np.isfinite(pts).all()
                or (pts < 0).any()
                or (pts[:, 0] >= w).any()
                or (pts[:, 1] >= h).any()
            ):
                raise PromptsError(f"{where}: a point lies outside the {w} x {h} frame")
        if "box" in e:
            try:
                box = np.asarray(e["box"], np.float64).reshape(4)
            except (TypeError, ValueError):
                raise PromptsError(f"{where}: 'box' must be [x0, y0, x1, y1]") from None
            if not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
                raise PromptsError(f"{where}: 'box' must be [x0, y0, x1, y1] with x1 > x0, y1 > y0")
        if pts is None and box is None:
            raise PromptsError(f"{where}: give 'points' and 'labels', a 'box', or both")
        out.append(FramePrompt(obj, frame, pts, labels, box))
    return out


def labels_from_logits(logits: np.ndarray, obj_ids: list[int]) -> np.ndarray:
    """(N, H, W) logits -> (H, W) labels: the id of the highest positive logit, else 0."""
    dtype = (
        np.uint8
        if max(obj_ids, default=0) <= 255
        else np.uint16
        if max(obj_ids) <= 65535
        else np.uint32
    )
    if not len(obj_ids):
        return np.zeros(logits.shape[1:], dtype)
    best = logits.argmax(0)
    ids = np.asarray(obj_ids, dtype)
    lab = ids[best]
    lab[logits.max(0) <= 0] = 0
    return lab


@dataclass
class TrackSummary:
    """What a tracking job did."""

    out: str
    frames: int
    objects: list[int]
    written: list[str] = field(default_factory=list)
    areas: dict[int, list[int]] = field(default_factory=dict)  # per object, pixels per frame


def iter_track(
    predictor,
    prompts: list[FramePrompt],
    out: str | os.PathLike,
    direction: str = "both",
    label_format: str = "png",
    overwrite: bool = False,
    cancel=None,
) -> Generator[Progress, None, TrackSummary]:
    """Prompt, propagate and write labels frame by frame; yields progress per frame.

    Args:
        predictor: A :class:`~sam_pets.predict.video.VideoPredictor` on the frames.
        prompts: From :func:`read_prompts`.
        out: Output folder: ``labels/<frame>.png`` (or ``labels.tif``, a stack), ``track.json``.
        direction: "both" (from the earliest prompted frame forward, then backward),
            "forward" or "backward".
        label_format: "png" (one image per frame) or "tif" (one stack).
        overwrite: Replace the results of an earlier run in ``out``.
        cancel: A ``threading.Event``; when set, the job stops after the current frame
            (what was written stays).

    Raises:
        FileExistsError: ``out`` holds results and ``overwrite`` is off.
    """
    from sam_pets.data.formats.label_images import write_label_image

    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if label_format not in ("png", "tif"):
        raise ValueError(f"label_format must be 'png' or 'tif', got {label_format!r}")
    out = Path(out)
    old = [p for p in (out / "labels", out / "labels.tif", out / "track.json") if p.exists()]
    if old and not overwrite:
        raise FileExistsError(
            f"{out} already holds tracking results ({old[0].name}): use --overwrite"
        )
    for p in old:
        if p.is_dir():
            for f in p.iterdir():
                f.unlink()
        else:
            p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    n = predictor.num_frames
    for p in sorted(prompts, key=lambda p: (p.frame, p.obj_id)):
        predictor.add_points(p.frame, p.obj_id, p.points, p.labels, p.box)
    ids = predictor.obj_ids
    summary = TrackSummary(str(out), n, ids, areas={i: [0] * n for i in ids})
    start = min(p.frame for p in prompts)
    runs = []
    if direction in ("both", "forward"):
        runs.append(False)
    if direction in ("both", "backward"):
        runs.append(True)
    total = sum((n - start) if not r else (start + 1) for r in runs)
    if direction == "both":
        total -= 1  # the start frame is done once
    stack = np.zeros((n, *predictor.hw), np.uint32) if label_format == "tif" else None
    done: set[int] = set()
    step = 0
    yield Progress(0, total, f"tracking {len(ids)} object(s) over {n} frames")
    for reverse in runs:
        for t, obj_ids, logits in predictor.propagate(start, reverse=reverse):
            if t in done:
                continue
            done.add(t)
            lab = labels_from_logits(logits, obj_ids)
            for i in obj_ids:
                summary.areas[i][t] = int((lab == i).sum())
            if stack is not None:
                stack[t] = lab
            else:
                path = out / "labels" / f"{t:05d}.png"
                path.parent.mkdir(exist_ok=True)
                write_label_image(path, lab)
                summary.written.append(str(path))
            step += 1
            yield Progress(
                step,
                total,
                f"frame {t}",
                {"objects": int(sum(a[t] > 0 for a in summary.areas.values()))},
            )
            if cancel is not None and cancel.is_set():
                break
        if cancel is not None and cancel.is_set():
            break
    if stack is not None:
        top = max(ids)
        dtype = np.uint8 if top <= 255 else np.uint16 if top <= 65535 else np.uint32
        write_label_image(out / "labels.tif", stack.astype(dtype))
        summary.written.append(str(out / "labels.tif"))
    record = {
        "frames": n,
        "objects": ids,
        "direction": direction,
        "precision": predictor.precision,
        "tracked_frames": sorted(done),
        "area_per_frame": {str(i): a for i, a in summary.areas.items()},
        "cancelled": bool(cancel is not None and cancel.is_set()),
    }
    atomic_write_text(out / "track.json", json.dumps(record, indent=1))
    return summary
