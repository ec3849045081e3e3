"""Where models come from: the built-in pets model, Meta's released checkpoints, local files.

``resolve_model("pets")`` loads the model shipped inside the package (no network, no GPU).
Meta's SAM 2 / SAM 2.1 checkpoints are fetched only on request (``sam-pets download NAME``,
or picking one in the annotator) into a per-user cache.  A download goes to ``NAME.pt.part``
(resumed with an HTTP Range request after an interruption) and gets its final name only after
its sha256 matched, so a corrupt file never sits in the cache under that name.

Stdlib + torch only: no Qt, no napari.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Generator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from sam_pets.model.build import build_model
from sam_pets.model.checkpoint import CheckpointError, load_model, read_checkpoint
from sam_pets.model.config import ALIASES
from sam_pets.model.sam2 import Sam2Image
from sam_pets.paths import cache_dir
from sam_pets.progress import Progress

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

BUILTIN = "pets"
RANDOM_PREFIX = "random:"
BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything_2"
URL_ENV = "SAM_PETS_DOWNLOAD_URL"  # base-URL override (mirrors, tests)
BUILTIN_ENV = "SAM_PETS_BUILTIN_MODEL"  # path override of the built-in weights file
TIMEOUT_S = 30.0
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class OfficialCheckpoint:
    """One of Meta's released checkpoint files.

    Attributes:
        name: File stem on Meta's server, also the sam-pets config name ("sam2.1_hiera_tiny").
        release: Release folder on the server ("092824" = SAM 2.1, "072824" = SAM 2.0).
        sha256: Expected digest (hex), or ``None`` when none is known: then only the key
            layout is checked against ``config`` and the user is told so.
        config: sam-pets config whose layout the file must have.
        approx_mb: Rough download size, for the user.
    """

    name: str
    release: str
    sha256: str | None
    config: str
    approx_mb: int

    def url(self) -> str:
        """Download URL (``$SAM_PETS_DOWNLOAD_URL`` replaces Meta's base URL)."""
        base = os.environ.get(URL_ENV) or BASE_URL
        return f"{base.rstrip('/')}/{self.release}/{self.name}.pt"


# sha256 of Meta's files; None: no hash is known here (the key layout is checked instead)
_SHA256 = {
    "sam2.1_hiera_tiny": "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69",
    "sam2.1_hiera_small": "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38",
    "sam2.1_hiera_base_plus": "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5",
    "sam2.1_hiera_large": None,
    "sam2_hiera_tiny": "65b50056e05bcb13694174f51bb6da89c894b57b75ccdf0ba6352c597c5d1125",
    "sam2_hiera_small": "95949964d4e548409021d47b22712d5f1abf2564cc0c3c765ba599a24ac7dce3",
    "sam2_hiera_base_plus": "d0bb7f236400a49669ffdd1be617959a8b1d1065081789d7bbff88eded3a8071",
    "sam2_hiera_large": "7442e4e9b732a508f80e141e7c2913437a3610ee0c77381a66658c3a445df87b",
}
_SIZE_MB = {"tiny": 156, "small": 184, "base_plus": 324, "large": 898}
_RELEASES = (("092824", "sam2.1_hiera_"), ("072824", "sam2_hiera_"))  # SAM 2.1, SAM 2.0
OFFICIAL: dict[str, OfficialCheckpoint] = {
    name: OfficialCheckpoint(name, release, _SHA256[name], name, mb)
    for release, prefix in _RELEASES
    for size, mb in _SIZE_MB.items()
    for name in [prefix + size]
}


class DownloadError(OSError):
    """A download failed; the message says why and what to do."""


class OfflineError(DownloadError):
    """The download server could not be reached at all (no network, DNS, refused)."""


class ModelNotFoundError(FileNotFoundError):
    """A model name or path names nothing usable here; the message says what to do."""


@dataclass(frozen=True)
class Download:
    """Result of :func:`download`.

    Attributes:
        path: The checkpoint in the cache.
        verified: True when its sha256 matched the registry; False when no hash is known
            (only its key layout was checked).
        fetched: False when it was already in the cache and nothing was transferred.
    """

    path: Path
    verified: bool
    fetched: bool


# --- names and places ------------------------------------------------------------------------
def official(name: str) -> OfficialCheckpoint | None:
    """The registry entry for an official name or config alias ("tiny"), else ``None``."""
    return OFFICIAL.get(ALIASES.get(name, name))


def model_names() -> list[str]:
    """Every model name :func:`resolve_model` accepts besides paths: built-in first."""
    return [BUILTIN, *OFFICIAL]


def cached_path(name: str) -> Path:
    """Where the official checkpoint ``name`` lives once downloaded."""
    return cache_dir() / "checkpoints" / f"{_require_official(name).name}.pt"


def is_cached(name: str) -> bool:
    """Whether the official checkpoint ``name`` has been downloaded (and verified)."""
    return cached_path(name).is_file()


def builtin_path() -> Path:
    """The built-in pets weights file (``$SAM_PETS_BUILTIN_MODEL`` overrides it)."""
    env = os.environ.get(BUILTIN_ENV)
    if env:
        return Path(env).expanduser()
    return Path(str(resources.files("sam_pets.weights").joinpath("pets.pt")))


def _require_official(name: str) -> OfficialCheckpoint:
    entry = official(name)
    if entry is None:
        raise KeyError(f"unknown official checkpoint {name!r}; known: {', '.join(OFFICIAL)}")
    return entry


# --- resolving a model -----------------------------------------------------------------------
def resolve_checkpoint(name_or_path: str | os.PathLike) -> Path:
    """The checkpoint file that a model name or a path stands for.

    Names win over paths: ``pets`` is the built-in model; ``sam2.1_hiera_tiny`` (or an alias
    such as ``tiny``) is Meta's checkpoint from the cache; anything else is a file path.

    Raises:
        ModelNotFoundError: the built-in file is missing, an official checkpoint is not
            downloaded yet, or the path is not a file.
    """
    spec = str(name_or_path)
    if spec == BUILTIN:
        path = builtin_path()
        if not path.is_file():
            raise ModelNotFoundError(
                f"the built-in '{BUILTIN}' model is missing ({path}): this sam-pets install is "
                "incomplete; reinstall sam-pets, or use another model (--checkpoint FILE, or "
                "an official one: sam-pets download --list)"
            )
        return path
    entry = official(spec)
    if entry is not None:
        path = cached_path(entry.name)
        if not path.is_file():
            raise ModelNotFoundError(
                f"{entry.name} is not downloaded yet: run `sam-pets download {entry.name}` "
                f"(about {entry.approx_mb} MB) or give a checkpoint file (--checkpoint FILE)"
            )
        return path
    path = Path(spec).expanduser()
    if path.is_dir():
        inside = [n for n in ("best.pt", "last.pt") if (path / n).is_file()]
        hint = f" (a training run? give {path / inside[0]})" if inside else ""
        raise ModelNotFoundError(f"{spec} is a folder, not a checkpoint file{hint}")
    if not path.is_file():
        raise ModelNotFoundError(
            f"{spec}: no such checkpoint file, and not a model name "
            f"(names: {', '.join(model_names())})"
        )
    return path


def resolve_model(
    name_or_path: str | os.PathLike = BUILTIN, device: str | torch.device = "cpu"
) -> Sam2Image:
    """Load the model a name or path stands for (see :func:`resolve_checkpoint`).

    ``"random:CONFIG"`` (e.g. ``"random:test"``) builds a randomly initialised model of that
    config instead: random weights only ever come from asking for them explicitly.
    """
    spec = str(name_or_path)
    if spec.startswith(RANDOM_PREFIX):
        return build_model(spec[len(RANDOM_PREFIX) :], device=device, seed=0)
    return load_model(resolve_checkpoint(spec), device=device)


# --- downloading -----------------------------------------------------------------------------
def download(
    name: str, force: bool = False, timeout: float = TIMEOUT_S
) -> Generator[Progress, None, Download]:
    """Fetch an official checkpoint into the cache; yields byte progress, returns a Download.

    A partial ``.part`` file from an earlier attempt is resumed.  If a resumed file fails the
    check it is deleted and fetched once more from the start; a fresh file that fails it is
    deleted and the download fails.  ``force`` fetches again even when cached.

    Raises:
        KeyError: unknown name.
        OfflineError: the server cannot be reached (the message says how to load a local file).
        DownloadError: HTTP error, interrupted transfer (run again to resume), bad checksum.
    """
    entry = _require_official(name)
    dest = cached_path(entry.name)
    if dest.is_file() and not force:
        yield Progress(1, 1, f"{entry.name} is already downloaded")
        return Download(dest, entry.sha256 is not None, fetched=False)
    part = dest.with_name(dest.name + ".part")
    if force:
        part.unlink(missing_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(2):
        resumed = part.is_file() and part.stat().st_size > 0
        digest = yield from _fetch(entry, part, timeout)
        yield Progress(1, 1, f"checking {entry.name}")
        problem = _check(entry, part, digest)
        if problem is None:
            break
        part.unlink()  # never resume from (or install) a bad file
        if not resumed or attempt:
            raise DownloadError(
                f"{entry.name}: {problem}; the download was deleted, nothing was installed. "
                f"Try again later, or fetch {entry.url()} yourself and use it with "
                "--checkpoint FILE"
            )
        yield Progress(0, None, f"{entry.name}: {problem} after resuming; downloading afresh")
    os.replace(part, dest)
    return Download(dest, entry.sha256 is not None, fetched=True)


def _fetch(entry: OfficialCheckpoint, part: Path, timeout: float) -> Generator[Progress, None, str]:
    """Append the rest of ``entry``'s file to ``part``; return the sha256 of the whole part."""
    url = entry.url()
    offset = part.stat().st_size if part.is_file() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "sam-pets"})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:  # nothing left to send: the part is complete already
            return _hash_file(part).hexdigest()
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise OfflineError(_offline_message(entry, e)) from None
    with resp, open(part, "ab") as f:
        _lock(f, entry)
        start, total = _range_of(resp, part, offset)
        if not start:
            f.truncate(0)
        hasher = _hash_file(part) if start else hashlib.sha256()
        done = start
        while chunk := _read(resp, entry, done):
            try:
                f.write(chunk)
            except OSError as e:  # disk full...: keep what we have, resume later
                raise DownloadError(f"cannot write {part}: {e}; run again to resume") from None
            hasher.update(chunk)
            done += len(chunk)
            yield Progress(done, total, f"downloading {entry.name}", {"MB": done / 1e6})
        f.flush()
        os.fsync(f.fileno())
    if total is not None and done < total:
        raise _interrupted(entry, done, "the server closed the connection early")
    return hasher.hexdigest()


def _lock(f, entry: OfficialCheckpoint) -> None:
    """Refuse a second concurrent download of the same file (POSIX; released on close)."""
    if fcntl is None:  # Windows: no lock; the sha256 check still guards the cache
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise DownloadError(
            f"{entry.name} is being downloaded by another sam-pets process; wait for it"
        ) from None


def _range_of(resp, part: Path, offset: int) -> tuple[int, int | None]:
    """(first byte the response carries, total file size or None)."""
    length = resp.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if resp.status != 206:
        return 0, length  # 200: the server ignored the Range header; start over
    unit, _, spec = (resp.headers.get("Content-Range") or "").partition(" ")
    rng, _, size = spec.partition("/")
    first = rng.partition("-")[0]
    if unit != "bytes" or not first.isdigit() or int(first) != offset:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{resp.url}: the server sent bytes {spec or '?'} when asked for {offset}-; "
            "the partial download was deleted, run the command again"
        )
    if size.isdigit():
        return offset, int(size)
    return offset, (offset + length) if length is not None else None


def _read(resp, entry: OfficialCheckpoint, done: int) -> bytes:
    try:
        return resp.read(CHUNK_BYTES)
    except (http.client.IncompleteRead, OSError) as e:  # reset, timeout, early close
        raise _interrupted(entry, done, str(e) or type(e).__name__) from None


def _interrupted(entry: OfficialCheckpoint, done: int, why: str) -> DownloadError:
    return DownloadError(
        f"{entry.name}: the transfer was interrupted after {done / 1e6:.1f} MB ({why}); "
        f"run `sam-pets download {entry.name}` again to resume"
    )


def _offline_message(entry: OfficialCheckpoint, error: Exception) -> str:
    reason = getattr(error, "reason", error)
    host = urllib.parse.urlsplit(entry.url()).netloc
    return (
        f"cannot download {entry.name}: {host} is unreachable ({reason}); are you offline? "
        f"The built-in '{BUILTIN}' model needs no download. To use a checkpoint file you "
        "already have, pass it with --checkpoint FILE (sam-pets predict/train/eval; "
        "sam-pets info FILE), or pick it with 'Open checkpoint…' in the annotator "
        f"(the file is {entry.url()})"
    )


def _hash_file(path: Path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            h.update(block)
    return h


def _check(entry: OfficialCheckpoint, part: Path, digest: str) -> str | None:
    """Why the downloaded file must not be used, or ``None`` when it is fine."""
    if entry.sha256 is not None:
        if digest == entry.sha256:
            return None
        return f"sha256 mismatch (expected {entry.sha256}, got {digest})"
    return _layout_problem(part, entry.config)


def _layout_problem(path: Path, config: str) -> str | None:
    """Check a file with no known hash: it must hold exactly ``config``'s image keys/shapes."""
    try:
        ckpt = read_checkpoint(path)
    except CheckpointError as e:
        return f"not a usable checkpoint ({e.problem})"
    if ckpt.config.name != config:
        return f"its tensors have the layout of {ckpt.config.name}, not {config}"
    want = {k: tuple(v.shape) for k, v in build_model(config, device="meta").state_dict().items()}
    got = {k: tuple(v.shape) for k, v in ckpt.image_state.items()}
    if want != got:
        bad = sorted(set(want) ^ set(got)) or [k for k in want if want[k] != got[k]]
        return f"its keys or shapes differ from {config} (first: {bad[:3]})"
    return None
