"""API errors are JSON even with DEBUG on (how `dev up` runs), where handler404 is skipped."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path", ["/api/v1/runs/not-a-uuid/", "/api/v1/approvals/xyz/", "/api/v1/", "/api/nothing/"]
)
def test_an_api_path_matching_no_route_answers_json_404_with_debug_on(admin_client, settings, path):
    settings.DEBUG = True
    response = admin_client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_found"
    assert path in response.json()["message"]


def test_a_list_without_its_trailing_slash_is_still_redirected(admin_client, settings):
    settings.DEBUG = True
    response = admin_client.get("/api/v1/runs")
    assert response.status_code == 301 and response["Location"] == "/api/v1/runs/"
