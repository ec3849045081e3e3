"""Frame sources: folders, multi-page TIFFs and video files, read lazily."""

from __future__ import annotations

import numpy as np
import pytest

from sam_pets.predict.frames import FrameReadError, ImageFolderFrames, TiffFrames, open_frames


def test_folder_in_natural_order(tmp_path):
    from PIL import Image

    for t in (10, 2, 1):
        Image.fromarray(np.full((8, 6, 3), t, np.uint8)).save(tmp_path / f"frame_{t}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    src = open_frames(tmp_path)
    assert isinstance(src, ImageFolderFrames) and len(src) == 3
    assert [int(src[i][0, 0, 0]) for i in range(3)] == [1, 2, 10]


def test_tiff_stack_keeps_16_bit(tmp_path):
    import tifffile

    stack = np.arange(5 * 6 * 7, dtype=np.uint16).reshape(5, 6, 7) * 100
    tifffile.imwrite(tmp_path / "s.tif", stack)
    src = open_frames(tmp_path / "s.tif")
    assert isinstance(src, TiffFrames) and len(src) == 5
    assert src[3].dtype == np.uint16
    np.testing.assert_array_equal(src[3], stack[3])


def test_video_file_decoded_in_order_and_back(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for t in range(6):
            img = np.full((48, 64, 3), 40 * t, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    src = open_frames(path)
    assert len(src) == 6
    means = [float(src[t].mean()) for t in range(6)]
    assert means == sorted(means) and src[5].shape == (48, 64, 3)
    assert abs(float(src[1].mean()) - means[1]) < 1e-6  # going back decodes again


def test_bad_sources_name_the_file(tmp_path):
    with pytest.raises(FrameReadError, match="not found"):
        open_frames(tmp_path / "nope.mp4")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(FrameReadError, match="unknown kind"):
        open_frames(tmp_path / "x.txt")
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(FrameReadError, match="bad.mp4"):
        open_frames(tmp_path / "bad.mp4")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FrameReadError, match="no images"):
        open_frames(empty)
