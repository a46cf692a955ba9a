"""The CAM page's Trust panel in headless Chromium: its numbers are the job's own results."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

from frontend import ids
from tests.browser.live import DATASET, LiveStack, screenshot
from tests.browser.plotly_page import figure, wait_graph

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def result(live_stack: LiveStack, job_id: str, name: str) -> Any:
    """A result array (as .npy) or, for `summary`, the JSON summary, read through the API."""
    with live_stack.http as http:
        if name == "summary":
            return http.get(f"/jobs/{job_id}/results/summary").json()
        response = http.get(f"/jobs/{job_id}/results/{name}", params={"format": "npy"})
    assert response.status_code == 200, response.text
    return np.load(io.BytesIO(response.content), allow_pickle=False)


def test_trust_panel_shows_the_jobs_faithfulness_numbers(page: Any, live_stack: LiveStack) -> None:
    job_id = live_stack.submit(
        "eigencam", {"dataset": DATASET}, {"sanity_images": 2, "faithfulness_steps": 8}
    )
    live_stack.wait(job_id)
    summary = result(live_stack, job_id, "summary")
    layers, methods = summary["layers"], summary["faithfulness_methods"]
    layer = layers[len(layers) // 2]
    page.goto(f"/cam?job={job_id}&layer={layer}&image=1")
    wait_graph(page, ids.CAM_TRUST_AUC, timeout_s=120)

    by_layer = [t for t in figure(page, ids.CAM_TRUST_AUC)["data"] if t["name"] == "Eigen-CAM"]
    for trace, name in zip(by_layer, ("deletion_auc", "insertion_auc"), strict=True):
        means = np.nanmean(result(live_stack, job_id, name), 0)[: len(layers)]
        np.testing.assert_allclose(trace["y"], means, rtol=1e-6)

    wait_graph(page, ids.CAM_TRUST_CURVES)
    curve = figure(page, ids.CAM_TRUST_CURVES)["data"][0]  # the selected layer's deletion curve
    deletion = result(live_stack, job_id, "deletion_curve")[1, layers.index(layer)]
    np.testing.assert_allclose(curve["y"], deletion, rtol=1e-6)
    np.testing.assert_allclose(curve["x"], summary["curve_fractions"])

    table = page.locator(f"#{ids.CAM_TRUST_TABLE}")
    table.wait_for(state="visible")
    rows = table.locator("tbody tr")
    assert rows.count() == len(methods)
    for i, name in enumerate(methods):
        row = rows.nth(i)
        assert row.get_attribute("data-method") == name
        cells = row.locator("td").all_inner_texts()
        expected = [summary[key][i] for key in ("deletion_auc_by_method", "insertion_auc_by_method")]
        assert cells[1:3] == [f"{v:.3f}" for v in expected], (name, cells)
        reading = (summary.get("sanity") or {}).get(name)
        if reading is not None:
            assert cells[-2:] == [f"{reading['rank_corr']:.3f}", "pass" if reading["passed"] else "fail"]
    assert rows.nth(layers.index(layer)).get_attribute("class") == "selected"
    best = summary["most_faithful"]
    text = page.locator(f"#{ids.CAM_TRUST_BEST}").inner_text()
    assert f"{best['insertion_minus_deletion']:.3f}" in text
    screenshot(page, "cam-trust")
