from collections import Counter

import pytest

from sam_pets.data.split import stratified_split, stratified_subset, stratum_key, tiny_subset


def test_split_is_seeded_and_stratified():
    keys = ["a"] * 50 + ["b"] * 30 + ["c"] * 3 + ["d"] * 1
    s1 = stratified_split(keys, 0.2, seed=0)
    assert s1 == stratified_split(keys, 0.2, seed=0)
    assert s1 != stratified_split(keys, 0.2, seed=1)
    val = Counter(k for k, s in zip(keys, s1, strict=True) if s == "val")
    assert sum(val.values()) == round(84 * 0.2)
    assert val["a"] == 10 and val["b"] == 6


def test_split_edge_cases():
    assert stratified_split([], 0.2) == []
    assert stratified_split(["x"], 0.2) == ["train"]
    assert stratified_split(["x", "x"], 0.01).count("val") == 1
    assert stratified_split(["x", "y"], 0.99).count("train") == 1
    assert stratified_split(["x"] * 4, 0.0) == ["train"] * 4
    with pytest.raises(ValueError):
        stratified_split(["x"], 1.5)


def test_tiny_and_subset_cover_strata():
    keys = ["a"] * 10 + ["b"] * 10 + ["c"]
    names = [f"n{i:02d}" for i in range(21)]
    tiny = tiny_subset(names, keys, 4)
    assert len(tiny) == 4 and "n20" in tiny
    sub = stratified_subset(keys, 3, seed=0)
    assert len(sub) == 3 and len({keys[i] for i in sub}) >= 2
    assert stratified_subset(keys, 100) == list(range(21))


def test_stratum_key():
    assert stratum_key({"breed": "pug", "species": "dog"}) == "pug"
    assert stratum_key({"objects": [{"category": "car"}]}) == "car"
    assert stratum_key({}) == ""


def test_inverse_frequency_weights():
    from sam_pets.data.split import inverse_frequency_weights

    w = inverse_frequency_weights(["a", "a", "a", "b"])
    assert w.sum() == pytest.approx(1.0)
    assert w[:3].sum() == pytest.approx(0.5) and w[3] == pytest.approx(0.5)
    assert len(inverse_frequency_weights([])) == 0
