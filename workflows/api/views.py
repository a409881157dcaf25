"""Thin DRF views over the workflow services and selectors; no rules live here."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from hitlproject.api.idempotency import idempotent
from hitlproject.api.pagination import CreatedCursorPagination
from hitlproject.parsing import whole_number

from .. import permissions, services
from ..errors import WorkflowNotFound
from ..models import WaitKind, WaitPoint, WaitStatus
from ..registry import registry
from . import serializers as s
from .filters import InputRequestFilter, RunFilter

ERRORS = {
    400: OpenApiResponse(s.ErrorSerializer, description="Invalid input; `fields` says where."),
    403: OpenApiResponse(s.ErrorSerializer, description="Not allowed."),
    404: OpenApiResponse(s.ErrorSerializer, description="Not found (or not visible to you)."),
    409: OpenApiResponse(s.ErrorSerializer, description="Conflicts with the current state."),
    429: OpenApiResponse(s.ErrorSerializer, description="Too many requests; retry later."),
}


@extend_schema_view(
    list=extend_schema(summary="Registered workflows with their input schemas"),
    retrieve=extend_schema(
        summary="One workflow", responses={200: s.WorkflowSerializer, 404: ERRORS[404]}
    ),
)
class WorkflowViewSet(viewsets.ViewSet):
    lookup_field = "name"
    lookup_value_regex = r"[^/]+"
    serializer_class = s.WorkflowSerializer

    def list(self, request):
        return Response(s.WorkflowSerializer(registry.all(), many=True).data)

    def retrieve(self, request, name=None):
        try:
            definition = registry.get(name)
        except WorkflowNotFound as exc:
            raise NotFound(str(exc)) from None
        return Response(s.WorkflowSerializer(definition).data)


class UUIDLookupMixin:
    """Primary keys are UUIDs: anything else is simply not found (never a 500)."""

    lookup_value_regex = r"[0-9a-fA-F-]{32,36}"

    def get_object(self):
        try:
            return super().get_object()
        except (DjangoValidationError, ValueError):
            raise NotFound() from None


@extend_schema_view(
    list=extend_schema(
        summary="Runs you may see", responses={200: s.RunSerializer(many=True), 400: ERRORS[400]}
    ),
    retrieve=extend_schema(
        summary="A run with its steps and waits",
        responses={200: s.RunDetailSerializer, 404: ERRORS[404]},
    ),
)
class RunViewSet(
    UUIDLookupMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = s.RunSerializer
    filterset_class = RunFilter
    pagination_class = CreatedCursorPagination

    def get_queryset(self):
        open_waits = Prefetch(
            "waits",
            queryset=WaitPoint.objects.filter(status=WaitStatus.OPEN).order_by("sequence"),
            to_attr="open_waits",
        )
        queryset = permissions.runs_visible_to(self.request.user)
        if self.action == "retrieve":
            return queryset.prefetch_related("steps", "waits", open_waits)
        return queryset.prefetch_related(open_waits)

    def get_serializer_class(self):
        return s.RunDetailSerializer if self.action == "retrieve" else s.RunSerializer

    @extend_schema(
        summary="Start a run",
        request=s.RunStartSerializer,
        responses={
            201: s.RunDetailSerializer,
            200: s.RunDetailSerializer,
            400: ERRORS[400],
            403: ERRORS[403],
        },
    )
    @idempotent
    def create(self, request):
        if not permissions.can_start_runs(request.user):
            raise PermissionDenied("You may not start workflow runs (workflows.add_workflowrun).")
        body = s.RunStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run, created = services.run_start(
            workflow_name=body.validated_data["workflow"],
            input=body.validated_data["input"],
            idempotency_key=body.validated_data["idempotency_key"],
            created_by=request.user,
        )
        # A run returned for an idempotency key may belong to someone else: show it only to
        # those who may see it.
        if not created and not permissions.can_view_run(request.user, run):
            raise PermissionDenied("That idempotency key belongs to a run you may not see.")
        return Response(
            s.RunDetailSerializer(run).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    def _managed_run(self, pk):
        run = self.get_object()
        if not permissions.can_manage_run(self.request.user, run):
            raise PermissionDenied("Only the run's creator or a run manager may do this.")
        return run

    @extend_schema(
        summary="Cancel a run",
        request=s.CancelSerializer,
        responses={200: s.RunDetailSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def cancel(self, request, pk=None):
        run = self._managed_run(pk)
        body = s.CancelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = services.run_cancel(
            run_id=run.pk, reason=body.validated_data["reason"], cancelled_by=request.user
        )
        return Response(s.RunDetailSerializer(run).data)

    @extend_schema(
        summary="Retry a failed run from its failed step",
        request=None,
        responses={200: s.RunDetailSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def retry(self, request, pk=None):
        run = self._managed_run(pk)
        run = services.run_retry(run_id=run.pk, retried_by=request.user)
        return Response(s.RunDetailSerializer(run).data)

    @extend_schema(
        summary="The run's event stream (the outbox), oldest first",
        parameters=[
            OpenApiParameter(
                "since",
                int,
                description="Only events after this seq (default 0: all).",
            )
        ],
        responses={200: s.RunEventSerializer(many=True), 400: ERRORS[400], 404: ERRORS[404]},
    )
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def events(self, request, pk=None):
        run = self.get_object()
        # Refused like the WebSocket's since (realtime.consumers.parse_since), not read as 0:
        # a client sending a bad cursor would otherwise get the whole stream again unawares.
        since = whole_number(request.query_params.get("since", "0"))
        if since is None:
            raise ValidationError({"since": ["Must be a whole number (an event's seq) >= 0."]})
        events = run.events.filter(seq__gt=since).order_by("seq")[:1000]
        return Response(s.RunEventSerializer(events, many=True).data)


@extend_schema_view(
    list=extend_schema(
        summary="Input requests of runs you may see",
        responses={200: s.InputRequestSerializer(many=True), 400: ERRORS[400]},
    ),
    retrieve=extend_schema(
        summary="One input request", responses={200: s.InputRequestSerializer, 404: ERRORS[404]}
    ),
)
class InputRequestViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = s.InputRequestSerializer
    filterset_class = InputRequestFilter
    pagination_class = CreatedCursorPagination

    def get_queryset(self):
        return WaitPoint.objects.filter(
            kind=WaitKind.INPUT, run__in=permissions.runs_visible_to(self.request.user)
        ).select_related("run")

    @extend_schema(
        summary="Answer an input request",
        request=s.InputAnswerSerializer,
        responses={200: s.InputRequestSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def answer(self, request, pk=None):
        wait = self.get_object()
        if not permissions.can_answer_input(request.user, wait.run):
            raise PermissionDenied("You may not answer this run's input requests.")
        body = s.InputAnswerSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        wait = services.input_answer(
            request_id=wait.pk, data=body.validated_data["data"], answered_by=request.user
        )
        return Response(s.InputRequestSerializer(wait).data)


class EventView(APIView):
    """Send an event: every run waiting on ``event_id`` resumes with ``data``."""

    serializer_class = s.EventSerializer

    @extend_schema(
        summary="Notify: resolve waits on an event id",
        request=s.EventSerializer,
        responses={200: s.NotifyResultSerializer, 400: ERRORS[400], 403: ERRORS[403]},
    )
    @idempotent
    def post(self, request):
        if not permissions.can_send_events(request.user):
            raise PermissionDenied("You may not send events (workflows.send_event).")
        body = s.EventSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.event_notify(
            event_id=body.validated_data["event_id"], data=body.validated_data["data"]
        )
        return Response(s.NotifyResultSerializer(result.as_dict()).data)
