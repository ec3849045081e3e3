"""Oxford-IIIT Pet reader: official and flat layouts, trimaps, species and breeds.

Official layout: ``images/``, ``annotations/trimaps/``, ``annotations/list.txt``,
``annotations/trainval.txt``, ``annotations/test.txt``. Flat layout (the ../shared samples):
``images/``, ``trimaps/``, ``list.txt``.

Trimap values: 1 = pet, 2 = background, 3 = border (unlabelled band around the pet). The pet
mask is ``trimap == 1`` and the border ``trimap == 3`` is kept as the ignore region; how the
border is used in training is :class:`sam_pets.data.dataset.DatasetConfig`'s ``border``.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from sam_pets.data.errors import BadInputError
from sam_pets.data.types import Annotation, ObjectInfo

SPECIES = {1: "cat", 2: "dog"}
SPECIES_IDS = {v: k for k, v in SPECIES.items()}
PET, BACKGROUND, BORDER = 1, 2, 3
_TRAILING_NUMBER = re.compile(r"_\d+$")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class PetInfo:
    """One line of ``list.txt``: class id, species and breed."""

    class_id: int
    species: str
    breed: str
    breed_id: int


@dataclass(frozen=True)
class OxfordPair:
    """An image/trimap pair to convert (either path may be missing on disk)."""

    name: str
    image: Path | None
    trimap: Path | None
    info: PetInfo | None
    official_split: str | None = None


@dataclass(frozen=True)
class OxfordLayout:
    """Where the parts of an Oxford-IIIT Pet folder are."""

    images: Path
    trimaps: Path
    list_txt: Path | None
    trainval_txt: Path | None
    test_txt: Path | None


def find_layout(src: str | os.PathLike) -> OxfordLayout:
    """Detect the official or flat layout under ``src``.

    Raises:
        FileNotFoundError: Neither layout is present.
    """
    src = Path(src)
    ann = src / "annotations"
    if (ann / "trimaps").is_dir():
        base, trimaps = ann, ann / "trimaps"
    elif (src / "trimaps").is_dir():
        base, trimaps = src, src / "trimaps"
    else:
        raise FileNotFoundError(
            f"no Oxford-IIIT Pet trimaps under {src} (expected annotations/trimaps/ or trimaps/)"
        )
    if not (src / "images").is_dir():
        raise FileNotFoundError(f"no images/ folder under {src}")

    def opt(name: str) -> Path | None:
        return base / name if (base / name).is_file() else None

    return OxfordLayout(
        src / "images", trimaps, opt("list.txt"), opt("trainval.txt"), opt("test.txt")
    )


def breed_from_name(name: str) -> str:
    """Breed name of an Oxford file name: the name minus its trailing ``_NUMBER``."""
    return _TRAILING_NUMBER.sub("", name)


def species_from_name(name: str) -> str:
    """The dataset's convention: a capital first letter is a cat, lower case a dog."""
    return "cat" if name[:1].isupper() else "dog"


def read_pet_list(path: str | os.PathLike) -> dict[str, PetInfo]:
    """Parse ``list.txt`` (or ``trainval.txt``/``test.txt``): ``name CLASS SPECIES BREED``.

    Comment lines (``#``) and malformed lines are skipped.
    """
    out = {}
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) != 4 or line.startswith("#"):
            continue
        name, *nums = parts
        try:
            class_id, species_id, breed_id = (int(x) for x in nums)
        except ValueError:
            continue
        species = SPECIES.get(species_id, species_from_name(name))
        out[name] = PetInfo(class_id, species, breed_from_name(name), breed_id)
    return out


def find_pairs(src: str | os.PathLike) -> list[OxfordPair]:
    """All candidate pairs under ``src``, sorted by name.

    A pair exists for every trimap, every image and every ``list.txt`` name, so that a
    missing image or trimap can be reported per file.
    """
    lay = find_layout(src)
    infos = read_pet_list(lay.list_txt) if lay.list_txt else {}
    split_of = {}
    for split, path in (("trainval", lay.trainval_txt), ("test", lay.test_txt)):
        if path:
            split_of.update(dict.fromkeys(read_pet_list(path), split))
    trimaps = {
        p.stem: p
        for p in lay.trimaps.iterdir()
        if p.suffix.lower() == ".png" and not p.name.startswith(".")
    }
    images = {
        p.stem: p
        for p in lay.images.iterdir()
        if p.suffix.lower() in _IMAGE_SUFFIXES and not p.name.startswith(".")
    }
    names = sorted(set(trimaps) | set(images) | set(infos))
    return [
        OxfordPair(n, images.get(n), trimaps.get(n), infos.get(n), split_of.get(n)) for n in names
    ]


def read_trimap(path: str | os.PathLike) -> np.ndarray:
    """Decode a trimap PNG to an (H, W) uint8 array of values in {1, 2, 3}.

    Raises:
        BadInputError: Unreadable file, more than one channel, or values outside {1, 2, 3}.
    """
    try:
        data = Path(path).read_bytes()
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.mode not in ("L", "P", "I", "I;16"):
                raise BadInputError(f"trimap must be single-channel, got mode {img.mode}")
            trimap = np.asarray(img)
    except FileNotFoundError:
        raise BadInputError(f"trimap not found: {path}") from None
    except (OSError, UnidentifiedImageError, SyntaxError) as e:
        raise BadInputError(f"corrupt or truncated trimap ({e})") from None
    values = np.unique(trimap)
    if not set(values.tolist()) <= {PET, BACKGROUND, BORDER}:
        raise BadInputError(f"trimap values {values.tolist()[:8]} are not a subset of {{1,2,3}}")
    return trimap.astype(np.uint8)


def trimap_to_masks(trimap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pet mask and ignore region of a trimap.

    Args:
        trimap: (H, W) values in {1, 2, 3}.

    Returns:
        pet: (H, W) bool, ``trimap == 1``.
        ignore: (H, W) bool, ``trimap == 3``.
    """
    return trimap == PET, trimap == BORDER


def read_pair(pair: OxfordPair, image_size_hw: tuple[int, int]) -> Annotation:
    """Read a pair's trimap into an :class:`Annotation` (the image is handled by the caller).

    Args:
        pair: The pair; ``pair.trimap`` must exist.
        image_size_hw: (H, W) of the decoded image, checked against the trimap.

    Raises:
        BadInputError: Missing/corrupt trimap, size mismatch, or no pet pixels.
    """
    if pair.trimap is None:
        raise BadInputError("no trimap for this image")
    trimap = read_trimap(pair.trimap)
    if trimap.shape != tuple(image_size_hw):
        raise BadInputError(
            f"trimap size {trimap.shape[1]}x{trimap.shape[0]} (WxH) differs "
            f"from image size {image_size_hw[1]}x{image_size_hw[0]}"
        )
    pet, ignore = trimap_to_masks(trimap)
    if not pet.any():
        raise BadInputError("trimap has no foreground (pet) pixels")
    info = pair.info
    species = info.species if info else species_from_name(pair.name)
    breed = info.breed if info else breed_from_name(pair.name)
    return Annotation(
        name=pair.name,
        masks=pet[None],
        objects=(ObjectInfo(1, species, SPECIES_IDS.get(species)),),
        ignore=ignore,
        image_path=pair.image,
        species=species,
        breed=breed,
        source=str(pair.image),
    )
