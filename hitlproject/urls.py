from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/review/", permanent=False)),
    path("admin/", admin.site.urls),
    path("approvals/", include("approvals.urls")),
    path("review/", include("approvals.review.urls")),
    path("api/", include("hitlproject.api.urls")),
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
