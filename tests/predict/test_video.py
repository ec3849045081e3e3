"""Video / stack propagation: parity with Meta's SAM2VideoPredictor and the predictor's rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam_pets.model.memory import Sam2Memory, rope_angles, sine_pe_1d, sine_pe_2d


def _clip(image: np.ndarray, n: int = 8, size=(180, 240)) -> np.ndarray:
    """n frames of a smoothly moving crop of ``image`` (a synthetic pan), uint8 (n, h, w, 3)."""
    h, w = size
    frames = []
    for t in range(n):
        y, x = 20 + 4 * t, 30 + 9 * t
        frames.append(image[y : y + h, x : x + w])
    return np.stack(frames)


# -- the building blocks against their definitions ---------------------------------------------
def test_sine_pe_2d_matches_meta():
    sam2 = pytest.importorskip("sam2")
    from sam2.modeling.position_encoding import PositionEmbeddingSine

    ref = PositionEmbeddingSine(64, warmup_cache=False)(torch.zeros(2, 64, 16, 12))
    ours = sine_pe_2d(16, 12, 64)
    assert ours.shape == (1, 64, 16, 12)
    torch.testing.assert_close(ours.expand(2, -1, -1, -1), ref, rtol=0, atol=1e-6)
    del sam2


def test_sine_pe_1d_and_rope_match_meta():
    pytest.importorskip("sam2")
    from sam2.modeling.position_encoding import apply_rotary_enc, compute_axial_cis
    from sam2.modeling.sam2_utils import get_1d_sine_pe

    pos = torch.tensor([0.0, 1.0, -3.0, 7.0]) / 15
    torch.testing.assert_close(sine_pe_1d(pos, 256), get_1d_sine_pe(pos, 256))
    q = torch.randn(1, 1, 64, 32)
    k = torch.randn(1, 1, 128, 32)  # two frames of memories
    ref_q, ref_k = apply_rotary_enc(q, k, compute_axial_cis(32, 8, 8), repeat_freqs_k=True)
    from sam_pets.model.memory import apply_rope

    cos, sin = rope_angles(32, 8, 8)
    torch.testing.assert_close(apply_rope(q, cos, sin), ref_q, rtol=0, atol=1e-5)
    torch.testing.assert_close(
        apply_rope(k, cos.repeat(2, 1), sin.repeat(2, 1)), ref_k, rtol=0, atol=1e-5
    )


def test_memory_weights_load_strictly_and_name_the_problem():
    from sam_pets.model.convert import video_key_shapes

    for version in ("2.1", "2.0"):
        groups = video_key_shapes(version)
        state = {k: torch.zeros(s) for g in groups.values() for k, s in g.items()}
        mem = Sam2Memory.from_state(state, version)
        assert set(mem.state_dict()) == set(state)
    state = {k: torch.zeros(s) for g in video_key_shapes("2.1").values() for k, s in g.items()}
    state["memory_encoder.out_proj.bias"] = torch.zeros(32)
    with pytest.raises(ValueError, match="wrong shape.*out_proj"):
        Sam2Memory.from_state(state, "2.1")
    del state["no_obj_ptr"]
    with pytest.raises(ValueError, match="missing"):
        Sam2Memory.from_state(state, "2.1")


def test_hugging_face_video_weights_load(tmp_path):
    """A Sam2VideoModel-named safetensors file: its video tensors reach the memory module."""
    import json

    from safetensors.torch import save_file

    from conftest import shared_path
    from sam_pets.model import build_model
    from sam_pets.model.checkpoint import read_checkpoint
    from sam_pets.model.convert import init_video_state

    names = json.loads(shared_path("reference", "sam2.1_meta_to_hf_keys_tiny.json").read_text())
    meta = {**build_model("sam2.1_hiera_tiny", seed=0).state_dict(), **init_video_state("2.1")}
    hf = {names[k]: v.contiguous().clone() for k, v in meta.items()}
    save_file(hf, tmp_path / "model.safetensors")
    ckpt = read_checkpoint(tmp_path / "model.safetensors")
    assert len(ckpt.video_state) == 160
    mem = Sam2Memory.from_state(ckpt.video_state, "2.1")
    ref = init_video_state("2.1")
    for k, v in mem.state_dict().items():
        assert torch.equal(v, ref[k]), k


def test_model_without_video_weights_is_refused(pet_image):
    from sam_pets.model import build_model
    from sam_pets.predict.video import VideoPredictor

    model = build_model("cpu_small")
    model.extra_state = {}
    with pytest.raises(ValueError, match="no video weights"):
        VideoPredictor(model, _clip(pet_image, 2))


# -- parity with Meta's video predictor ------------------------------------------------------
META_CONFIGS = {
    "2.1": ("configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny"),
    "2.0": ("configs/sam2/sam2_hiera_t.yaml", "sam2_hiera_tiny"),
    "2.1-small": ("configs/sam2.1/sam2.1_hiera_s.yaml", "sam2.1_hiera_small"),
    "2.1-base_plus": ("configs/sam2.1/sam2.1_hiera_b+.yaml", "sam2.1_hiera_base_plus"),
    "2.1-large": ("configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large"),
}
SIZE = 256  # model input side: 16 x 16 embeddings keep the test short (any size works)


def _meta_and_ours(version: str = "2.1", seed: int = 0):
    from sam2.build_sam import build_sam2_video_predictor

    from sam_pets.model import build_model
    from sam_pets.model.config import get_config

    torch.manual_seed(seed)
    meta_config, ours_name = META_CONFIGS[version]
    meta = build_sam2_video_predictor(
        meta_config,
        None,
        device="cpu",
        hydra_overrides_extra=[
            "++model.add_all_frames_to_correct_as_cond=true",
            "++model.fill_hole_area=0",
            f"++model.image_size={SIZE}",
        ],
    )
    with torch.no_grad():
        for name, p in meta.named_parameters():
            p.normal_(0.0, 0.05)
            if "output_hypernetworks_mlps" in name and name.endswith("2.weight"):
                p.mul_(20.0)  # masks with edges inside the frame, not all-or-nothing
            if name == "sam_mask_decoder.pred_obj_score_head.layers.2.bias":
                p.fill_(1.0)  # objects mostly present
    ours = build_model(get_config(ours_name).replace(image_size=SIZE))
    state = meta.state_dict()
    ours.load_state_dict({k: v for k, v in state.items() if k in ours.state_dict()}, strict=True)
    ours.extra_state = {k: v for k, v in state.items() if k not in ours.state_dict()}
    return meta.eval(), ours.eval()


def _meta_state(meta, frames, ours_pred, tmp_path):
    """Meta's inference state on the same model inputs as ours (our frame preprocessing)."""
    from PIL import Image

    for t, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / f"{t:05d}.jpg")
    state = meta.init_state(str(tmp_path))
    from sam_pets.predict.video import frame_to_input

    x = torch.cat([frame_to_input(f, ours_pred.size) for f in frames])
    state["images"] = ours_pred.model.normalize(x)
    state["cached_features"] = {}  # init_state embedded frame 0 from its own loading
    return state


def _agree(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a > 0) == (b > 0)).mean())


def _meta_scores(state, t):
    out = []
    for i in range(len(state["obj_ids"])):
        d = state["output_dict_per_obj"][i]
        r = d["cond_frame_outputs"].get(t) or d["non_cond_frame_outputs"].get(t)
        out.append(float(r["object_score_logits"].flatten()[0]))
    return np.asarray(out)


@pytest.mark.parity
@pytest.mark.parametrize(
    "case, version",
    [
        ("frame0_then_correction", "2.1"),
        ("both_ways", "2.1"),
        ("both_ways", "2.0"),
        *(
            pytest.param("frame0_then_correction", v, marks=pytest.mark.slow)
            for v in ("2.1-small", "2.1-base_plus", "2.1-large")
        ),
    ],
)
def test_parity_with_meta_video_predictor(case, version, pet_image, tmp_path):
    """Two objects (a click, a box) on random sam2.1-tiny weights, an 8-frame clip.

    ``frame0_then_correction``: prompts on frame 0, propagation forward, then a correction
    (a positive and a negative click) on frame 5 and propagation again from it.
    ``both_ways``: prompts on frame 4, propagation forward then backward.
    Every returned mask agrees on >= 99.9 % of its pixels, object scores within 1e-4.
    """
    pytest.importorskip("sam2")
    from sam_pets.predict.video import VideoPredictor

    meta, model = _meta_and_ours(version)
    frames = _clip(pet_image)
    ours = VideoPredictor(model, frames)
    state = _meta_state(meta, frames, ours, tmp_path)
    results = []

    def prompt(frame, obj, **kw):
        _, _, m = meta.add_new_points_or_box(
            state,
            frame,
            obj,
            points=kw.get("points_xy"),
            labels=kw.get("labels"),
            box=kw.get("box_xyxy"),
            clear_old_points=kw.get("clear", True),
        )
        _, o = ours.add_points(frame, obj, **kw)
        results.append((f"prompt {frame}/{obj}", m[:, 0].numpy(), o, None, None))

    def propagate(start=None, reverse=False):
        got = {t: (ids, lg) for t, ids, lg in ours.propagate(start, reverse=reverse)}
        seen = []
        for t, ids, m in meta.propagate_in_video(state, start, reverse=reverse):
            assert got[t][0] == list(ids)
            seen.append(t)
            scores = (_meta_scores(state, t), ours.object_scores(t))
            results.append((f"frame {t}", m[:, 0].numpy(), got[t][1], *scores))
        assert sorted(seen) == sorted(got)

    first = 0 if case == "frame0_then_correction" else 4
    prompt(first, 1, points_xy=np.array([[120.0, 90.0]]), labels=[1])
    prompt(first, 2, box_xyxy=np.array([20.0, 10.0, 150.0, 170.0]))
    propagate()
    if case == "frame0_then_correction":
        fix = np.array([[60.0, 150.0], [200.0, 40.0]])
        prompt(5, 1, points_xy=fix, labels=[0, 1], clear=False)
        propagate(start=5)
    else:
        propagate(reverse=True)
    for name, m, o, ms, os_ in results:
        assert m.shape == o.shape, name
        share = _agree(o, m)
        assert share >= 0.999, (name, share)
        if ms is not None:
            np.testing.assert_allclose(os_, ms, atol=1e-4, err_msg=name)
    # the comparison means something only if the masks are neither empty nor full
    fg = np.mean([(o > 0).mean() for _, _, o, _, _ in results])
    assert 0.02 < fg < 0.98, fg


def test_bf16_tracks_as_fp32_does(pet_image):
    """``precision="bf16"`` (autocast, for CPUs with AMX) keeps the masks of fp32."""
    pytest.importorskip("sam2")  # Meta's builder makes the random video weights
    from sam_pets.predict.video import VideoPredictor

    _, model = _meta_and_ours("2.1")
    frames = _clip(pet_image, 5)
    runs = []
    assert VideoPredictor(model, frames).precision == "fp32"  # auto: Meta's results
    for precision in ("fp32", "bf16"):
        pred = VideoPredictor(model, frames, precision=precision)
        assert pred.precision == precision
        dtype = torch.float32 if precision == "fp32" else torch.bfloat16
        assert pred._features(0).feat_s0.dtype == dtype  # the encoder ran in that precision
        _, first = pred.add_points(0, 1, points_xy=np.array([[120.0, 90.0]]), labels=[1])
        pred.add_points(0, 2, box_xyxy=np.array([20.0, 10.0, 150.0, 170.0]))
        out = [first[:1]] + [lg for _, _, lg in pred.propagate()][1:]
        assert all(lg.dtype == np.float32 for lg in out)
        runs.append((out, [pred.object_scores(t) for t in range(len(frames))]))
    (fp32, s32), (bf16, s16) = runs
    for t, (a, b) in enumerate(zip(fp32, bf16, strict=True)):
        assert a.shape == b.shape
        assert _agree(a, b) >= 0.99, t
    np.testing.assert_allclose(np.concatenate(s16), np.concatenate(s32), atol=0.1)
    fg = np.mean([(a > 0).mean() for a in fp32])
    assert 0.02 < fg < 0.98, fg
