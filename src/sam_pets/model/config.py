"""Model configurations: frozen dataclasses and the registry of named variants.

The released SAM 2 / SAM 2.1 checkpoints differ only in the Hiera trunk; the neck, prompt
encoder and mask decoder are shared.  Extra variants (``test``, ``cpu_small``) are small
models for fast tests and for training from scratch on a CPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HieraConfig:
    """Hiera trunk hyper-parameters (names follow Meta's ``Hiera`` constructor)."""

    embed_dim: int = 96
    num_heads: int = 1
    stages: tuple[int, ...] = (1, 2, 7, 2)
    global_att_blocks: tuple[int, ...] = (5, 7, 9)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (7, 7)
    q_pool: int = 3
    q_stride: tuple[int, int] = (2, 2)
    dim_mul: float = 2.0
    head_mul: float = 2.0
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.0

    @property
    def depth(self) -> int:
        """Total number of blocks."""
        return sum(self.stages)

    @property
    def stage_ends(self) -> tuple[int, ...]:
        """Index of the last block of each stage."""
        return tuple(sum(self.stages[: i + 1]) - 1 for i in range(len(self.stages)))

    @property
    def stage_dims(self) -> tuple[int, ...]:
        """Channel width of each stage's output."""
        return tuple(int(self.embed_dim * self.dim_mul**i) for i in range(len(self.stages)))


@dataclass(frozen=True)
class DecoderConfig:
    """Prompt encoder and mask decoder widths (SAM 2 uses the defaults for every model)."""

    dim: int = 256
    num_heads: int = 8
    mlp_dim: int = 2048
    depth: int = 2
    attention_downsample_rate: int = 2
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    mask_in_chans: int = 16
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98


@dataclass(frozen=True)
class Sam2Config:
    """A whole SAM 2 image model.

    Attributes:
        name: Canonical variant name (Meta's release name where there is one).
        trunk: Hiera trunk configuration.
        decoder: Prompt encoder / mask decoder configuration.
        image_size: Side of the square model input in pixels (1024 for Meta's weights).
        backbone_stride: Stride of the image embedding (16: 1024 px -> 64x64).
        version: "2.1" or "2.0"; only changes the video-only checkpoint keys.
    """

    name: str
    trunk: HieraConfig = field(default_factory=HieraConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    image_size: int = 1024
    backbone_stride: int = 16
    version: str = "2.1"

    def __post_init__(self) -> None:
        if self.version not in ("2.0", "2.1"):
            raise ValueError(f"version must be '2.0' or '2.1', got {self.version!r}")
        if len(self.trunk.stages) != 4 or self.trunk.q_pool != 3:
            raise ValueError("SAM 2 image path needs a 4-stage Hiera trunk with q_pool=3")
        tokens = self.image_size // 4
        if self.image_size % 32 or tokens % self.trunk.window_spec[0]:
            raise ValueError(
                f"image_size {self.image_size} must be a multiple of 32 and image_size/4 a "
                f"multiple of window_spec[0]={self.trunk.window_spec[0]}"
            )
        if self.image_size // self.backbone_stride * self.backbone_stride != self.image_size:
            raise ValueError(f"image_size {self.image_size} not divisible by backbone_stride")

    @property
    def embedding_size(self) -> int:
        """Side of the low-resolution image embedding (64 for 1024 input)."""
        return self.image_size // self.backbone_stride

    @property
    def mask_size(self) -> int:
        """Side of the low-resolution mask logits (256 for 1024 input)."""
        return 4 * self.embedding_size

    def replace(self, **changes) -> Sam2Config:
        """Return a copy with some top-level fields changed (e.g. ``image_size``)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Serialise to plain python types (stored inside sam-pets checkpoints)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Sam2Config:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        d = dict(d)
        trunk = HieraConfig(**{k: _tuplify(v) for k, v in d.pop("trunk", {}).items()})
        decoder = DecoderConfig(**d.pop("decoder", {}))
        return cls(trunk=trunk, decoder=decoder, **d)


def _tuplify(v):
    return tuple(v) if isinstance(v, list) else v


_TINY = HieraConfig()
_SMALL = HieraConfig(stages=(1, 2, 11, 2), global_att_blocks=(7, 10, 13))
_BASE_PLUS = HieraConfig(
    embed_dim=112,
    num_heads=2,
    stages=(2, 3, 16, 3),
    global_att_blocks=(12, 16, 20),
    window_pos_embed_bkg_spatial_size=(14, 14),
)
_LARGE = HieraConfig(
    embed_dim=144,
    num_heads=2,
    stages=(2, 6, 36, 4),
    global_att_blocks=(23, 33, 43),
    window_spec=(8, 4, 16, 8),
)

VARIANTS: dict[str, Sam2Config] = {}
for _size, _trunk in (
    ("tiny", _TINY),
    ("small", _SMALL),
    ("base_plus", _BASE_PLUS),
    ("large", _LARGE),
):
    VARIANTS[f"sam2.1_hiera_{_size}"] = Sam2Config(f"sam2.1_hiera_{_size}", _trunk)
    VARIANTS[f"sam2_hiera_{_size}"] = Sam2Config(f"sam2_hiera_{_size}", _trunk, version="2.0")

# Tiny model for unit tests: every code path of the real models (q-pool, windows with
# padding, global blocks, high-res skips) at a fraction of the cost.
VARIANTS["test"] = Sam2Config(
    "test",
    HieraConfig(
        embed_dim=8,
        num_heads=1,
        stages=(1, 1, 2, 1),
        global_att_blocks=(3,),
        window_spec=(8, 4, 6, 3),
        window_pos_embed_bkg_spatial_size=(4, 4),
    ),
    DecoderConfig(dim=32, num_heads=2, mlp_dim=64, iou_head_hidden_dim=32, mask_in_chans=8),
    image_size=128,
)
# Small model for training from scratch on a CPU (512 px input, 32x32 embedding).
VARIANTS["cpu_small"] = Sam2Config(
    "cpu_small",
    HieraConfig(
        embed_dim=48,
        num_heads=1,
        stages=(1, 2, 4, 1),
        global_att_blocks=(4, 6),
        window_spec=(8, 4, 8, 4),
        window_pos_embed_bkg_spatial_size=(7, 7),
    ),
    DecoderConfig(dim=128, num_heads=4, mlp_dim=1024, iou_head_hidden_dim=128, mask_in_chans=16),
    image_size=512,
)

ALIASES: dict[str, str] = {
    "tiny": "sam2.1_hiera_tiny",
    "small": "sam2.1_hiera_small",
    "base_plus": "sam2.1_hiera_base_plus",
    "base+": "sam2.1_hiera_base_plus",
    "large": "sam2.1_hiera_large",
    "sam2.1_hiera_t": "sam2.1_hiera_tiny",
    "sam2.1_hiera_s": "sam2.1_hiera_small",
    "sam2.1_hiera_b+": "sam2.1_hiera_base_plus",
    "sam2.1_hiera_l": "sam2.1_hiera_large",
    "sam2_hiera_t": "sam2_hiera_tiny",
    "sam2_hiera_s": "sam2_hiera_small",
    "sam2_hiera_b+": "sam2_hiera_base_plus",
    "sam2_hiera_l": "sam2_hiera_large",
}


def get_config(name: str) -> Sam2Config:
    """Look up a variant by its name or alias (``"tiny"``, ``"sam2_hiera_large"``, ``"test"``)."""
    key = name[:-5] if name.endswith(".yaml") else name
    key = ALIASES.get(key, key)
    if key not in VARIANTS:
        known = ", ".join(sorted(set(VARIANTS) | set(ALIASES)))
        raise KeyError(f"unknown model config {name!r}; known: {known}")
    return VARIANTS[key]


def config_names() -> list[str]:
    """All canonical variant names."""
    return list(VARIANTS)
