from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from hitlproject.parsing import parse_json

from .. import webhooks
from ..errors import InvalidInput
from .views import ERRORS


def _not_json(constant: str) -> None:
    # Python's json reads NaN and Infinity; JSON (and DRF's strict parser) does not.
    raise ValueError(f"{constant} is not a JSON value")


class InboundWebhookView(APIView):
    """Signed webhooks from outside systems; the signature is the authentication."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    # Senders are anonymous until verified; their own rate, counted per client address.
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "webhook"

    @extend_schema(
        summary="Signed inbound webhook (send an event, decide an approval)",
        parameters=[
            OpenApiParameter(
                webhooks.TIMESTAMP_HEADER,
                location="header",
                required=True,
                description="Unix seconds; within 5 minutes of the server.",
            ),
            OpenApiParameter(
                webhooks.SIGNATURE_HEADER,
                location="header",
                required=True,
                description='"sha256=" + hex HMAC-SHA256 of "<timestamp>.<body>".',
            ),
        ],
        request=inline_serializer(
            "InboundWebhook",
            {
                "action": serializers.ChoiceField(choices=["event.notify", "approval.decide"]),
                "event_id": serializers.CharField(required=False),
                "data": serializers.JSONField(required=False),
            },
        ),
        responses={
            200: inline_serializer("InboundWebhookResult", {"result": serializers.DictField()}),
            400: ERRORS[400],
            401: ERRORS[403],
            404: ERRORS[404],
            409: ERRORS[409],
            429: ERRORS[429],
        },
    )
    def post(self, request):
        body = request.body  # the raw bytes that were signed
        try:
            # A body nested too deeply is a ValueError like any bad JSON (not a RecursionError
            # and a 500), so an unsigned one is refused below (401) before anything else.
            payload = parse_json(body or b"null", parse_constant=_not_json)
        except (ValueError, UnicodeDecodeError) as exc:
            # Verify first: an unsigned caller learns nothing about our parsing.
            webhooks.verify(
                timestamp=request.headers.get(webhooks.TIMESTAMP_HEADER),
                signature=request.headers.get(webhooks.SIGNATURE_HEADER),
                body=body,
            )
            raise InvalidInput(f"The webhook body is not valid JSON: {exc}") from None
        result = webhooks.receive(
            timestamp=request.headers.get(webhooks.TIMESTAMP_HEADER),
            signature=request.headers.get(webhooks.SIGNATURE_HEADER),
            body=body,
            payload=payload,
        )
        return Response({"result": result})
