"""The dashboard's door when authentication is on: login form, token links, share links, and the
visitor's token passed on to the API."""

import httpx
import pytest
from flask import Flask

from frontend import auth
from frontend.api import ApiClient
from frontend.settings import DashboardSettings

TOKENS = "alice:tok-alice-123,bob:tok-bob-456"


@pytest.fixture
def server():
    app = Flask("t")

    @app.get("/cam")
    def cam() -> str:
        return "the cam page"

    auth.install(app, DashboardSettings(auth=True, auth_tokens=TOKENS))
    return app.test_client()


def test_a_share_link_without_a_cookie_leads_to_the_login_and_back(server):
    response = server.get("/cam?job=abc&layer=3")
    assert response.status_code == 302
    assert response.headers["location"] == "/login?next=%2Fcam%3Fjob%3Dabc%26layer%3D3"
    form = server.get(response.headers["location"])
    assert form.status_code == 200 and b'name="token"' in form.data
    login = server.post("/login", data={"token": "tok-bob-456", "next": "/cam?job=abc&layer=3"})
    assert login.status_code == 302 and login.headers["location"] == "/cam?job=abc&layer=3"
    assert "HttpOnly" in login.headers["set-cookie"]
    assert server.get("/cam?job=abc&layer=3").data == b"the cam page"


def test_a_token_link_sets_the_cookie_and_drops_the_token_from_the_address(server):
    response = server.get("/cam?job=abc&token=tok-alice-123")
    assert response.status_code == 302 and response.headers["location"] == "/cam?job=abc"
    assert server.get("/cam?job=abc").status_code == 200


@pytest.mark.parametrize("token", ["", "wrong", "tok-alice-12"])
def test_a_wrong_token_is_refused(server, token):
    assert server.post("/login", data={"token": token, "next": "/cam"}).status_code == 401
    assert server.get("/cam").status_code == 302


def test_the_login_only_returns_to_pages_of_this_site(server):
    response = server.post("/login", data={"token": "tok-bob-456", "next": "//evil.example/x"})
    assert response.headers["location"] == "/"


def test_callbacks_without_a_cookie_get_401_not_a_login_page(server):
    assert server.post("/_dash-update-component", json={}).status_code == 401


def test_auth_off_changes_nothing():
    app = Flask("t")
    app.get("/cam")(lambda: "open")
    auth.install(app, DashboardSettings())
    assert app.test_client().get("/cam").data == b"open"


def test_the_api_client_passes_the_visitor_s_token_on():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json=[])

    client = ApiClient("http://api.test/api/v1", transport=httpx.MockTransport(handler))
    app = Flask("t")
    with app.test_request_context("/cam", headers={"Cookie": f"{auth.COOKIE}=tok-bob-456"}):
        client.models()
    client.models()  # outside a request: the dashboard's own token (none set here)
    assert seen == ["Bearer tok-bob-456", None]
