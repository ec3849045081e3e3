"""The conversion engine: load items in worker threads, write them, split, write the manifest.

Format-specific jobs (:mod:`sam_pets.data.convert`) only build :class:`Task` lists.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from sam_pets.data.errors import BadInputError
from sam_pets.data.formats import sam2_folder as canon
from sam_pets.data.fsutil import safe_name, unique_name
from sam_pets.data.imaging import CanonicalImage
from sam_pets.data.split import stratified_split, stratified_subset, stratum_key
from sam_pets.data.staging import staged_dataset
from sam_pets.data.types import Annotation, ConvertSummary, FileIssue
from sam_pets.progress import Progress


@dataclass(frozen=True)
class ConvertConfig:
    """Options shared by the conversion jobs.

    Attributes:
        val_fraction: Fraction of items in the val split.
        seed: Seed of the split (and of the ``tiny`` subset).
        tiny: Convert only a stratified subset of this many items (None: all).
        tiny_list_size: Items per ``*_tiny_list.txt``.
        workers: Threads for decoding/encoding (0: ``min(4, cpu count)``).
        overwrite: Replace an existing canonical dataset at the output folder.
    """

    val_fraction: float = 0.2
    seed: int = 0
    tiny: int | None = None
    tiny_list_size: int = 8
    workers: int = 0
    overwrite: bool = False


DEFAULT_CONFIG = ConvertConfig()
Loaded = tuple[Annotation, CanonicalImage, dict, list[str]]


@dataclass(frozen=True)
class Task:
    """One source item: a label for messages, its stratum, and a loader run in a worker."""

    source: str
    name: str
    key: str
    load: Callable[[], Loaded]


class _NothingConverted(Exception):
    """Every item was skipped: abandon the staged dataset."""


def run_conversion(
    tasks: Sequence[Task],
    out: str | os.PathLike,
    cfg: ConvertConfig,
    manifest_extra: dict | None = None,
    issues: Sequence[FileIssue] = (),
    sources: Sequence[str | os.PathLike] = (),
) -> Generator[Progress, None, ConvertSummary]:
    """Load, check and write every task in worker threads, then split and write the manifest.

    The dataset is built in a temporary folder next to ``out`` and moved into place only
    when complete, so an interrupted or failed run leaves ``out`` as it was (see
    :func:`~sam_pets.data.staging.staged_dataset`).

    Args:
        tasks: Source items.
        out: Output folder (new, empty, or an existing dataset with ``cfg.overwrite``).
        cfg: Options.
        manifest_extra: Top-level manifest fields (``categories``).
        issues: Issues found before conversion (reported as skipped).
        sources: Source files and folders; ``out`` must not be, contain or lie in one.

    Yields:
        One Progress per item.

    Returns:
        The summary. When no item could be converted, nothing is written and ``out`` stays
        as it was (the summary lists why each item was skipped).

    Raises:
        BadInputError: ``tasks`` is empty (nothing is written).
    """
    out = Path(out)
    if not tasks:
        raise BadInputError("nothing to convert: the source has no items")
    if cfg.tiny is not None:
        tasks = [tasks[i] for i in stratified_subset([t.key for t in tasks], cfg.tiny, cfg.seed)]
    manifest = dict(canon.new_manifest(), **(manifest_extra or {}))
    names = _assign_names(tasks)
    skipped, notes = list(issues), []
    workers = cfg.workers or min(4, os.cpu_count() or 1)
    try:
        with staged_dataset(out, cfg.overwrite, sources) as tmp:
            pool = ThreadPoolExecutor(max_workers=workers)
            try:
                results = pool.map(
                    lambda tn: _convert_one(tn[0], tn[1], tmp), zip(tasks, names, strict=True)
                )
                for step, (task, (record, msgs)) in enumerate(zip(tasks, results, strict=True), 1):
                    if record is None:
                        skipped.append(FileIssue(task.source, msgs[0]))
                    else:
                        manifest["items"].append(record)
                        notes += [FileIssue(task.source, "; ".join(msgs))] if msgs else []
                    yield Progress(step, len(tasks), f"{task.name}", {"skipped": len(skipped)})
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
            if not manifest["items"]:
                raise _NothingConverted  # the staged folder goes; ``out`` stays as it was
            splits = _finish(tmp, manifest, cfg)
    except _NothingConverted:
        return ConvertSummary(str(out), 0, tuple(skipped), tuple(notes))
    return ConvertSummary(str(out), len(manifest["items"]), tuple(skipped), tuple(notes), splits)


def _assign_names(tasks: Sequence[Task]) -> list[str]:
    taken: set[str] = set()
    names = []
    for t in tasks:
        n = unique_name(safe_name(t.name), taken)
        taken.add(n)
        names.append(n)
    return names


def _convert_one(task: Task, name: str, out: Path) -> tuple[dict | None, list[str]]:
    try:
        ann, img, extra, notes = task.load()
        if ann.size_hw != tuple(img.size_hw):
            raise BadInputError(f"mask size {ann.size_hw} differs from image size {img.size_hw}")
        notes = [*img.notes, *notes]
        if name != task.name:
            notes.append(f"stored as {name!r}")
        record = canon.write_item(
            out,
            replace(ann, name=name),
            img.jpeg,
            "train",
            dict(extra, notes=notes) if notes else extra,
        )
        return record, notes
    except BadInputError as e:
        return None, [str(e)]
    except Exception as e:  # one broken file must not stop the rest; report it
        return None, [f"unexpected error: {type(e).__name__}: {e}"]


def _finish(out: Path, manifest: dict, cfg: ConvertConfig) -> dict[str, int]:
    records = sorted(manifest["items"], key=lambda r: r["name"])
    keys = [stratum_key(r) for r in records]
    for rec, split in zip(records, stratified_split(keys, cfg.val_fraction, cfg.seed), strict=True):
        rec["split"] = split
    canon.save_manifest(out, manifest)
    return canon.write_lists(out, manifest, cfg.tiny_list_size)
