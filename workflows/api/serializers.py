from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from hitlproject.api.fields import JSONField

from ..models import RunEvent, Step, WaitPoint, WaitStatus, WorkflowRun
from ..registry import WorkflowDefinition, registry
from ..schema import serializer_json_schema


class WorkflowSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField(help_text="The newest version; new runs use it.")
    versions = serializers.SerializerMethodField(help_text="Registered versions.")
    description = serializers.CharField()
    input_schema = serializers.SerializerMethodField()

    def get_versions(self, instance: WorkflowDefinition) -> list[int]:
        return registry.versions(instance.name)

    @extend_schema_field({"type": "object", "description": "JSON Schema of the input."})
    def get_input_schema(self, instance: WorkflowDefinition) -> dict:
        return serializer_json_schema(instance.input_serializer)


class StepSerializer(serializers.ModelSerializer):
    class Meta:
        model = Step
        fields = [
            "sequence",
            "name",
            "kind",
            "status",
            "attempts",
            "max_attempts",
            "result",
            "error",
            "next_attempt_at",
            "started_at",
            "finished_at",
        ]


class WaitSerializer(serializers.ModelSerializer):
    class Meta:
        model = WaitPoint
        fields = [
            "id",
            "sequence",
            "kind",
            "key",
            "event_id",
            "deadline",
            "status",
            "resolution",
            "resolved_at",
            "created_at",
        ]


def waiting_for(run: WorkflowRun) -> dict | None:
    waits = getattr(run, "open_waits", None)
    if waits is None:
        waits = [w for w in run.waits.all() if w.status == WaitStatus.OPEN]
    if not waits:
        return None
    wait = waits[0]
    return {
        "wait_id": str(wait.id),
        "kind": wait.kind,
        "key": wait.key,
        "event_id": wait.event_id or None,
        "deadline": wait.deadline,
    }


class RunSerializer(serializers.ModelSerializer):
    workflow = serializers.CharField(source="workflow_name")
    version = serializers.IntegerField(source="workflow_version")
    waiting_for = serializers.SerializerMethodField()

    class Meta:
        model = WorkflowRun
        fields = [
            "id",
            "workflow",
            "version",
            "status",
            "idempotency_key",
            "waiting_for",
            "created_at",
            "updated_at",
            "finished_at",
        ]

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "properties": {
                "wait_id": {"type": "string"},
                "kind": {"type": "string"},
                "key": {"type": "string"},
                "event_id": {"type": "string", "nullable": True},
                "deadline": {"type": "string", "format": "date-time", "nullable": True},
            },
        }
    )
    def get_waiting_for(self, run: WorkflowRun) -> dict | None:
        return waiting_for(run)


class RunDetailSerializer(RunSerializer):
    steps = StepSerializer(many=True, read_only=True)
    waits = WaitSerializer(many=True, read_only=True)

    class Meta(RunSerializer.Meta):
        fields = [
            *RunSerializer.Meta.fields,
            "input",
            "result",
            "error",
            "error_type",
            "started_at",
            "steps",
            "waits",
        ]


class RunStartSerializer(serializers.Serializer):
    workflow = serializers.CharField(max_length=200)
    input = JSONField(required=False, default=dict)
    idempotency_key = serializers.CharField(
        max_length=255,
        required=False,
        allow_null=True,
        default=None,
        help_text="Starting again with the same key returns the same run.",
    )


class InputRequestSerializer(serializers.ModelSerializer):
    request_id = serializers.SerializerMethodField()
    run = serializers.UUIDField(source="run_id")
    workflow = serializers.CharField(source="run.workflow_name")
    prompt = serializers.SerializerMethodField()
    schema = serializers.SerializerMethodField()
    metadata = serializers.SerializerMethodField()

    class Meta:
        model = WaitPoint
        fields = [
            "id",
            "request_id",
            "run",
            "workflow",
            "key",
            "prompt",
            "schema",
            "metadata",
            "deadline",
            "status",
            "resolution",
            "resolved_at",
            "created_at",
        ]

    def get_request_id(self, wait: WaitPoint) -> str:
        return wait.event_id or str(wait.id)

    def get_prompt(self, wait: WaitPoint) -> str:
        return wait.request.get("prompt") or ""

    @extend_schema_field({"type": "object", "nullable": True})
    def get_schema(self, wait: WaitPoint) -> dict | None:
        return wait.request.get("schema")

    @extend_schema_field({"type": "object"})
    def get_metadata(self, wait: WaitPoint) -> dict:
        return wait.request.get("metadata") or {}


class InputAnswerSerializer(serializers.Serializer):
    data = JSONField(help_text="The answer; validated against the request's schema.")


class EventSerializer(serializers.Serializer):
    event_id = serializers.CharField(max_length=255)
    data = JSONField(required=False, default=None, allow_null=True)


class NotifyResultSerializer(serializers.Serializer):
    event_id = serializers.CharField()
    resumed = serializers.IntegerField(help_text="Runs resumed by this event.")
    stored = serializers.BooleanField(
        help_text="True when nobody waited yet: the event is kept for the first wait on it."
    )


class RunEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunEvent
        fields = ["seq", "type", "data", "created_at"]


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(required=False, child=serializers.ListField())
