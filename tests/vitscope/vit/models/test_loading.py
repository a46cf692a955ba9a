"""Loading by spec, local folders, and the errors a user gets for bad specs."""

import json

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from tests.utils.models import micro, pixels
from vitscope.contracts.errors import UserError
from vitscope.contracts.specs import parse_model_spec
from vitscope.vit.models import load_model


def test_local_folder_round_trip_gives_the_same_model(tmp_path):
    lm = micro("deit-distilled")
    lm.model.save_pretrained(tmp_path, safe_serialization=True)
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "DeiTImageProcessor",
                "image_mean": [0.1, 0.2, 0.3],
                "image_std": [1, 1, 1],
                "size": {"height": 32, "width": 32},
                "do_center_crop": False,
            }
        )
    )
    loaded = load_model(str(tmp_path))
    assert loaded.layout == lm.layout
    assert loaded.mean == (0.1, 0.2, 0.3)
    x = pixels(lm)
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward(x), lm.forward(x))


def test_describe_reports_layout_and_labels():
    info = micro("dinov2-registers").describe()
    assert info["layers"] == 2 and info["heads"] == 4
    assert info["prefix_tokens"] == ["cls", "register", "register", "register", "register"]
    assert info["grid"] == [4, 4] and info["image_size"] == [32, 32]
    assert len(info["labels"]) >= 10


def test_unknown_hub_id_gives_one_clear_error():
    with pytest.raises(UserError, match="cannot load model 'nobody/no-such-vit'"):
        load_model("nobody/no-such-vit")


def test_folder_without_weights_is_refused(tmp_path):
    micro("vit").model.config.save_pretrained(tmp_path)
    with pytest.raises(UserError, match=r"no model\.safetensors"):
        load_model(str(tmp_path))


def test_pickle_only_weights_are_refused(tmp_path):
    lm = micro("vit")
    lm.model.config.save_pretrained(tmp_path)
    torch.save(lm.model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(UserError, match="only pickle weights"):
        load_model(str(tmp_path))


def test_non_vit_model_is_refused(tmp_path):
    BertModel(
        BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    ).save_pretrained(tmp_path)
    with pytest.raises(UserError, match="'bert' model, not a ViT family"):
        load_model(str(tmp_path))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty model spec"),
        ("random:vit-huge", "unknown random model"),
        ("random:swin-tiny", "unknown random model"),
        ("/no/such/folder", "is not allowed or not found"),
        ("a/b/c", "is not a model spec"),
    ],
)
def test_bad_specs_name_the_problem(spec, message):
    with pytest.raises(UserError, match=message):
        parse_model_spec(spec)


def test_specs_normalize():
    assert parse_model_spec(" demo ").name == "demo"
    assert parse_model_spec("random:deit-distilled-base").family == "deit-distilled"
    assert parse_model_spec("google/vit-base-patch16-224").kind == "hub"


def test_a_headless_checkpoint_loads_as_a_backbone_without_an_invented_head(tmp_path):
    lm = micro("dinov2")
    lm.model.base_model.save_pretrained(tmp_path, safe_serialization=True)
    backbone = load_model(str(tmp_path))
    assert not backbone.classifier and backbone.labels == []
    assert backbone.describe()["classifier"] is False
    x = pixels(lm)
    with torch.no_grad():
        expected = lm.features(x)
        assert torch.equal(backbone.features(x), expected)
        assert torch.equal(backbone.forward(x), expected[:, 0])  # the final CLS embedding


def test_a_classifier_checkpoint_without_its_head_weights_is_refused(tmp_path):
    lm = micro("vit")
    lm.model.base_model.save_pretrained(tmp_path, safe_serialization=True)
    config = json.loads((tmp_path / "config.json").read_text())
    config["architectures"] = ["ViTForImageClassification"]  # says classifier, has no classifier weights
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="lacks weights for classifier"):
        load_model(str(tmp_path))


def test_resized_analyses_another_multiple_of_the_patch_size():
    lm = micro("vit")
    bigger = lm.resized(48)
    assert bigger.layout.grid == (6, 6) and bigger.input_geometry.size == (48, 48)
    with torch.no_grad():
        assert bigger.forward(bigger.preprocess(np.zeros((1, 48, 48, 3), np.uint8))).shape == (1, 14)
    with pytest.raises(UserError, match="multiple of the patch size 8"):
        lm.resized(50)


def test_a_corrupt_safetensors_file_is_named_in_the_error(tmp_path):
    lm = micro("vit")
    lm.model.save_pretrained(tmp_path, safe_serialization=True)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated: the header promises more
    with pytest.raises(UserError, match=r"model\.safetensors' is corrupt or not a safetensors file"):
        load_model(str(tmp_path))


def test_a_missing_and_an_empty_folder_get_the_same_error(tmp_path):
    with pytest.raises(UserError) as missing:
        load_model(str(tmp_path / "nope"))
    with pytest.raises(UserError) as empty:
        load_model(str(tmp_path))
    assert "is not allowed or not found" in str(missing.value)
    assert str(empty.value).replace(str(tmp_path), "X") == str(missing.value).replace(
        str(tmp_path / "nope"), "X"
    )
