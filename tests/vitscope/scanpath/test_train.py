import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from vitscope.scanpath.batching import collate_trials, pad_paths, trial_tensors
from vitscope.scanpath.model import OAT, OATConfig, greedy
from vitscope.scanpath.train import (
    RecordBank,
    TrainConfig,
    epoch_order,
    load_checkpoint,
    resolve_device,
    train_model,
)
from vitscope.scanpath.trials import ScanpathRecord, trial_from_scene

from .conftest import grid_scene

TINY = OATConfig(
    d_model=32,
    encoder_layers=1,
    decoder_layers=1,
    heads=2,
    ffn=64,
    dropout=0.0,
    crop_size=(30, 30),
    max_len=12,
)
PATHS = {0: (1, 2, 2, 0), 3: (4, 5, 3), 5: (2, 1, 4, 4, 5)}  # target -> its scene's one scanpath


def _records() -> list[ScanpathRecord]:
    return [
        ScanpathRecord(trial_from_scene(grid_scene(target=t), f"t{t}"), path, "s")
        for t, path in PATHS.items()
    ]


def test_tiny_model_overfits_a_few_scanpaths() -> None:
    torch.manual_seed(0)
    records = _records()
    cfg = TrainConfig(epochs=400, batch_size=3, lr=3e-3, max_steps=250, progress=False, device="cpu")
    result = train_model(OAT(TINY), records, cfg=cfg)
    first, last = result.history[0].train_loss, result.history[-1].train_loss
    assert last < 0.1 * first, (first, last)
    x = collate_trials([trial_tensors(r.trial, TINY) for r in records])
    decoded = greedy(result.model, x).scanpaths()
    assert [d[0] for d in decoded] == [list(p) for p in PATHS.values()]


def test_training_with_validation_logs_and_saves_a_checkpoint(tmp_path: Path) -> None:
    records = _records()
    cfg = TrainConfig(epochs=2, batch_size=2, patience=5, val_samples=2, progress=False, device="cpu")
    result = train_model(OAT(TINY), records[:2], records[2:], cfg=cfg, out=tmp_path / "ckpt")
    assert [h.epoch for h in result.history] == [1, 2]
    h = result.history[-1]
    assert all(math.isfinite(v) for v in (h.train_loss, h.val_loss, h.val_ss, h.val_delta))
    assert 0.0 <= h.val_ss <= 1.0
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.config == TINY and not loaded.training


def test_unknown_device_is_a_user_error() -> None:
    from vitscope.contracts.errors import UserError

    with pytest.raises(UserError, match="unknown device"):
        resolve_device("tpu9")


def test_epoch_order_is_the_shuffling_data_loaders() -> None:
    loader = DataLoader(
        list(range(11)), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(3)
    )
    ours = torch.Generator().manual_seed(3)
    for _ in range(3):
        assert torch.cat(list(loader)).tolist() == epoch_order(11, ours).tolist()


def test_record_batches_equal_collated_records() -> None:
    records = _records()
    records.append(ScanpathRecord(records[0].trial, tuple(range(6)) * 3, "long"))  # cut at max_len
    small = trial_from_scene(grid_scene(rows=2, cols=2, target=1), "2x2")
    records.append(ScanpathRecord(small, (0, 1), "s"))
    bank = RecordBank.from_records(records, TINY, torch.device("cpu"))
    assert len(bank.scenes) == 4 and len(bank) == 5
    for index in ([4, 0], [3, 1, 4], [2]):
        x, fix = bank.batch(torch.tensor(index), np.array(index))
        expected = collate_trials([trial_tensors(records[i].trial, TINY) for i in index])
        assert torch.equal(x.appearance, expected.appearance) and torch.equal(
            x.object_mask, expected.object_mask
        )
        assert torch.equal(fix, pad_paths([records[i].scanpath for i in index], TINY.max_len))
