"""A small convolutional autoencoder for attention maps, and its PCA baseline.

The latent has `latent_dim` = k numbers, the same as the PCA it is compared with. Both the
encoder and the decoder are a frozen linear path plus a convolutional path:

- encoder: z = PCA coordinates of x + KeypointEncoder(x) (convs, spatial soft-argmax, linear);
- decoder: x_hat = PCA decode of z + Refiner(PCA decode of z, z) (3x3 convs over the linear
  decode, the (y, x) grid and the tiled latent).

The linear path is PCA fitted on the training maps, and the conv paths' last layers start at
zero, so training starts exactly at the PCA solution; gradient descent only adds what
convolutions capture and a linear map cannot. Attention maps are peaked and shift-structured
(a "self" head is a one-hot that moves with its query, a local head a ring that moves with
it): k linear images can only smear such maps, a local nonlinear refinement can sharpen them.
The epoch with the lowest error on a validation split (epoch 0 = PCA itself) is kept, so the
model never ends worse than PCA on data like the validation maps; where maps hold nothing
beyond the linear part (near-uniform maps of random-weight models) it stays PCA. Errors are
compared on a third, held-out split that neither training nor model selection saw.

Inputs are maps scaled to a peak of 1 (see `to_network`), shape (N, h, w), any h, w.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

EpochCallback = Callable[[int, float], None]
"""Called with (epoch done, validation MSE) after every epoch."""


def to_network(maps: torch.Tensor) -> torch.Tensor:
    """Scale probability maps (N, ...) to a peak of 1 per map, the network's input space.

    Why max and not sum: a sharp map and a flat one then have the same range, so the MSE is
    not dominated by the few very peaked maps (a one-hot is 1.0 either way, a uniform map is
    1.0 everywhere instead of 1/P).
    """
    peak = maps.flatten(1).amax(1).clamp_min(torch.finfo(maps.dtype).tiny)
    return maps / peak.view(-1, *([1] * (maps.dim() - 1)))


@dataclass
class PCA:
    """Principal components of flattened maps: `mean` (D,), `components` (k, D) orthonormal rows."""

    mean: torch.Tensor
    components: torch.Tensor

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Coordinates (N, k) of maps x (N, ...)."""
        return (x.flatten(1) - self.mean) @ self.components.T

    def decode(self, z: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """Maps (N, *shape) reconstructed from coordinates z (N, k)."""
        return (z @ self.components + self.mean).view(len(z), *shape)


def fit_pca(x: torch.Tensor, k: int) -> PCA:
    """PCA with k components of maps x (N, ...), fitted by SVD of the centred data (signs fixed)."""
    flat = x.flatten(1).double()
    mean = flat.mean(0)
    _, _, vh = torch.linalg.svd(flat - mean, full_matrices=False)
    comps = vh[:k]
    # an SVD's signs are arbitrary: make each component's largest entry positive, for determinism
    sign = comps.gather(1, comps.abs().argmax(1, keepdim=True)).sign()
    comps = comps * torch.where(sign == 0, 1.0, sign)
    return PCA(mean.float(), comps.float())


class PatternAutoencoder(nn.Module):
    """Conv encoder -> latent of k -> conv decoder, each around a frozen PCA path.

    latent z = PCA coordinates of x + KeypointEncoder(x); map = PCA decode of z + Refiner(that
    decode, z). The conv paths' last layers start at zero, so the untrained model is PCA.
    """

    def __init__(self, shape: tuple[int, int], pca: PCA, width: int = 16) -> None:
        super().__init__()
        self.shape = shape
        latent = pca.components.shape[0]
        self.register_buffer("mean", pca.mean.clone())
        self.register_buffer("components", pca.components.clone())
        self.encoder = KeypointEncoder(latent, width)
        self.refiner = Refiner(latent, shape, width)

    @property
    def pca(self) -> PCA:
        """The frozen linear path."""
        return PCA(self.get_buffer("mean"), self.get_buffer("components"))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latents (N, k) of network-scaled maps x (N, h, w)."""
        return self.pca.encode(x) + self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Network-scaled maps (N, h, w) decoded from latents z (N, k)."""
        linear = self.pca.decode(z, self.shape)
        return linear + self.refiner(linear, z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction (N, h, w) of x (N, h, w)."""
        return self.decode(self.encode(x))


def _zero(layer: nn.Module) -> nn.Module:
    """Zero a layer's weight and bias, so its path starts switched off."""
    nn.init.zeros_(layer.get_parameter("weight"))
    nn.init.zeros_(layer.get_parameter("bias"))
    return layer


class KeypointEncoder(nn.Module):
    """Convolutions, then a spatial soft-argmax: each feature channel's expected (y, x) on the grid.

    Why: what varies across maps of one head is mostly *where* the mass is; expected
    coordinates hand the latent that position directly (Finn et al. 2016, "Deep Spatial
    Autoencoders"). Channel means and maxima add how much of each feature there is.
    """

    def __init__(self, latent: int, width: int, keypoints: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(width, keypoints, 1),
        )
        self.out = _zero(nn.Linear(4 * keypoints, latent))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Latent correction (N, k) from maps x (N, h, w)."""
        f = self.body(x[:, None])  # (N, C, h, w)
        soft = f.flatten(2).softmax(-1).view_as(f)
        ys = torch.linspace(-1, 1, x.shape[-2], device=x.device)
        xs = torch.linspace(-1, 1, x.shape[-1], device=x.device)
        ky, kx = (soft.sum(3) * ys).sum(-1), (soft.sum(2) * xs).sum(-1)
        return self.out(torch.cat([ky, kx, f.mean((2, 3)), f.amax((2, 3))], dim=1))


class Refiner(nn.Module):
    """The conv decoder: a residual on the PCA decode, from [that decode, (y, x) grid, z tiled].

    Why this shape: a linear basis of k images can only put a smeared blob where a peak
    should be; turning the blob into the peak is a local, translation-equivariant operation
    that a few 3x3 convolutions learn in a few hundred steps. Decoders from z alone
    (transposed convolutions, a spatial broadcast decoder) had not yet matched PCA after 500
    steps on synthetic 12x12 self/ring maps, where this one was 18% below it. The
    coordinates and the tiled latent let it act differently by position and by pattern.
    """

    def __init__(self, latent: int, shape: tuple[int, int], width: int) -> None:
        super().__init__()
        ys = torch.linspace(-1, 1, shape[0])[:, None].expand(shape)
        xs = torch.linspace(-1, 1, shape[1])[None, :].expand(shape)
        self.register_buffer("coords", torch.stack([ys, xs])[None], persistent=False)
        self.body = nn.Sequential(
            nn.Conv2d(3 + latent, width, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.GELU(),
            _zero(nn.Conv2d(width, 1, 3, padding=1)),
        )

    def forward(self, linear: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Correction (N, h, w) to the linear decode (N, h, w) of latents z (N, k)."""
        coords = self.get_buffer("coords").expand(len(z), -1, -1, -1)
        tiled = z[:, :, None, None].expand(-1, -1, *linear.shape[-2:])
        return self.body(torch.cat([linear[:, None], coords, tiled], dim=1))[:, 0]


@dataclass
class TrainedAutoencoder:
    """The kept model, its PCA baseline, the per-epoch curve (E+1, 2) = (train MSE, val MSE) and the kept epoch."""

    model: PatternAutoencoder
    pca: PCA
    curve: torch.Tensor
    best_epoch: int


@torch.no_grad()
def mse(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int = 4096) -> float:
    """Mean squared error of reconstructions fn(x) against x (N, h, w), in chunks."""
    total = sum(float(((fn(part) - part) ** 2).sum()) for part in x.split(chunk))
    return total / max(x.numel(), 1)


def train_autoencoder(
    train: torch.Tensor,
    val: torch.Tensor,
    latent_dim: int,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    width: int = 16,
    on_epoch: EpochCallback | None = None,
) -> TrainedAutoencoder:
    """Fit PCA on `train` (N, h, w), then train the autoencoder from it; deterministic for a seed.

    Adam with a cosine-decayed learning rate, a seeded shuffle per epoch; the epoch with the
    lowest validation MSE on `val` (V, h, w) is kept (epoch 0 is PCA itself).
    """
    k = min(latent_dim, train[0].numel(), len(train))
    pca = fit_pca(train, k)
    shape = (train.shape[1], train.shape[2])
    with seeded(seed), small_ops(train.device):
        model = PatternAutoencoder(shape, pca, width).to(train.device)
        curve, best_epoch = _fit(model, train, val, epochs, batch_size, lr, seed, on_epoch)
    return TrainedAutoencoder(model, pca, curve, best_epoch)


def _fit(
    model: PatternAutoencoder,
    train: torch.Tensor,
    val: torch.Tensor,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    on_epoch: EpochCallback | None,
) -> tuple[torch.Tensor, int]:
    """Train in place and leave the model at its best validation epoch; return (curve (E+1, 2), best epoch)."""
    order = torch.Generator().manual_seed(seed)
    steps = epochs * math.ceil(len(train) / batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    best = (mse(model, val), 0, copy.deepcopy(model.state_dict()))
    curve = [(mse(model, train), best[0])]
    for epoch in range(1, epochs + 1):
        train_loss = _epoch(model, train, batch_size, opt, sched, order)
        model.eval()
        val_loss = mse(model, val)
        curve.append((train_loss, val_loss))
        if val_loss < best[0]:
            best = (val_loss, epoch, copy.deepcopy(model.state_dict()))
        if on_epoch is not None:
            on_epoch(epoch, val_loss)
    model.load_state_dict(best[2])
    model.eval()
    return torch.tensor(curve), best[1]


def _epoch(
    model: PatternAutoencoder,
    data: torch.Tensor,
    batch_size: int,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    order: torch.Generator,
) -> float:
    """One pass over `data` in a seeded order; returns the mean training MSE of the pass."""
    model.train()
    perm = torch.randperm(len(data), generator=order).to(data.device)
    total = torch.zeros((), device=data.device)  # summed on the device: no sync per step
    for idx in perm.split(batch_size):
        x = data[idx]
        loss = nn.functional.mse_loss(model(x), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        total += loss.detach() * len(idx)
    return float(total) / len(data)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator and prefer deterministic kernels inside the block; restore both after.

    The generator's state is forked, so the caller's random stream is untouched. Deterministic mode is
    warn-only: an op without a deterministic kernel warns instead of failing the job.
    """
    # cuBLAS needs this workspace setting to be reproducible; harmless where it is already set
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    # the model is built on the CPU and moved, and training draws no random numbers on the
    # device, so only the CPU generator needs seeding (and the caller's device RNG is untouched)
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


@contextmanager
def small_ops(device: torch.device) -> Iterator[None]:
    """Run the block's CPU work on one thread (restored after); no effect on a GPU.

    Why: the autoencoder's and k-means' ops are tiny, so extra threads add nothing, and on a
    shared CPU spinning OpenMP threads made them 50-100x slower in measurements.
    """
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
