"""Seeded random weights: drawn once, then read back bit for bit; a bad or missing file is drawn again."""

import logging
import os

import pytest
import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from vitscope.contracts.errors import UserError
from vitscope.vit.models import configs, seeded
from vitscope.vit.models.loading import default_labels

FAMILIES = ("vit", "deit", "deit-distilled", "dinov2", "dinov2-registers")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VITSCOPE_CACHE_DIR", str(tmp_path))
    return tmp_path / "models" / "seeded"


def drawn(cls, config, seed):
    """What the class's own initialisation gives under the seed, nothing cached."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(config)


def tensors(model):
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


def same(a, b):
    ta, tb = tensors(a), tensors(b)
    return ta.keys() == tb.keys() and all(
        torch.equal(ta[k], tb[k]) and ta[k].dtype == tb[k].dtype for k in ta
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_a_read_model_is_the_drawn_one_bit_for_bit_and_reading_draws_nothing(family, cache, monkeypatch):
    cls, config, _, _ = configs.random_model(family, "micro", default_labels())
    first = seeded.build(cls, config, 7)
    assert same(first, drawn(cls, config, 7)) and len(list(cache.glob("*.safetensors"))) == 1

    def no_draw(_seed):
        raise AssertionError("a cached model was drawn again")

    monkeypatch.setattr(torch, "manual_seed", no_draw)
    again = seeded.build(cls, config, 7)
    assert same(again, first) and not again.training
    assert all(p.requires_grad for p in again.parameters())


def test_building_leaves_the_global_generator_where_it_was():
    cls, config, _, _ = configs.random_model("vit", "micro", default_labels())
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    seeded.build(cls, config, 7)  # drawn
    seeded.build(cls, config, 7)  # read
    assert torch.equal(torch.rand(4), expected)


def test_the_key_names_class_config_and_seed():
    cls, config, _, _ = configs.random_model("vit", "micro", default_labels())
    other_cls, *_ = configs.random_model("deit-distilled", "micro", default_labels())
    relabelled = configs.random_model("vit", "micro", default_labels()[:3])[1]
    keys = {
        seeded.key(cls, config, 7),
        seeded.key(cls, config, 8),
        seeded.key(other_cls, config, 7),
        seeded.key(cls, relabelled, 7),
    }
    assert len(keys) == 4 and seeded.key(cls, config, 7) == seeded.key(cls, config, 7)


@pytest.mark.parametrize("damage", ["garbage", "missing tensor", "wrong shape"])
def test_a_file_that_does_not_fit_is_drawn_again_and_replaced(damage, cache, caplog):
    cls, config, _, _ = configs.random_model("vit", "micro", default_labels())
    seeded.build(cls, config, 7)
    [path] = cache.glob("*.safetensors")
    if damage == "garbage":
        path.write_bytes(b"not safetensors")
    else:
        from safetensors.torch import load_file, save_file

        stored = load_file(path)
        name = sorted(stored)[0]
        if damage == "missing tensor":
            del stored[name]
        else:
            stored[name] = torch.zeros(1)
        save_file(stored, path)
    with caplog.at_level(logging.WARNING, logger="vitscope.vit.models.seeded"):
        model = seeded.build(cls, config, 7)
    assert same(model, drawn(cls, config, 7)) and "drawing them again" in caplog.text
    assert same(seeded.build(cls, config, 7), model)  # the file was replaced by a whole one


def test_an_unwritable_cache_still_gives_the_model(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder would be")
    monkeypatch.setenv("VITSCOPE_CACHE_DIR", str(blocked))
    cls, config, _, _ = configs.random_model("vit", "micro", default_labels())
    assert same(seeded.build(cls, config, 7), drawn(cls, config, 7))


class WithBuffer(PreTrainedModel):
    """A model with a buffer no state dict holds (as position ids are in some families)."""

    config_class = PretrainedConfig

    def __init__(self, config):
        super().__init__(config)
        self.linear = nn.Linear(3, 3)
        self.register_buffer("ids", torch.randn(5), persistent=False)
        self.post_init()


def test_a_buffer_a_state_dict_leaves_out_is_read_back_too():
    config = PretrainedConfig()
    first = seeded.build(WithBuffer, config, 7)
    again = seeded.build(WithBuffer, config, 7)
    assert "ids" not in again.state_dict() and same(again, first)
    assert torch.equal(again.ids, drawn(WithBuffer, config, 7).ids)


def test_a_kept_file_is_readable_by_every_user_of_a_shared_cache(cache):
    cls, config, _, _ = configs.random_model("vit", "micro", default_labels())
    seeded.build(cls, config, 7)
    [path] = cache.glob("*.safetensors")
    assert path.stat().st_mode & 0o777 == 0o644 and not list(cache.glob("*.tmp"))


def test_the_folder_keeps_the_most_recently_used_files_within_its_bound(cache, monkeypatch):
    cls, config, _, _ = configs.random_model("vit", "micro", default_labels())
    seeded.build(cls, config, 1)
    size = next(cache.glob("*.safetensors")).stat().st_size
    monkeypatch.setenv("VITSCOPE_SEEDED_CACHE_GB", str(2.5 * size / 1e9))  # two files fit, three do not
    seeded.build(cls, config, 2)
    first, second = (cache / f"{seeded.key(cls, config, s)}.safetensors" for s in (1, 2))
    os.utime(first, (1_000, 1_000))
    os.utime(second, (2_000, 2_000))
    seeded.build(cls, config, 1)  # read: now the most recently used
    assert first.stat().st_mtime > second.stat().st_mtime
    third = seeded.build(cls, config, 3)
    kept = {p.name for p in cache.glob("*.safetensors")}
    assert kept == {first.name, f"{seeded.key(cls, config, 3)}.safetensors"}
    assert same(third, drawn(cls, config, 3))


def test_a_bound_of_zero_keeps_nothing_and_still_gives_the_model(cache, monkeypatch):
    monkeypatch.setenv("VITSCOPE_SEEDED_CACHE_GB", "0")
    cls, config, _, _ = configs.random_model("vit", "micro", default_labels())
    assert same(seeded.build(cls, config, 5), drawn(cls, config, 5))
    assert not cache.exists()  # not even the folder


@pytest.mark.parametrize("value", ["lots", "-1", "nan", "inf"])
def test_a_bad_bound_is_refused_in_one_line(value, monkeypatch):
    monkeypatch.setenv("VITSCOPE_SEEDED_CACHE_GB", value)
    cls, config, _, _ = configs.random_model("vit", "micro", default_labels())
    with pytest.raises(
        UserError, match=f"VITSCOPE_SEEDED_CACHE_GB must be a number of gigabytes >= 0, got '{value}'"
    ):
        seeded.build(cls, config, 5)
