import pytest

from sam_pets.model.config import Sam2Config, config_names, get_config


def test_aliases_resolve_to_meta_names():
    assert get_config("tiny").name == "sam2.1_hiera_tiny"
    assert get_config("base_plus").name == "sam2.1_hiera_base_plus"
    assert get_config("sam2_hiera_large").version == "2.0"
    assert get_config("sam2.1_hiera_l.yaml").name == "sam2.1_hiera_large"


def test_unknown_config_lists_known_names():
    with pytest.raises(KeyError, match="known: .*tiny"):
        get_config("huge")


def test_round_trip_dict():
    for name in config_names():
        cfg = get_config(name)
        assert Sam2Config.from_dict(cfg.to_dict()) == cfg


def test_unknown_keys_are_an_error():
    d = get_config("test").to_dict()
    d["flux_capacitor"] = 1
    with pytest.raises(TypeError):
        Sam2Config.from_dict(d)


def test_invalid_image_size_rejected():
    with pytest.raises(ValueError, match="image_size"):
        get_config("tiny").replace(image_size=1000)


def test_input_size_configurable():
    cfg = get_config("tiny").replace(image_size=512)
    assert cfg.embedding_size == 32 and cfg.mask_size == 128
