"""What a job will cost, estimated from its spec alone (torch-free): images x model size x analysis.

The API refuses a job whose estimate exceeds its budget before anything is queued, and a worker
may derive its time limits from the same number. The unit is the GFLOP (10^9 floating-point
operations, a multiply-add counting two): `JobCost.gflop` is the whole job's estimated compute,
`JobCost.seconds(gflops)` the time it takes at a sustained rate (about 50 GFLOP/s for a 2-core
CPU, tens of thousands for a data-centre GPU).

The estimate is deliberately coarse (within a small factor): a transformer block costs
24·T·d² + 4·T²·d per image (T tokens, width d), and each kind counts its forward-pass
equivalents per image, a backward pass counting two. A hub id or a folder, whose size the API
cannot see, is priced as ViT-Base at 224 px.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from vitscope.contracts.archives import MAX_ZIP_MEMBERS
from vitscope.contracts.datasets import DEFAULT_LAYOUT, parse_dataset_spec, parse_layout
from vitscope.contracts.kinds.head_pruning import MODES
from vitscope.contracts.specs import IMGFOCUS, parse_model_spec


class Geometry(NamedTuple):
    """What the cost of a ViT depends on: blocks, width, heads, input side and patch side (pixels)."""

    layers: int
    width: int
    heads: int
    image: int
    patch: int
    prefix: int = 1

    def tokens(self, image_size: int | None = None) -> int:
        """Tokens of one image at `image_size` pixels a side (default: the model's own): patches and prefix."""
        side = (image_size or self.image) // self.patch
        return side * side + self.prefix


_SIZES = {
    "micro": Geometry(2, 64, 4, 32, 8),
    "tiny": Geometry(12, 192, 3, 224, 16),
    "small": Geometry(12, 384, 6, 224, 16),
    "base": Geometry(12, 768, 12, 224, 16),
}
_DINO_PATCH = {"micro": 8, "tiny": 14, "small": 14, "base": 14}
DEMO = Geometry(6, 192, 6, 96, 8)
UNKNOWN = _SIZES["base"]
"""A hub id or a folder: priced as ViT-Base at 224 px."""

ONE_IMAGE = ("head-detail", "head-pruning")
"""Kinds that analyse one image of their inputs (`params.image`)."""
SCANPATH_STEP_GFLOP = 0.0001
"""One decoding step of the OAT model for one object (d=256, 4+4 layers, cached decoding)."""


@dataclass(frozen=True)
class JobCost:
    """A job's estimated compute: `images` inputs (scenes for scanpaths), `passes` forward-pass
    equivalents per image, `gflop_per_pass` per image and pass, and `extra_gflop` of work that
    does not scale with the images (the patterns autoencoder). All in GFLOP (10^9 operations)."""

    images: int
    passes: float
    gflop_per_pass: float
    extra_gflop: float = 0.0

    @property
    def gflop(self) -> float:
        """The whole job's estimated compute in GFLOP."""
        return self.images * self.passes * self.gflop_per_pass + self.extra_gflop

    def seconds(self, gflops: float) -> float:
        """Estimated run time in seconds at a sustained `gflops` (GFLOP per second)."""
        return self.gflop / gflops


def model_geometry(model: str) -> Geometry:
    """Return the geometry a model spec stands for (ViT-Base for a hub id or a folder)."""
    return known_geometry(model) or UNKNOWN


def known_geometry(model: str) -> Geometry | None:
    """Return the geometry of a model spec vitscope knows without loading it (the demo, the offline
    real backbone, random configs), None for a hub id or a folder."""
    parsed = parse_model_spec(model, check_folder=False)
    if parsed.kind == "demo":
        return DEMO
    if parsed.kind == "imgfocus" or parsed.name == IMGFOCUS:
        return Geometry(12, 384, 6, 224, 14)
    if parsed.kind == "random" and parsed.size in _SIZES and parsed.family is not None:
        size = _SIZES[parsed.size]
        if parsed.family.startswith("dinov2"):
            prefix = 5 if parsed.family.endswith("registers") else 1
            return size._replace(patch=_DINO_PATCH[parsed.size], prefix=prefix)
        return size._replace(prefix=2 if parsed.family == "deit-distilled" else 1)
    return None


def pass_gflop(geometry: Geometry, image_size: int | None = None) -> float:
    """GFLOP of one forward pass of one image (24·T·d² + 4·T²·d per block)."""
    tokens = geometry.tokens(image_size)
    d = geometry.width
    return geometry.layers * (24 * tokens * d * d + 4 * tokens * tokens * d) / 1e9


def input_count(inputs: dict[str, Any], zip_images: int | None = None) -> int:
    """The number of images (or scenes) a job's inputs hold; a zip counts `zip_images` (default: the most a zip may hold)."""
    if inputs.get("dataset"):
        return parse_dataset_spec(str(inputs["dataset"])).n
    if inputs.get("images"):
        return len(inputs["images"])
    return zip_images if zip_images is not None else MAX_ZIP_MEMBERS


def estimate_cost(spec: Any, zip_images: int | None = None) -> JobCost:
    """Estimate a normalized job's compute (a `JobSpec` or its JSON dict); see the module docstring.

    `zip_images` is the image count of the job's uploaded zip when it has one.
    """
    raw = spec if isinstance(spec, dict) else spec.model_dump(mode="json")
    kind, params = str(raw["kind"]), dict(raw.get("params") or {})
    inputs = dict(raw["inputs"])
    # the head page's light kinds look at one image of their inputs, whatever the inputs hold
    images = 1 if kind in ONE_IMAGE else input_count(inputs, zip_images)
    geometry = model_geometry(str(raw["model"]))
    per_pass = pass_gflop(geometry, params.get("image_size"))
    if kind == "scanpath":
        params["objects"] = _scene_objects(params, inputs)
    passes, extra = _passes(kind, params, geometry, images, per_pass)
    return JobCost(images, passes, per_pass, extra)


def _passes(
    kind: str, params: dict[str, Any], g: Geometry, images: int, per_pass: float
) -> tuple[float, float]:
    """Forward-pass equivalents per image and the GFLOP that do not scale with the images."""
    if kind == "head-pruning":  # the clean pass (mode `none`) and the other modes resumed at the head's layer
        return 1 + (len(MODES) - 1) * 0.5, 0.0
    if kind == "head-importance":
        # one ablated copy per head, resumed from its layer: on average (L + 1) / 2L of a pass
        ablations = g.heads * (g.layers + 1) / 2
        return 1 + ablations + (3 if params.get("taylor", True) else 0), 0.0
    if kind == "attention-patterns":
        maps = int(params.get("maps_per_head", 64)) * g.layers * g.heads * 2
        side = (params.get("image_size") or g.image) // g.patch
        width = int(params.get("ae_width", 16))
        # four 3x3 conv layers, forward and backward, per map and epoch
        per_map = 3 * 4 * 2 * 9 * width * width * side * side / 1e9
        return 1.5, maps * int(params.get("epochs", 30)) * per_map
    if kind == "eigencam":
        # one pass, and with baselines rollout's captured attention and Grad-CAM's backward pass
        per_image = 1.0 + (4 if params.get("baselines", True) else 0)
        passes, extra = per_image, 0.0
        if params.get("sanity_check", True):
            passes += per_image  # an independent random copy maps every image the same way
            sample = int(params.get("sanity_images", 8))
            if params.get("sanity_reference", "fixed") == "job":
                extra = min(sample, images) * (g.layers + 1) * per_pass
            else:  # the fixed reference sample: its own maps, trained and random, then the cascade
                extra = sample * (g.layers + 1 + passes) * per_pass
        if params.get("faithfulness", True):
            passes += _faithfulness_passes(params, g)
        return passes, extra
    if kind == "scanpath":
        objects = int(params["objects"])
        steps = (int(params.get("samples", 100)) + 1) * int(params.get("max_length", 40))
        return 1 + steps * objects * SCANPATH_STEP_GFLOP / max(per_pass, 1e-9), 0.0
    return 1.5, 0.0  # attention-profile and any kind that streams one captured pass


def _faithfulness_passes(params: dict[str, Any], g: Geometry) -> float:
    """Deletion and insertion per image: the clean image and its baseline, then one perturbed copy per
    map (each Eigen-CAM layer, rollout and Grad-CAM, a random map, a centre prior), curve and inner step."""
    layers = len(params["layers"]) if params.get("layers") else g.layers
    maps = layers + (2 if params.get("baselines", True) else 0) + 2
    patches = ((params.get("image_size") or g.image) // g.patch) ** 2
    steps = min(int(params.get("faithfulness_steps", 8)), patches)
    return 2 + 2 * maps * (steps - 1)


def _scene_objects(params: dict[str, Any], inputs: dict[str, Any]) -> int:
    if params.get("boxes"):
        return len(params["boxes"])
    dataset = parse_dataset_spec(str(inputs["dataset"])) if inputs.get("dataset") else None
    return parse_layout(dataset.layout if dataset else DEFAULT_LAYOUT).n_objects
