"""The dashboard's door when authentication is on (`VITSCOPE_AUTH`): a login form or a token link.

A visitor without a valid token cookie is sent to `/login?next=<the page>`; the form (or a link
carrying `?token=...`, which is dropped from the address at once) sets an HttpOnly cookie and
returns to the page, so a share link works for every collaborator who has logged in once. The
dashboard's API client sends the visitor's token on (`current_token`), so the API's quotas and
rate limits count each person, not the dashboard.
"""

from __future__ import annotations

import hmac
from html import escape
from urllib.parse import urlencode

from flask import Flask, has_request_context, redirect, request
from werkzeug.wrappers import Response

from frontend.settings import DashboardSettings, get_settings

COOKIE = "vitscope_token"
COOKIE_MAX_AGE_S = 30 * 24 * 3600
OPEN_PATHS = ("/login", "/assets/", "/_favicon.ico", "/favicon.ico")


def install(server: Flask, settings: DashboardSettings) -> None:
    """Gate every request of `server` behind a token when `settings.auth` is on (else do nothing)."""
    if not settings.auth:
        return

    @server.before_request
    def _gate() -> Response | None:
        token = request.args.get("token")
        if token is not None:
            return _sign_in(token, _without_token(), settings)
        if request.path == "/login":
            return _login(settings)
        if request.path.startswith(OPEN_PATHS) or valid(request.cookies.get(COOKIE), settings):
            return None
        if request.path.startswith("/_dash-"):  # a callback of a page whose cookie expired
            return Response('{"error": "log in again"}', 401, mimetype="application/json")
        return redirect("/login?" + urlencode({"next": request.full_path.rstrip("?")}))


def valid(token: str | None, settings: DashboardSettings) -> bool:
    """Whether `token` is one of the configured tokens (compared in constant time)."""
    if not token:
        return False
    found = False
    for known in settings.tokens():
        found |= hmac.compare_digest(known.encode(), token.encode())
    return found


def current_token() -> str:
    """The token to call the API with: the visitor's cookie inside a request, else the dashboard's own."""
    if has_request_context():
        token = request.cookies.get(COOKIE)
        if token:
            return token
    return get_settings().api_token


def _sign_in(token: str, target: str, settings: DashboardSettings) -> Response:
    if not valid(token, settings):
        return _form(target, "That token is not valid.", 401)
    response = redirect(target)
    response.set_cookie(
        COOKIE,
        token,
        max_age=COOKIE_MAX_AGE_S,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure,
    )
    return response


def _login(settings: DashboardSettings) -> Response:
    target = _safe_next(request.values.get("next"))
    if request.method == "POST":
        return _sign_in(request.form.get("token", ""), target, settings)
    return _form(target, "", 200)


def _form(target: str, problem: str, status: int) -> Response:
    note = f'<p class="login-error">{escape(problem)}</p>' if problem else ""
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>vitscope: log in</title></head>
<body style="font-family: sans-serif; max-width: 28em; margin: 4em auto">
<h1>vitscope</h1><p>This dashboard is shared: enter the token the operator gave you.</p>{note}
<form method="post" action="/login"><input type="hidden" name="next" value="{escape(target)}">
<input type="password" name="token" autofocus required style="width: 100%">
<button type="submit">Log in</button></form></body></html>"""
    return Response(page, status, mimetype="text/html")


def _without_token() -> str:
    query = [(k, v) for k, v in request.args.items(multi=True) if k != "token"]
    return _safe_next(request.path + ("?" + urlencode(query) if query else ""))


def _safe_next(target: str | None) -> str:
    # only paths of this site: no scheme, no host, no protocol-relative `//evil`
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
