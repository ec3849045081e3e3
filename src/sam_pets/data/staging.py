"""Build a dataset in a temporary sibling folder and swap it in only when it is complete.

An interrupted or failed conversion (Ctrl-C, a crash, a full disk) leaves the dataset that
was at the output folder untouched.  A hard kill (SIGKILL, power loss) can leave hidden
siblings of OUT behind: ``.OUT.new-*`` (a dataset being built; it holds the builder's process
id and host until it is swapped in) and, from the instant of the swap, ``.OUT.old-*`` (the
previous dataset, with the user's own files until they are moved back).  The next job that
writes OUT puts them right first (:func:`recover_leftovers`) and says what it did.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sam_pets._atomic import process_alive
from sam_pets.data.errors import BadInputError
from sam_pets.data.formats import sam2_folder as canon
from sam_pets.progress import Notice


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
    for note in recover_leftovers(out):
        warnings.warn(note, LeftoverNote, stacklevel=3)
    canon.check_output(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        (tmp / MARK).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
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
        (out / MARK).unlink()
        return
    old = out.with_name(f".{out.name}.old-{secrets.token_hex(4)}")
    os.rename(out, old)
    try:
        os.rename(new, out)
    except BaseException:
        os.rename(old, out)
        raise
    (out / MARK).unlink()
    for entry in old.iterdir():  # the user's own files in the old dataset folder stay
        if entry.name not in canon.OWN_ENTRIES:
            os.rename(entry, out / entry.name)
    shutil.rmtree(old)


MARK = ".sam-pets-staging"  # in a dataset being built: the builder's {"pid", "host"}
QUIET_S = 60.0  # a leftover changed more recently than this may belong to a live job


class LeftoverNote(Notice):
    """Something a hard-killed earlier job left beside the output was restored or removed."""


def recover_leftovers(out: str | os.PathLike) -> list[str]:
    """Put right what a hard-killed job writing ``out`` left behind; returns what was done.

    - ``.OUT.old-*`` while OUT is missing or empty (killed between the swap's two renames):
      it is the previous dataset and becomes OUT again.
    - ``.OUT.old-*`` beside OUT (killed after the swap): the user's own files still in it
      move back into OUT, then it is removed; a file OUT also has stays where it is, and
      the folder with it (named in the note).
    - ``.OUT.new-*`` whose builder is gone (its :data:`MARK` names a dead process on this
      host), and a :data:`MARK` left in OUT itself: removed.

    An ``.OUT.old-*`` beside OUT that changed in the last :data:`QUIET_S` seconds (a live
    job may be moving it), and a dataset being built by a live process, a process on
    another host or one that cannot be told, are left alone.
    """
    out = Path(out)
    if not out.parent.is_dir():
        return []
    notes = []
    stem = glob.escape(f".{out.name}")
    for old in sorted(out.parent.glob(f"{stem}.old-*")):
        if old.is_dir() and not old.is_symlink() and (_missing(out) or not _recent(old)):
            notes.append(_recover_old(old, out))
    for new in sorted(out.parent.glob(f"{stem}.new-*")):
        if new.is_dir() and not new.is_symlink() and _abandoned(new / MARK):
            shutil.rmtree(new)
            notes.append(f"removed {new}: an unfinished dataset of a job that was killed")
    if out.is_dir() and _abandoned(out / MARK):
        (out / MARK).unlink()
    return notes


def _missing(out: Path) -> bool:
    """OUT is absent or an empty folder (as between the two renames of a swap)."""
    return not out.exists() or (out.is_dir() and not any(out.iterdir()))


def _recover_old(old: Path, out: Path) -> str:
    if _missing(out):
        if out.exists():
            out.rmdir()
        os.rename(old, out)
        return f"restored {out} from {old.name}, where a job that was killed had moved it"
    moved, clashes = [], []
    for entry in sorted(old.iterdir()):
        if entry.name in canon.OWN_ENTRIES:
            continue
        dst = out / entry.name
        if dst.exists() or dst.is_symlink():
            clashes.append(entry.name)
        else:
            os.rename(entry, dst)
            moved.append(entry.name)
    back = f"; moved your {', '.join(moved)} back into {out}" if moved else ""
    if clashes:
        return (
            f"{old} is the dataset a killed job replaced{back}; it still holds "
            f"{', '.join(clashes)}, which {out} has too: compare them, then delete {old}"
        )
    shutil.rmtree(old)
    return f"removed {old}: the dataset a killed job had replaced{back}"


def _recent(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_ctime < QUIET_S
    except OSError:
        return True


def _abandoned(mark: Path) -> bool:
    """True when ``mark`` names a process on this host that is gone."""
    try:
        info = json.loads(mark.read_text())
        pid, host = int(info["pid"]), str(info["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return False  # no mark: not ours to judge (or being written)
    return not process_alive(pid, host)
