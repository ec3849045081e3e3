"""Atomic file writes (the one home of them, used by every layer; stdlib only)."""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and ``os.replace``.

    A reader never sees a half-written file and a crash leaves at most a stray temp file.
    The file gets the usual permissions (0666 minus the umask), not mkstemp's 0600.

    Raises:
        IsADirectoryError: ``path`` is a directory (it is never replaced by a file).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            errno.EISDIR, "is a directory; refusing to replace it with a file", str(path)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Atomic UTF-8 text write (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def process_alive(pid: int, host: str) -> bool:
    """Whether process ``pid`` on ``host`` may still be running (True when it cannot be told).

    A process on another host, or any other process on Windows (where ``os.kill`` would end
    it), counts as alive; this process does too.
    """
    if host != socket.gethostname() or os.name == "nt" or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True
