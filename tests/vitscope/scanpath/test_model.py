import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vitscope.contracts.errors import UserError
from vitscope.scanpath.batching import collate_trials, trial_tensors
from vitscope.scanpath.model import (
    OAT,
    CropCNN,
    Memory,
    OATConfig,
    SceneInputs,
    greedy,
    load_checkpoint,
    loss_targets,
    sample,
    save_checkpoint,
)
from vitscope.scanpath.trials import Trial, trial_from_scene

from .conftest import grid_scene

TINY = OATConfig(
    d_model=16,
    encoder_layers=1,
    decoder_layers=1,
    heads=2,
    ffn=16,
    dropout=0.0,
    crop_size=(45, 45),
    max_len=8,
)


@pytest.fixture
def model() -> OAT:
    torch.manual_seed(0)
    return OAT(TINY).eval()


@pytest.fixture
def batch(trial: Trial) -> SceneInputs:
    return collate_trials([trial_tensors(trial, TINY)] * 2)


class _Bump(torch.nn.Module):
    """Wraps the head-mixing layer and adds 1e4 to a chosen logit column, before masking.

    Decoding calls the pointer once per step, so call k is step k: `columns[k]` is favoured
    for every sequence at step k.
    """

    def __init__(self, mix: torch.nn.Module, columns: dict[int, int]) -> None:
        super().__init__()
        self.mix, self.columns, self.calls = mix, columns, 0

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        out = self.mix(scores).clone()  # (..., N+2, 1)
        column = self.columns.get(self.calls)
        self.calls += 1
        if column is not None:
            out[..., column, :] += 1e4
        return out


def _force(model: OAT, monkeypatch: pytest.MonkeyPatch, columns: dict[int, int]) -> None:
    """Make the pointer favour `columns[step]` at those decoding steps."""
    monkeypatch.setattr(model, "mix", _Bump(model.mix, columns))


def test_first_step_masks_eos_and_pad(model: OAT, batch: SceneInputs) -> None:
    logits = model(batch, torch.empty(2, 0, dtype=torch.long))
    n = batch.n_objects
    assert logits.shape == (2, 1, n + 2)
    assert torch.isneginf(logits[:, 0, n:]).all()
    assert torch.isfinite(logits[:, 0, :n]).all()


def test_first_step_cannot_end_even_when_eos_is_favoured(
    model: OAT, batch: SceneInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = batch.n_objects
    _force(model, monkeypatch, dict.fromkeys(range(8), n))  # EOS favoured at every step
    out = sample(model, batch, n=50, generator=torch.Generator().manual_seed(0))
    assert (out.lengths == 1).all() and out.stopped.all()


def test_pointing_at_the_target_token_ends_the_scanpath(
    model: OAT, batch: SceneInputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    _force(model, monkeypatch, {0: 2, 1: 5, 2: 4, 3: batch.n_objects})
    out = sample(model, batch, n=10, generator=torch.Generator().manual_seed(1))
    assert (out.lengths == 3).all() and out.stopped.all()
    assert out.scanpaths() == [[[2, 5, 4]] * 10] * 2 and (out.indices[..., 3:] == -1).all()
    assert torch.allclose(out.chosen_prob[..., 3], torch.ones(2, 10))  # the EOS step


def test_pad_is_never_produced(model: OAT, batch: SceneInputs, monkeypatch: pytest.MonkeyPatch) -> None:
    _force(model, monkeypatch, dict.fromkeys(range(8), batch.n_objects + 1))
    out = sample(model, batch, n=50, generator=torch.Generator().manual_seed(2), keep_probs=True)
    assert (out.indices < batch.n_objects).all()
    assert out.step_probs is not None and (out.step_probs[..., batch.n_objects + 1] == 0).all()


def test_max_len_cuts_without_eos(model: OAT, batch: SceneInputs, monkeypatch: pytest.MonkeyPatch) -> None:
    _force(model, monkeypatch, dict.fromkeys(range(8), 0))  # always object 0, never EOS
    out = greedy(model, batch, max_len=5)
    assert out.scanpaths() == [[[0] * 5], [[0] * 5]]
    assert not out.stopped.any()


def test_padded_objects_are_never_predicted(model: OAT, trial: Trial) -> None:
    small = trial_from_scene(grid_scene(rows=2, cols=2, target=1), "2x2")
    x = collate_trials([trial_tensors(trial, TINY), trial_tensors(small, TINY)])
    assert x.object_mask.sum(1).tolist() == [6, 4]
    out = sample(model, x, n=100, generator=torch.Generator().manual_seed(3))
    assert out.indices[1].max() < 4


def test_sampling_is_reproducible_for_a_seeded_generator(model: OAT, batch: SceneInputs) -> None:
    a = sample(model, batch, n=5, generator=torch.Generator().manual_seed(7))
    b = sample(model, batch, n=5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.indices, b.indices)
    assert greedy(model, batch).scanpaths() == greedy(model, batch).scanpaths()


def test_loss_targets_append_eos_then_pad() -> None:
    fix = torch.tensor([[3, 1, -1], [2, -1, -1]])
    assert loss_targets(fix, 6).tolist() == [[3, 1, 6, 7], [2, 6, 7, 7]]


def test_checkpoint_round_trip_is_safetensors_and_json(
    model: OAT, batch: SceneInputs, tmp_path: Path
) -> None:
    save_checkpoint(model, tmp_path, {"note": "test"}, dtype=torch.float32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((tmp_path / "config.json").read_text())["model"]["d_model"] == 16
    loaded = load_checkpoint(tmp_path)
    fix = torch.tensor([[4, 1], [0, -1]])
    assert torch.allclose(model(batch, fix), loaded(batch, fix), equal_nan=True)
    assert not loaded.pe_table.requires_grad and "pe_table" not in dict(loaded.named_parameters())


def test_default_checkpoint_stores_float16_weights_that_load_into_float32(model: OAT, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    save_checkpoint(model, tmp_path)
    stored = load_file(str(tmp_path / "model.safetensors"))
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    loaded = load_checkpoint(tmp_path)
    for name, value in loaded.state_dict().items():
        assert value.dtype == model.state_dict()[name].dtype
        torch.testing.assert_close(value, model.state_dict()[name].half().to(value.dtype))


def test_vit_appearance_reads_feature_vectors(trial: Trial) -> None:
    cfg = replace(TINY, appearance="vit", feature_dim=5)
    feats = np.random.default_rng(0).normal(size=(trial.n, 5))
    x = collate_trials([trial_tensors(replace(trial, features=feats), cfg)])
    assert x.appearance.shape == (1, 6, 5)
    assert OAT(cfg)(x, torch.tensor([[1, 4]])).shape == (1, 3, 8)
    with pytest.raises(UserError, match="features of size 5"):
        trial_tensors(trial, cfg)


def test_published_cnn_flattens_to_1440_and_bad_configs_are_refused() -> None:
    assert CropCNN.flat_dim((150, 93)) == 32 * 9 * 5
    with pytest.raises(UserError, match="too small"):
        OATConfig(crop_size=(28, 40))
    with pytest.raises(UserError, match="divisible"):
        OATConfig(d_model=510)


def test_grid_larger_than_the_positional_table_is_refused(trial: Trial) -> None:
    small_table = replace(TINY, pe_size=2)
    with pytest.raises(UserError, match="positional table"):
        OAT(small_table)(collate_trials([trial_tensors(trial, small_table)]), torch.tensor([[0]]))


def _rerun_decode(
    model: OAT, x: SceneInputs, samples: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference decoding: the whole prefix through `nn.TransformerDecoder` at every step, each
    scene's encoding repeated per sample, a draw for every row at every step."""
    memory = model.encode(x)
    parts = (memory.encoded, memory.pad, memory.tokens, memory.bos)
    memory = Memory(*(t.repeat_interleave(samples, dim=0) for t in parts))
    n, rows, steps = x.n_objects, len(x.target) * samples, model.config.max_len
    prev = torch.full((rows, steps), -1)
    chosen = torch.zeros(rows, steps + 1)
    done = torch.zeros(rows, dtype=torch.bool)
    for t in range(steps + 1):
        logits = model.decode_logits(memory, prev[:, :t])[:, -1]
        logits[:, n + 1] = float("-inf")
        if t == steps:
            logits[:, :n] = float("-inf")
        probs = logits.softmax(-1)
        pick = (
            probs.argmax(-1) if generator is None else torch.multinomial(probs, 1, generator=generator)[:, 0]
        )
        chosen[:, t] = torch.where(done, 0.0, probs.gather(1, pick[:, None])[:, 0])
        if t < steps:
            prev[:, t] = torch.where(done | (pick == n), -1, pick)
        done |= pick == n
        if done.all():
            break
    return prev, chosen


@torch.no_grad()
def test_cached_decoding_equals_rerunning_the_decoder(model: OAT, trial: Trial) -> None:
    # scenes of 6 and 4 objects (padding); sequences end at different steps, so finished rows
    # leave the caches while others go on
    small = trial_from_scene(grid_scene(rows=2, cols=2, target=1), "2x2")
    x = collate_trials([trial_tensors(trial, TINY), trial_tensors(small, TINY)])
    out = sample(model, x, n=40, generator=torch.Generator().manual_seed(5))
    prev, chosen = _rerun_decode(model, x, 40, torch.Generator().manual_seed(5))
    assert len(set(out.lengths.flatten().tolist())) > 3
    assert torch.equal(out.indices.flatten(0, 1), prev)
    assert torch.allclose(out.chosen_prob.flatten(0, 1), chosen, atol=1e-5)
    out = greedy(model, x)
    prev, chosen = _rerun_decode(model, x, 1, None)
    assert torch.equal(out.indices.flatten(0, 1), prev)
    assert torch.allclose(out.chosen_prob.flatten(0, 1), chosen, atol=1e-5)
