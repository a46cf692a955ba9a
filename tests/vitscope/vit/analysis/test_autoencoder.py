"""The pattern autoencoder against its PCA baseline, on maps whose structure is known."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA as SkPCA

from vitscope.vit.analysis.autoencoder import PatternAutoencoder, fit_pca, mse, to_network, train_autoencoder

GRID = 8


def peak_maps(n: int, seed: int, noise: float = 0.05) -> torch.Tensor:
    """(n, 8, 8) maps: a one-hot ("self") or a Chebyshev ring of radius 1 ("local") at a random cell."""
    g = torch.Generator().manual_seed(seed)
    cy, cx = torch.randint(GRID, (2, n), generator=g)
    ys, xs = torch.arange(GRID)[:, None], torch.arange(GRID)[None, :]
    cheb = torch.maximum((ys - cy[:, None, None]).abs(), (xs - cx[:, None, None]).abs())
    ring = torch.rand(n, generator=g) < 0.5
    maps = torch.where(ring[:, None, None], (cheb == 1).float(), (cheb == 0).float())
    maps = maps + noise * torch.rand(n, GRID, GRID, generator=g)
    return maps / maps.sum((1, 2), keepdim=True)


def pca_error(pca, x):
    return mse(lambda v: pca.decode(pca.encode(v), tuple(v.shape[1:])), x)


def test_to_network_scales_each_map_to_a_peak_of_one():
    maps = peak_maps(5, 0)
    scaled = to_network(maps)
    torch.testing.assert_close(scaled.flatten(1).amax(1), torch.ones(5))
    torch.testing.assert_close(scaled / scaled.sum((1, 2), keepdim=True), maps)


def test_fit_pca_reconstructs_as_well_as_sklearn():
    x = to_network(peak_maps(300, 1))
    ours = fit_pca(x, 6)
    ref = SkPCA(6, svd_solver="full").fit(x.flatten(1).double().numpy())
    ref_recon = ref.inverse_transform(ref.transform(x.flatten(1).double().numpy()))
    ref_error = float(np.mean((ref_recon - x.flatten(1).double().numpy()) ** 2))
    assert pca_error(ours, x) == pytest.approx(ref_error, rel=1e-4)


def test_untrained_autoencoder_is_exactly_pca():
    x = to_network(peak_maps(64, 2))
    pca = fit_pca(x, 6)
    model = PatternAutoencoder((GRID, GRID), pca)
    with torch.no_grad():
        torch.testing.assert_close(model(x), pca.decode(pca.encode(x), (GRID, GRID)))


def test_autoencoder_beats_pca_on_held_out_shifted_peaks():
    train, val, test = (to_network(peak_maps(n, seed)) for n, seed in ((512, 3), (64, 4), (128, 5)))
    ae = train_autoencoder(train, val, latent_dim=6, epochs=25, batch_size=32, lr=3e-3, seed=0)
    ae_error, baseline = mse(ae.model, test), pca_error(ae.pca, test)
    assert ae.best_epoch > 0
    assert ae_error < 0.8 * baseline


def test_training_keeps_pca_when_maps_are_pure_noise():
    g = torch.Generator().manual_seed(6)
    noise = [to_network(torch.rand(n, GRID, GRID, generator=g)) for n in (256, 64)]
    ae = train_autoencoder(noise[0], noise[1], latent_dim=4, epochs=3, batch_size=32, lr=3e-3, seed=0)
    assert ae.curve[ae.best_epoch, 1] <= ae.curve[0, 1]  # validation error never above PCA's
    assert mse(ae.model, noise[1]) <= pca_error(ae.pca, noise[1]) + 1e-12


def test_training_is_identical_for_a_seed_and_differs_across_seeds():
    train, val = (to_network(peak_maps(n, seed)) for n, seed in ((128, 7), (32, 8)))

    def fit(seed):
        ae = train_autoencoder(train, val, latent_dim=4, epochs=2, batch_size=32, lr=3e-3, seed=seed)
        return ae.curve, {k: v.clone() for k, v in ae.model.state_dict().items()}

    (curve_a, state_a), (curve_b, state_b), (curve_c, _) = fit(0), fit(0), fit(1)
    assert torch.equal(curve_a, curve_b)
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert not torch.equal(curve_a[1:], curve_c[1:])


def test_training_leaves_the_callers_random_stream_alone():
    train, val = (to_network(peak_maps(n, seed)) for n, seed in ((64, 9), (16, 10)))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_autoencoder(train, val, latent_dim=4, epochs=1, batch_size=32, lr=3e-3, seed=0)
    assert torch.equal(torch.rand(3), expected)
