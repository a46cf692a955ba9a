"""Reading and clicking Plotly graphs of the dashboard from Playwright."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs, urlparse

ALL_DRAWN = """(n) => {
    const graphs = [...document.querySelectorAll('.js-plotly-plot')];
    return graphs.filter(g => g.querySelector('.main-svg') && g._fullData && g._fullData.length > 0).length >= n;
}"""
"""True once at least n graphs have drawn real data (placeholder figures have no traces)."""


def graph_selector(name: str) -> str:
    """CSS selector of the plot inside the dcc.Graph with id {"type": "graph", "name": name}."""
    dom_id = json.dumps({"name": name, "type": "graph"}, separators=(",", ":"))
    return f"[id='{dom_id}'] .js-plotly-plot"


def wait_drawn(page: Any, count: int, timeout_s: float = 60.0) -> None:
    """Wait until `count` graphs have drawn data."""
    page.wait_for_function(ALL_DRAWN, arg=count, timeout=timeout_s * 1000)


def wait_graph(page: Any, name: str, timeout_s: float = 120.0) -> None:
    """Wait until the graph `name` has drawn data (e.g. after its job finished)."""
    page.wait_for_function(
        "(sel) => { const g = document.querySelector(sel); return g && g._fullData && g._fullData.length > 0; }",
        arg=graph_selector(name),
        timeout=timeout_s * 1000,
    )


FIGURE = """(sel) => {
    const g = document.querySelector(sel);
    // numpy arrays reach Plotly base64-encoded; the full data holds them decoded (typed arrays)
    const plain = v => ArrayBuffer.isView(v) ? Array.from(v) : Array.isArray(v) ? v.map(plain) : v;
    const data = g._fullData.map(t => ({
        type: t.type, mode: t.mode, name: t.name, x: plain(t.x), y: plain(t.y), z: plain(t.z),
        customdata: plain(t.customdata), text: plain(t.text), opacity: t.opacity,
    }));
    const shapes = (g._fullLayout.shapes || []).map(s => ({type: s.type, x0: s.x0, x1: s.x1, y0: s.y0, y1: s.y1}));
    return {data: data, layout: {shapes: shapes, title: {text: g._fullLayout.title.text}}};
}"""


def figure(page: Any, name: str) -> dict[str, Any]:
    """The graph's drawn traces (type, mode, name, x, y, z, customdata, text, opacity), shapes and title."""
    return dict(page.evaluate(FIGURE, graph_selector(name)))


def clipboard_text(page: Any, timeout_s: float = 5.0) -> str:
    """The clipboard's text, once something was written to it (dcc.Clipboard writes asynchronously)."""
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        text = str(page.evaluate("navigator.clipboard.readText()"))
        if text:
            return text
        page.wait_for_timeout(100)
    return text


def click_data(page: Any, name: str, x: float, y: float) -> None:
    """Click the point at data coordinates (x, y) of graph `name` (like a user would)."""
    point = page.evaluate(
        """([sel, x, y]) => {
            const g = document.querySelector(sel);
            const box = g.getBoundingClientRect();
            const xa = g._fullLayout.xaxis, ya = g._fullLayout.yaxis;
            return [box.left + xa._offset + xa.l2p(x), box.top + ya._offset + ya.l2p(y)];
        }""",
        [graph_selector(name), x, y],
    )
    page.mouse.click(point[0], point[1])


def query_of(url: str) -> dict[str, str]:
    """The query of a URL as a flat dict."""
    return {key: values[-1] for key, values in parse_qs(urlparse(url).query).items()}


def wait_query(page: Any, timeout_s: float = 15.0, **expected: str) -> dict[str, str]:
    """Wait until the page URL's query holds `expected`; return the query."""
    deadline = time.monotonic() + timeout_s
    query = query_of(page.url)
    while time.monotonic() < deadline:
        query = query_of(page.url)
        if all(query.get(key) == value for key, value in expected.items()):
            return query
        page.wait_for_timeout(100)
    raise AssertionError(f"URL query {query} never held {expected}")


def click_until(page: Any, name: str, x: float, y: float, attempts: int = 3, **expected: str) -> None:
    """Click point (x, y) of graph `name` until the URL's query holds `expected`.

    Plotly drops a click that lands while it is redrawing the graph (a poll's update on a loaded
    machine); a user clicks again, and so does this, at most `attempts` times.
    """
    for attempt in range(attempts):
        click_data(page, name, x, y)
        try:
            wait_query(page, timeout_s=10.0 * (attempt + 1), **expected)
            return
        except AssertionError:
            if attempt == attempts - 1:
                raise
