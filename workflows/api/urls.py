from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views, webhooks

router = SimpleRouter()
router.register("workflows", views.WorkflowViewSet, basename="workflow")
router.register("runs", views.RunViewSet, basename="run")
router.register("input-requests", views.InputRequestViewSet, basename="input-request")

urlpatterns = [
    *router.urls,
    path("events/", views.EventView.as_view(), name="events"),
    path("webhooks/inbound/", webhooks.InboundWebhookView.as_view(), name="inbound-webhook"),
]
