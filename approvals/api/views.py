"""Approvals over REST: thin views; every rule lives in ``approvals.services.approval_decide``."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from hitlproject.api.idempotency import idempotent
from hitlproject.api.pagination import CreatedCursorPagination
from workflows.api.views import ERRORS

from .. import selectors, services
from ..models import Action, ApprovalRequest, Channel
from . import serializers as s
from .filters import ApprovalFilter

NOTHING = services.NOTHING
ACTIONS = ("decide", "claim", "delegate")


@extend_schema_view(
    list=extend_schema(
        summary="Approval requests you may see",
        responses={200: s.ApprovalSerializer(many=True), 400: ERRORS[400]},
    ),
    retrieve=extend_schema(
        summary="A request with its stages, decision history and diff",
        responses={200: s.ApprovalDetailSerializer, 404: ERRORS[404]},
    ),
)
class ApprovalViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.ApprovalSerializer
    filterset_class = ApprovalFilter
    pagination_class = CreatedCursorPagination
    lookup_value_regex = r"[0-9a-fA-F-]{32,36}"

    def get_queryset(self):
        queryset = selectors.approvals_to_list(
            self.request.user, waiting_for_me=self.action == "list" and self._only_waiting_for_me()
        )
        if self.action in ACTIONS:
            # The decision service locks and re-reads the request; the answer is built from a
            # fresh read afterwards. Progress and prefetches here would be read and thrown away.
            return queryset
        if self.action == "list":
            return selectors.with_progress(queryset)
        return selectors.with_details(queryset)

    def _only_waiting_for_me(self) -> bool:
        # Read with the filter's own widget, so "applied" here means applied by the filter.
        widget = ApprovalFilter.base_filters["assigned_to_me"].field.widget
        return widget.value_from_datadict(self.request.query_params, {}, "assigned_to_me") is True

    def get_serializer_class(self):
        return s.ApprovalSerializer if self.action == "list" else s.ApprovalDetailSerializer

    def get_object(self):
        try:
            return super().get_object()
        except (DjangoValidationError, ValueError):
            raise NotFound() from None

    def _act(self, request, body_class, to_service) -> Response:
        """Validate the body, apply it through the decision service (which owns every rule),
        and answer with the request as it now stands."""
        approval = self.get_object()
        body = body_class(data=request.data)
        body.is_valid(raise_exception=True)
        services.approval_decide(
            request=approval,
            actor=request.user,
            channel=Channel.API,
            **to_service(body.validated_data),
        )
        # By primary key: get_object() already checked visibility; no need to pay for it again.
        fresh = selectors.with_details(ApprovalRequest.objects.filter(pk=approval.pk)).get()
        return Response(s.ApprovalDetailSerializer(fresh).data)

    @extend_schema(
        summary="Approve, reject (reason required), edit, cancel or comment",
        request=s.DecideSerializer,
        responses={200: s.ApprovalDetailSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def decide(self, request, pk=None):
        return self._act(
            request,
            s.DecideSerializer,
            lambda data: {
                "action": data["action"],
                "comment": data["comment"],
                "value": data.get("value", NOTHING),
                "stage": data.get("stage"),
            },
        )

    @extend_schema(
        summary="Claim the open stage (or release it)",
        request=s.ClaimSerializer,
        responses={200: s.ApprovalDetailSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def claim(self, request, pk=None):
        return self._act(
            request,
            s.ClaimSerializer,
            lambda data: {
                "action": Action.UNCLAIM if data["release"] else Action.CLAIM,
                "comment": data["comment"],
            },
        )

    @extend_schema(
        summary="Delegate the open stage to other users or groups",
        request=s.DelegateSerializer,
        responses={200: s.ApprovalDetailSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def delegate(self, request, pk=None):
        return self._act(
            request,
            s.DelegateSerializer,
            lambda data: {
                "action": Action.DELEGATE,
                "users": data["users"],
                "groups": data["groups"],
                "comment": data["comment"],
            },
        )
