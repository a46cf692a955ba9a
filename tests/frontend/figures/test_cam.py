"""Figure builders of /cam: small synthetic arrays in, checked figure contents out."""

from __future__ import annotations

import numpy as np

from frontend.figures import cam


def test_rank_corr_line_names_real_layers():
    fig = cam.rank_corr_line(np.array([0.1, -0.2, 0.05]), selected=1, layer_numbers=[2, 5, 11])
    assert list(fig.data[0].x) == [2, 5, 11]
    assert fig.data[-1].x == (5,)
