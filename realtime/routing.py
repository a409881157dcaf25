"""WebSocket URL routes (mounted by hitlproject.asgi)."""

from django.urls import path

from . import consumers

websocket_urlpatterns = [
    path("ws/runs/<uuid:run_id>/", consumers.RunConsumer.as_asgi()),
    path("ws/approvals/", consumers.ApprovalQueueConsumer.as_asgi()),
]
