"""`GET /health`: Redis reachability and the live worker count."""

from fastapi.testclient import TestClient

from backend.api.deps import get_settings
from backend.api.main import create_app
from backend.settings import ApiSettings
from vitscope.stack import free_port


def test_health_reports_redis_and_no_workers_as_degraded_with_503(client):
    response = client.get("/api/v1/health")
    assert response.status_code == 503  # a health check (compose, a load balancer) sees it
    assert response.json() == {"status": "degraded", "redis": True, "workers": 0}


def test_health_reports_an_unreachable_redis():
    app = create_app()
    app.dependency_overrides[get_settings] = lambda: ApiSettings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    response = TestClient(app).get("/api/v1/health")
    assert response.status_code == 503
    assert response.json()["redis"] is False and response.json()["status"] == "degraded"
