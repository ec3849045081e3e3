import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from sam_pets.data.errors import BadInputError
from sam_pets.data.imaging import (
    decode_image,
    load_canonical_image,
    sniff_format,
    to_rgb_uint8,
)


def _save(img: Image.Image, path, fmt, **kw):
    img.save(path, format=fmt, **kw)
    return path


def _decode_jpeg(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG" and im.mode == "RGB"
        return np.asarray(im)


def test_rgb_uint8_unchanged():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out, notes = to_rgb_uint8(rgb)
    assert notes == () and np.array_equal(out, rgb)


def test_greyscale_is_replicated():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out, notes = to_rgb_uint8(grey)
    assert out.shape == (3, 4, 3) and np.array_equal(out[..., 1], grey)
    assert any("greyscale" in n for n in notes)


def test_16bit_is_stretched_min_max():
    img = np.array([[1000, 2000], [3000, 5000]], dtype=np.uint16)
    out, notes = to_rgb_uint8(img)
    assert out[0, 0, 0] == 0 and out[1, 1, 0] == 255 and out[0, 1, 0] == 64
    assert any("uint16" in n for n in notes)


def test_float_unit_range_scaled_and_constant_is_zero():
    out, _ = to_rgb_uint8(np.full((2, 2), 0.5, np.float32))
    assert (out == 128).all()
    out, _ = to_rgb_uint8(np.full((2, 2), 7, np.int32))
    assert (out == 0).all()


def test_rgba_composited_over_black():
    rgba = np.zeros((1, 2, 4), np.uint8)
    rgba[0, 0] = [200, 100, 50, 255]
    rgba[0, 1] = [200, 100, 50, 0]
    out, notes = to_rgb_uint8(rgba)
    assert out[0, 0].tolist() == [200, 100, 50] and out[0, 1].tolist() == [0, 0, 0]
    assert any("alpha" in n for n in notes)


def test_bool_and_bad_shapes():
    out, _ = to_rgb_uint8(np.eye(2, dtype=bool))
    assert out[0, 0, 0] == 255 and out[0, 1, 0] == 0
    with pytest.raises(BadInputError):
        to_rgb_uint8(np.zeros((2, 2, 5), np.uint8))
    with pytest.raises(BadInputError):
        to_rgb_uint8(np.zeros((2, 2, 2, 2), np.uint8))


def test_real_jpeg_is_copied_byte_for_byte(oxford_dev):
    path = oxford_dev / "images" / "Bengal_63.jpg"
    img = load_canonical_image(path)
    assert img.jpeg == path.read_bytes() and img.notes == ()
    assert img.size_hw == (375, 500)


def test_png_and_gif_named_jpg(tmp_path):
    rgb = np.zeros((8, 10, 3), np.uint8)
    rgb[..., 0] = np.arange(10) * 20
    rgb[..., 2] = 90
    png = _save(Image.fromarray(rgb), tmp_path / "a.jpg", "PNG")
    img = load_canonical_image(png)
    assert "PNG named .jpg" in img.notes and img.size_hw == (8, 10)
    assert np.abs(_decode_jpeg(img.jpeg).astype(int) - rgb).mean() < 6
    gif = _save(Image.fromarray(rgb).convert("P"), tmp_path / "b.jpg", "GIF")
    assert "GIF named .jpg" in load_canonical_image(gif).notes


def test_rgba_png_16bit_and_grey(tmp_path):
    rgba = np.full((4, 4, 4), 255, np.uint8)
    p = _save(Image.fromarray(rgba, "RGBA"), tmp_path / "rgba.png", "PNG")
    assert "alpha composited over black" in load_canonical_image(p).notes
    deep = np.arange(16, dtype=np.uint16).reshape(4, 4) * 1000
    p = _save(Image.fromarray(deep), tmp_path / "deep.png", "PNG")
    img = load_canonical_image(p)
    assert any("stretched" in n for n in img.notes)
    p = _save(Image.fromarray(np.zeros((4, 4), np.uint8)), tmp_path / "g.jpg", "JPEG")
    assert "greyscale replicated to RGB" in load_canonical_image(p).notes


def test_tiff_is_read_with_tifffile(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "t.tif", np.full((3, 5, 3), 9, np.uint16))
    img = load_canonical_image(tmp_path / "t.tif")
    assert img.size_hw == (3, 5)


def test_truncated_corrupt_missing(tmp_path, oxford_dev):
    data = (oxford_dev / "images" / "Bengal_63.jpg").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError, match="truncated"):
        load_canonical_image(tmp_path / "trunc.jpg")
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    with pytest.raises(BadInputError, match="not a readable image"):
        load_canonical_image(tmp_path / "junk.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(BadInputError, match="empty"):
        load_canonical_image(tmp_path / "empty.png")
    with pytest.raises(BadInputError, match="not found"):
        load_canonical_image(tmp_path / "missing.jpg")


def test_exif_rotation_is_reencoded(tmp_path):
    img = Image.fromarray(np.zeros((4, 6, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(tmp_path / "rot.jpg", exif=exif)
    out = load_canonical_image(tmp_path / "rot.jpg")
    assert out.size_hw == (4, 6) and out.jpeg != (tmp_path / "rot.jpg").read_bytes()


def test_sniff_and_decode():
    assert sniff_format(b"GIF89a....") == "GIF"
    assert sniff_format(b"\x89PNG\r\n\x1a\n") == "PNG"
    assert sniff_format(b"xx") == "?"
    with pytest.raises(BadInputError):
        decode_image(b"II*\x00garbage")


@settings(max_examples=60, deadline=None)
@given(
    img=hnp.arrays(
        st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_]),
        st.tuples(st.integers(1, 6), st.integers(1, 6))
        | st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 4)),
    )
)
def test_any_numeric_image_becomes_rgb_uint8(img):
    out, notes = to_rgb_uint8(img)
    assert out.dtype == np.uint8 and out.shape == (*img.shape[:2], 3)
    assert out.flags["C_CONTIGUOUS"] and isinstance(notes, tuple)


def test_cmyk_jpeg_is_converted_not_read_as_rgba(tmp_path):
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[..., 1] = 200
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", "JPEG", quality=100)
    img = load_canonical_image(tmp_path / "c.jpg")
    out = _decode_jpeg(img.jpeg)
    assert np.abs(out.astype(int) - rgb).max() < 12
    assert not any("alpha" in n for n in img.notes)
    assert "CMYK JPEG re-encoded as RGB" in img.notes
