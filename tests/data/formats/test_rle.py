import numpy as np

from sam_pets.data.formats.rle import bbox_xywh, decode_rle, encode_rle, rle_area, rle_bbox


def test_rle_round_trip_and_stats():
    mask = np.zeros((7, 9), bool)
    mask[2:5, 3:8] = True
    rle = encode_rle(mask)
    assert isinstance(rle["counts"], str) and rle["size"] == [7, 9]
    out = decode_rle(rle)
    assert np.array_equal(out, mask) and out.flags["C_CONTIGUOUS"]
    assert rle_area(rle) == 15
    assert rle_bbox(rle) == bbox_xywh(mask) == [3.0, 2.0, 5.0, 3.0]
    assert bbox_xywh(np.zeros((2, 2), bool)) == [0.0, 0.0, 0.0, 0.0]


def test_uncompressed_rle():
    assert decode_rle({"size": [2, 3], "counts": [1, 2, 3]}).sum() == 2
