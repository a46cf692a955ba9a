import torch
import torch.nn.functional as F

from vitscope.scanpath.pe import component_dim, fit_position_table, gaussian_similarity, position_embedding


def test_table_cosines_match_the_sigma2_gaussian_and_norms_are_equal() -> None:
    w = fit_position_table(14, 86)
    wn = F.normalize(w, dim=1)
    assert (wn @ wn.T - gaussian_similarity(14, 2.0)).abs().max() < 0.02
    norms = w.norm(dim=1)
    assert torch.allclose(norms, norms[0].expand_as(norms), rtol=1e-4)
    # row 0 as published: [1, .883, .607, .325, .135, .044]
    assert torch.allclose((wn @ wn.T)[0, :6], torch.tensor([1, 0.882, 0.607, 0.325, 0.135, 0.044]), atol=0.02)


def test_fit_is_deterministic_and_returns_a_copy() -> None:
    a = fit_position_table(6, 20)
    a.zero_()
    b = fit_position_table(6, 20)
    assert b.abs().sum() > 0
    assert torch.equal(b, fit_position_table(6, 20))


def test_position_embedding_concatenates_row_col_flag_and_truncates() -> None:
    table = fit_position_table(14, component_dim(256))
    assert component_dim(256) == 86
    emb = position_embedding(table, torch.tensor([2]), torch.tensor([6]), torch.tensor([1]), 256)
    assert emb.shape == (1, 256)
    assert torch.equal(emb[0, :86], table[2])
    assert torch.equal(emb[0, 86:172], table[6])
    assert torch.equal(emb[0, 172:], table[1, :84])  # 258 -> 256: the flag part loses two dims
