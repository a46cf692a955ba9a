"""Bad uploads get a 4xx JSON error and store nothing (keys counted in the real Redis)."""

import pytest

from tests.utils.uploads import header_only_png, image_bytes, truncated_png

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("field", "data", "status"),
    [
        ("file", b"this is not an image", 415),
        ("file", truncated_png(), 422),
        ("file", header_only_png(20_000, 20_000), 413),
        ("file", b"", 400),
        ("upload", image_bytes(), 422),
    ],
    ids=["not-an-image", "truncated-png", "20000x20000-png", "zero-bytes", "wrong-form-field"],
)
def test_bad_upload_is_refused_and_stores_nothing(stack, field, data, status):
    stack.settle()
    before = stack.stored()
    response = stack.client.post("/api/v1/images", files={field: ("x.png", data, "image/png")})
    assert response.status_code == status
    assert response.json()["error"]["status"] == status and response.json()["error"]["message"]
    assert stack.stored() == before
