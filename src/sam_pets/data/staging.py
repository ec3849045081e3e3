"""Build a dataset in a temporary sibling folder and swap it in only when it is complete.

An interrupted or failed conversion (Ctrl-C, a crash, a full disk) leaves the dataset that
was at the output folder untouched; only a hidden ``.OUT.new-*`` folder may stay behind
after a hard kill.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sam_pets.data.errors import BadInputError
from sam_pets.data.formats import sam2_folder as canon


def check_not_source(out: str | os.PathLike, sources: Iterable[str | os.PathLike]) -> None:
    """Refuse an output folder that is, contains or lies inside one of the ``sources``.

    Raises:
        BadInputError: Naming the output and the source it overlaps.
    """
    target = Path(out).resolve()
    for src in sources:
        s = Path(src).resolve()
        if target == s or s in target.parents or target in s.parents:
            raise BadInputError(
                f"output {out} is, contains or lies inside the source {src}; "
                "write the dataset to a separate folder"
            )


@contextmanager
def staged_dataset(
    out: str | os.PathLike, overwrite: bool = False, sources: Iterable[str | os.PathLike] = ()
) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``out``; on success it becomes ``out``.

    Checks come first (:func:`check_not_source`, :func:`~.sam2_folder.check_output`), so a
    refused output costs no work. On any exception, including ``KeyboardInterrupt`` and a
    closed generator, the temporary folder is removed and ``out`` is left as it was.
    Replacing a dataset keeps files in ``out`` that are not the dataset's own.

    Raises:
        BadInputError: ``out`` overlaps a source.
        FileExistsError: ``out`` holds other data, or a dataset and ``overwrite`` is False.
    """
    out = Path(out)
    check_not_source(out, sources)
    canon.check_output(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        yield tmp
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(new: Path, out: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(new, 0o777 & ~umask)  # mkdtemp made it 0700
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.rename(new, out)
        return
    old = out.with_name(f".{out.name}.old-{secrets.token_hex(4)}")
    os.rename(out, old)
    try:
        os.rename(new, out)
    except BaseException:
        os.rename(old, out)
        raise
    for entry in old.iterdir():  # the user's own files in the old dataset folder stay
        if entry.name not in canon.OWN_ENTRIES:
            os.rename(entry, out / entry.name)
    shutil.rmtree(old)
