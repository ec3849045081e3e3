"""Embedding and click-to-mask latency: sam-pets vs Meta's SAM2ImagePredictor.

Same random weights in both (Meta's model, randomised, copied into ours), fp32, same image.
Runs are interleaved (Meta, ours, Meta, ours...) so that load on a shared host hits both alike.

    python benchmarks/bench_predictor.py [--config tiny] [--image PATH] [--repeats 5] [--clicks 30]
        [--large 4000x3000]

The refinement row times a second click (a negative point, with the first click's best
low-res logits as mask prompt, one mask), as the annotator sends after the first click.
The big-photo row times one click on an upscaled copy of the image (masks returned at its size:
float32 from Meta's predictor, bool from ours, each API's own output).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, command, cpu_bf16, machine, write_snippet  # noqa: E402

META_YAML = {
    "tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}


def build(config: str, device: str):
    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    from sam_pets.model import build_model
    from sam_pets.predict import ImagePredictor

    torch.manual_seed(0)
    meta = build_sam2(META_YAML[config], None, device=device, mode="eval")
    with torch.no_grad():
        for p in meta.parameters():
            p.normal_(0.0, 0.05)
    ours = build_model(config)
    ours.load_state_dict({k: v for k, v in meta.state_dict().items() if k in ours.state_dict()})
    return SAM2ImagePredictor(meta), ImagePredictor(ours, device=device, precision="fp32")


def timed(fn, sync) -> float:
    sync()
    t = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="tiny", choices=sorted(META_YAML))
    ap.add_argument("--image", default=str(SHARED / "data/oxford_pets_dev/images/Bengal_63.jpg"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--clicks", type=int, default=30)
    ap.add_argument(
        "--large",
        default="4000x3000",
        help="WxH of an upscaled copy of the image for a big-photo click row ('' to skip)",
    )
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    from PIL import Image

    image = np.asarray(Image.open(args.image).convert("RGB"))
    h, w = image.shape[:2]
    meta, ours = build(args.config, args.device)
    dev = torch.device(args.device)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    pts, lab = np.array([[w * 0.5, h * 0.5]], dtype=np.float32), np.array([1])

    def meta_embed() -> None:
        with torch.inference_mode():
            meta.set_image(image)

    def ours_embed() -> None:
        ours.set_features(ours.embed(image), (h, w))  # no cache: a real embedding each time

    def meta_click() -> None:
        with torch.inference_mode():
            meta.predict(point_coords=pts, point_labels=lab, multimask_output=True)

    def ours_click() -> None:
        ours.predict(pts, lab, multimask=True)

    # a refinement click: a second (negative) point with the first click's best low-res
    # logits as mask prompt, one mask, as an annotator sends after the first click
    pts2 = np.array([[w * 0.5, h * 0.5], [w * 0.15, h * 0.15]], dtype=np.float32)
    lab2 = np.array([1, 0])

    def meta_refine() -> None:
        with torch.inference_mode():
            meta.predict(
                point_coords=pts2, point_labels=lab2, mask_input=prev, multimask_output=False
            )

    def ours_refine() -> None:
        ours.predict(pts2, lab2, mask_logits=prev, multimask=False)

    # sam-pets under bf16 autocast (the Annotator's Precision choice): the same weights
    from sam_pets.predict import ImagePredictor

    ours16 = ImagePredictor(ours.model, device=args.device, precision="bf16")

    def ours16_embed() -> None:
        ours16.set_features(ours16.embed(image), (h, w))

    meta_embed(), ours_embed(), ours16_embed()  # warm-up
    emb = {"meta": [], "ours": [], "ours16": []}
    for _ in range(args.repeats):
        emb["meta"].append(timed(meta_embed, sync))
        emb["ours"].append(timed(ours_embed, sync))
        emb["ours16"].append(timed(ours16_embed, sync))
    agree16 = float((ours16.predict(pts, lab).masks == ours.predict(pts, lab).masks).mean())
    for _ in range(5):
        meta_click(), ours_click()
    clk = {"meta": [], "ours": []}
    for _ in range(args.clicks):
        clk["meta"].append(timed(meta_click, sync))
        clk["ours"].append(timed(ours_click, sync))
    first = ours.predict(pts, lab, multimask=True)
    prev = first.low_res_logits[int(np.argmax(first.scores))][None]  # (1, s, s)
    meta_refine(), ours_refine()
    ref = {"meta": [], "ours": []}
    for _ in range(args.clicks):
        ref["meta"].append(timed(meta_refine, sync))
        ref["ours"].append(timed(ours_refine, sync))
    big = {"meta": [], "ours": []}
    big_agree = None
    if args.large:
        # a phone-camera-sized photo: the masks are upsampled to 12 MP on every click
        bw, bh = (int(v) for v in args.large.lower().split("x"))
        large = np.asarray(Image.fromarray(image).resize((bw, bh), Image.BILINEAR))
        with torch.inference_mode():
            meta.set_image(large)
        ours.set_image(large)
        big_pts = pts * np.array([bw / w, bh / h], dtype=np.float32)

        def meta_big() -> None:
            with torch.inference_mode():
                meta.predict(point_coords=big_pts, point_labels=lab, multimask_output=True)

        def ours_big() -> None:
            ours.predict(big_pts, lab, multimask=True)

        with torch.inference_mode():
            m_big = meta.predict(point_coords=big_pts, point_labels=lab, multimask_output=True)[0]
        big_agree = float((ours.predict(big_pts, lab).masks == m_big.astype(bool)).mean())
        for _ in range(max(5, args.clicks // 3)):
            big["meta"].append(timed(meta_big, sync))
            big["ours"].append(timed(ours_big, sync))
        meta_embed()
        ours.set_image(image)
    med = {
        k: {n: statistics.median(v) * 1e3 for n, v in d.items() if v}
        for k, d in (("embed", emb), ("click", clk), ("refine", ref), ("big", big))
    }
    # Outputs agree (same weights): report the mask agreement as a sanity check.
    with torch.inference_mode():
        m_masks, _, _ = meta.predict(point_coords=pts, point_labels=lab, multimask_output=True)
    agree = float((ours.predict(pts, lab).masks == m_masks.astype(bool)).mean())
    with torch.inference_mode():
        m_ref, _, _ = meta.predict(
            point_coords=pts2, point_labels=lab2, mask_input=prev, multimask_output=False
        )
    ours_ref = ours.predict(pts2, lab2, mask_logits=prev, multimask=False).masks
    ref_agree = float((ours_ref == m_ref.astype(bool)).mean())
    rows = [
        f"| image embedding (`set_image`) | {med['embed']['meta']:.1f} | {med['embed']['ours']:.1f}"
        f" | {med['embed']['ours'] / med['embed']['meta']:.3f} | <= 0.80 |",
        f"| click-to-mask (1 positive click, multimask, upsample + threshold) | "
        f"{med['click']['meta']:.2f} | {med['click']['ours']:.2f} | "
        f"{med['click']['ours'] / med['click']['meta']:.3f} | <= 0.40 |",
        f"| refinement click (2nd point + previous logits as mask prompt, 1 mask) | "
        f"{med['refine']['meta']:.2f} | {med['refine']['ours']:.2f} | "
        f"{med['refine']['ours'] / med['refine']['meta']:.3f} | - |",
    ]
    rows.append(
        f"| image embedding, sam-pets in bf16 (autocast; {cpu_bf16()}) | "
        f"{med['embed']['meta']:.1f} | {med['embed']['ours16']:.1f} | "
        f"{med['embed']['ours16'] / med['embed']['meta']:.3f} | - |"
    )
    if med["big"]:
        rows.append(
            f"| click-to-mask on a {args.large} copy of the photo (masks upsampled to it) | "
            f"{med['big']['meta']:.2f} | {med['big']['ours']:.2f} | "
            f"{med['big']['ours'] / med['big']['meta']:.3f} | - |"
        )
    text = "\n".join(
        [
            f"## Predictor latency, {args.config}, fp32, {args.device}",
            "",
            f"- Machine: {machine()}",
            f"- Command: `{command()}`",
            f"- Image: `{Path(args.image).name}` ({w}x{h}); {args.repeats} embeddings and "
            f"{args.clicks} clicks per side after warm-up, interleaved; medians in ms."
            + (f" Big-photo row: {len(big['ours'])} clicks per side." if big["ours"] else ""),
            f"- Mask agreement with Meta on the timed click: {agree * 100:.3f} % of pixels; "
            f"on the refinement click: {ref_agree * 100:.3f} %"
            + (f"; on the big photo: {big_agree * 100:.4f} %." if big_agree is not None else ".")
            + f" The bf16 row's click mask equals fp32's on {agree16 * 100:.3f} % of pixels.",
            "",
            "| step | Meta sam2 1.1.0 (ms) | sam-pets (ms) | ratio | goal |",
            "| --- | ---: | ---: | ---: | ---: |",
            *rows,
        ]
    )
    print(text)
    if not args.no_write:
        suffix = (
            "" if args.device == "cpu" and args.config == "tiny" else f"_{args.config}_{dev.type}"
        )
        write_snippet("predictor" + suffix, text)


if __name__ == "__main__":
    main()
