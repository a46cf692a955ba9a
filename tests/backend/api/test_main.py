"""The assembled app: JSON errors for unknown routes and methods, OpenAPI at /docs.

That it imports no torch is an import-linter contract (pyproject.toml).
"""


def test_unknown_route_is_a_json_404(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["status"] == 404 and "/docs" in error["message"]


def test_wrong_method_is_a_json_405(client):
    response = client.delete("/api/v1/health")
    assert response.status_code == 405
    assert "DELETE" in response.json()["error"]["message"]


def test_openapi_lists_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/health",
        "/models",
        "/images",
        "/images/{image_id}",
        "/archives",
        "/jobs",
        "/jobs/{job_id}",
    ):
        assert f"/api/v1{path}" in paths
    assert "/api/v1/jobs/{job_id}/results/{name}" in paths
    assert client.get("/docs").status_code == 200
