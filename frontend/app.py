"""The Dash app: the shell around the pages (nav bar, copy link, export format, API status).

Pages live in `frontend/pages/`, one module each, registered with `dash.register_page`; each
page's `layout(**query)` rebuilds the whole view from the URL. The nav bar lists the registered
pages in their `order`, except those registered with `nav=False` (the generic `/job` page).
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from functools import cache
from pathlib import Path
from typing import Any

import dash
from dash import ALL, Dash, Input, Output, State, callback, clientside_callback, dcc, html

from frontend import auth, ids, pages
from frontend.api import ApiError, get_client
from frontend.settings import get_settings

log = logging.getLogger(__name__)
HERE = Path(__file__).parent


def create_app() -> Dash:
    """Build the app (import once per process: pages register their callbacks globally)."""
    app = Dash(
        "frontend",
        use_pages=True,
        pages_folder="",  # pages are imported as regular modules below (Dash's own loader breaks dataclasses)
        assets_folder=str(HERE / "assets"),
        title="vitscope",
        update_title="",
        # fetch plotly.js with the app bundle, in parallel with the first layout, not after it
        eager_loading=True,
        # page components only exist once their page is shown; their callbacks are checked by tests
        suppress_callback_exceptions=True,
    )
    for page in pkgutil.iter_modules(pages.__path__):
        importlib.import_module(f"{pages.__name__}.{page.name}")
    _register_nav(tuple((name, path) for name, path in nav_pages()))
    app.layout = shell
    auth.install(app.server, get_settings())  # a login in front of every page when auth is on
    return app


def nav_pages() -> list[tuple[str, str]]:
    """(name, path) of each registered page the nav bar links, in page order."""
    registered: list[dict[str, Any]] = sorted(
        dash.page_registry.values(), key=lambda page: (page.get("order") or 0, page["path"])
    )
    return [(str(page["name"]), str(page["path"])) for page in registered if page.get("nav", True)]


def nav_id(name: str) -> str:
    """The id of the nav link to the page called `name`: `nav-heads`."""
    return f"nav-{name.lower()}"


def shell() -> html.Div:
    """The frame around every page."""
    return html.Div(
        [
            dcc.Store(id=ids.RECENT_JOBS, storage_type="local"),
            dcc.Store(id=ids.NAV_PATHS, data=[path for _, path in nav_pages()]),
            dcc.Interval(id=ids.API_STATUS_INTERVAL, interval=15_000),
            nav_bar(),
            html.Main(dash.page_container, className="main"),
        ],
        className="app",
    )


def nav_bar() -> html.Header:
    """Brand, page links, export format, copy link and the API status light."""
    links = [dcc.Link(name, href=href, className="nav-link", id=nav_id(name)) for name, href in nav_pages()]
    tools = [
        html.Span(id=ids.API_STATUS, className="api-status"),
        html.Label(
            [
                "Export",
                dcc.Dropdown(
                    id=ids.EXPORT_FORMAT,
                    options=[{"label": "PNG", "value": "png"}, {"label": "SVG", "value": "svg"}],
                    value="png",
                    clearable=False,
                    searchable=False,
                    persistence=True,
                    persistence_type="local",
                    className="export-menu",
                ),
            ],
            className="export",
            title="Format of the modebar's camera button",
        ),
        html.Span(
            [dcc.Clipboard(id=ids.COPY_LINK, title="Copy a link to this exact view"), "Copy link"],
            className="copy-link",
        ),
        html.Span(id=ids.COPIED_URL, className="copied-url"),
    ]
    return html.Header(
        [
            dcc.Link(
                [html.Span("vit", className="brand-a"), html.Span("scope", className="brand-b")],
                href="/",
                className="brand",
            ),
            html.Nav(links, className="nav-links"),
            html.Div(tools, className="nav-tools"),
        ],
        className="topbar",
    )


# Clientside, and a no-op when every graph already exports in the chosen format: a server
# round trip here would redraw every graph of a page right after it first rendered. dcc.Graph
# only re-plots when its figure changes, so the plots on screen are also told directly.
clientside_callback(
    """
    function(fmt, configs) {
        fmt = fmt || "png";
        const options = old => Object.assign({}, old, {format: fmt, scale: fmt === "png" ? 2 : 1});
        document.querySelectorAll(".js-plotly-plot").forEach(gd => {
            if (gd._context) { gd._context.toImageButtonOptions = options(gd._context.toImageButtonOptions); }
        });
        if (configs.every(c => c && c.toImageButtonOptions && c.toImageButtonOptions.format === fmt)) {
            return window.dash_clientside.no_update;
        }
        return configs.map(c => Object.assign({}, c, {toImageButtonOptions: options((c || {}).toImageButtonOptions)}));
    }
    """,
    Output(ids.graph(ALL), "config"),
    Input(ids.EXPORT_FORMAT, "value"),
    State(ids.graph(ALL), "config"),
)


@callback(
    Output(ids.API_STATUS, "children"),
    Output(ids.API_STATUS, "className"),
    Input(ids.API_STATUS_INTERVAL, "n_intervals"),
)
def api_status(_tick: int | None) -> tuple[str, str]:
    """A light in the nav bar: is the API up, and does it have workers?"""
    try:
        health = get_client().health()
    except ApiError as exc:
        log.info("API health check failed: %s", exc)
        return "API unreachable", "api-status api-down"
    workers = int(health.get("workers") or 0)
    ok = health.get("status") == "ok" and workers > 0
    text = f"API {health.get('status', '?')} · {workers} worker{'s' if workers != 1 else ''}"
    return text, f"api-status {'api-up' if ok else 'api-degraded'}"


# The full URL only exists in the browser, so the link is read there.
clientside_callback(
    """
    function(n) {
        if (!n) { return [window.dash_clientside.no_update, window.dash_clientside.no_update]; }
        const url = window.location.href;
        return [url, "Copied: " + url];
    }
    """,
    Output(ids.COPY_LINK, "content"),
    Output(ids.COPIED_URL, "children"),
    Input(ids.COPY_LINK, "n_clicks"),
    prevent_initial_call=True,
)


@cache
def _register_nav(links: tuple[tuple[str, str], ...]) -> None:
    """Mark the nav link of the current page and point each link at its page's last view (once per
    set of links: callbacks are global to the process)."""
    clientside_callback(
        """
        function(path, pages) {
            const classes = pages.map(p => "nav-link" + (p === path ? " active" : ""));
            // each page remembers its last view (tracker.py): the nav bar returns to it
            const hrefs = pages.map(p => p === "/" ? p : p + (window.localStorage.getItem("vitscope:last:" + p) || ""));
            return classes.concat(hrefs);
        }
        """,
        [Output(nav_id(name), "className") for name, _ in links]
        + [Output(nav_id(name), "href") for name, _ in links],
        Input("_pages_location", "pathname"),
        State(ids.NAV_PATHS, "data"),
    )
