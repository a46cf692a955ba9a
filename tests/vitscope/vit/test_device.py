"""Which device a setting means, and CUDA started in the background while a command imports."""

import threading

import torch

from vitscope.vit.device import resolve_device, start_in_background


def starters():
    return [t for t in threading.enumerate() if t.name == "cuda-start"]


def test_auto_means_cuda_when_there_is_one():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"


def test_a_cpu_starts_nothing():
    before = len(starters())
    start_in_background("cpu")
    assert len(starters()) == before


def test_a_device_that_cannot_start_is_left_quietly_for_the_model_load_to_report(monkeypatch):
    raised = []
    monkeypatch.setattr(threading, "excepthook", raised.append)
    start_in_background("cuda:99")  # no such device here (and on a CPU build no CUDA at all)
    for thread in starters():
        thread.join(timeout=60)
    assert not raised and not starters()
