import numpy as np
import pytest
from PIL import Image

from sam_pets.data.errors import BadInputError
from sam_pets.data.formats.label_images import (
    labels_to_masks,
    masks_to_labels,
    read_label_image,
    voc_palette,
    write_label_image,
)


def _labels(max_id=3):
    lab = np.zeros((6, 7), np.int64)
    lab[1:3, 1:4] = 1
    lab[4:, 2:] = max_id
    return lab


def test_palette_png_round_trip(tmp_path):
    write_label_image(tmp_path / "l.png", _labels())
    with Image.open(tmp_path / "l.png") as im:
        assert im.mode == "P" and im.getpalette()[3:6] == [128, 0, 0]
    assert np.array_equal(read_label_image(tmp_path / "l.png"), _labels())


def test_many_ids_use_16_bit_png(tmp_path):
    write_label_image(tmp_path / "l.png", _labels(1000))
    out = read_label_image(tmp_path / "l.png")
    assert out.max() == 1000 and np.array_equal(out, _labels(1000))


def test_tiff_2d_and_stack(tmp_path):
    stack = np.stack([_labels(), _labels(70000)]).astype(np.uint32)
    write_label_image(tmp_path / "s.tif", stack)
    assert np.array_equal(read_label_image(tmp_path / "s.tif"), stack)
    write_label_image(tmp_path / "p.tiff", _labels().astype(np.uint16))
    assert read_label_image(tmp_path / "p.tiff").shape == (6, 7)


@pytest.mark.parametrize("slices", [3, 4])
def test_tiff_stack_of_three_or_four_slices_is_not_stored_as_colour(tmp_path, slices):
    import tifffile

    stack = np.zeros((slices, 6, 7), np.uint16)
    stack[-1, 2:4, 2:5] = 300
    write_label_image(tmp_path / "s.tif", stack)
    with tifffile.TiffFile(tmp_path / "s.tif") as tif:
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.MINISBLACK  # was RGB(A)
    assert np.array_equal(read_label_image(tmp_path / "s.tif"), stack)


def test_bad_label_images(tmp_path):
    with pytest.raises(ValueError):
        write_label_image(tmp_path / "x.png", np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError):
        write_label_image(tmp_path / "x.bmp", np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError):
        write_label_image(tmp_path / "x.png", np.zeros((2, 2), np.float32))
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(BadInputError, match="single-channel"):
        read_label_image(tmp_path / "rgb.png")
    with pytest.raises(BadInputError, match="not found"):
        read_label_image(tmp_path / "none.png")
    (tmp_path / "c.tif").write_bytes(b"II*\x00junk")
    with pytest.raises(BadInputError):
        read_label_image(tmp_path / "c.tif")


def test_masks_labels_conversion_smaller_object_wins():
    ids, masks = labels_to_masks(_labels())
    assert ids.tolist() == [1, 3] and masks.shape == (2, 6, 7)
    big = np.ones((6, 7), bool)
    small = np.zeros((6, 7), bool)
    small[2, 2] = True
    lab = masks_to_labels(np.stack([small, big]), [5, 9])
    assert lab[2, 2] == 5 and lab[0, 0] == 9 and lab.dtype == np.uint8
    assert masks_to_labels(np.stack([big]), [300]).dtype == np.uint16
    with pytest.raises(ValueError):
        masks_to_labels(np.stack([big]), [0])


def test_voc_palette_matches_davis():
    pal = voc_palette()
    assert len(pal) == 768 and pal[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
