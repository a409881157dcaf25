from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from hitlproject.api.errors import json_not_found

urlpatterns = [
    path("", RedirectView.as_view(url="/review/", permanent=False)),
    path("admin/", admin.site.urls),
    path("approvals/", include("approvals.urls")),
    path("review/", include("approvals.review.urls")),
    path("api/", include("hitlproject.api.urls")),
    # handler404 is skipped while DEBUG is on (Django's HTML debug page instead), which is how
    # `dev up` runs: an API path matching no route (a malformed id) still answers JSON. Only
    # paths ending in "/", so APPEND_SLASH still redirects ".../runs" to ".../runs/".
    re_path(r"^api/(?:.*/)?$", json_not_found),
]


def handler404(request, exception):
    """JSON for API clients, Django's page for people."""
    if request.path.startswith("/api/"):
        from hitlproject.api.errors import json_not_found

        return json_not_found(request, exception)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if request.path.startswith("/api/"):
        from hitlproject.api.errors import json_server_error

        return json_server_error(request)
    from django.views.defaults import server_error

    return server_error(request)
