from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from hitlproject.api.fields import JSONField

from ..models import Action, ApprovalRequest, ApprovalStage, DecisionRecord
from ..selectors import approval_diff, approval_progress, stage_approvals


class StageSerializer(serializers.ModelSerializer):
    users = serializers.SlugRelatedField(many=True, read_only=True, slug_field="username")
    groups = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    claimed_by = serializers.SlugRelatedField(read_only=True, slug_field="username")
    approvals = serializers.SerializerMethodField(help_text="Approvals given so far.")

    class Meta:
        model = ApprovalStage
        fields = [
            "id",
            "order",
            "name",
            "status",
            "required",
            "approvals",
            "users",
            "groups",
            "deadline",
            "on_timeout",
            "claimed_by",
            "opened_at",
            "decided_at",
        ]

    def get_approvals(self, stage: ApprovalStage) -> int:
        return stage_approvals(stage)


class DecisionRecordSerializer(serializers.ModelSerializer):
    stage = serializers.SlugRelatedField(read_only=True, slug_field="name")
    actor = serializers.CharField(source="actor_name")

    class Meta:
        model = DecisionRecord
        fields = [
            "id",
            "stage",
            "actor",
            "action",
            "channel",
            "comment",
            "value",
            "original_value",
            "data",
            "created_at",
        ]


class ApprovalSerializer(serializers.ModelSerializer):
    run = serializers.UUIDField(source="run_id")
    workflow = serializers.CharField(source="run.workflow_name")
    requester = serializers.CharField(source="requester_name")
    current_stage = serializers.SlugRelatedField(read_only=True, slug_field="name")
    deadline = serializers.DateTimeField(
        source="current_stage.deadline", allow_null=True, read_only=True
    )
    progress = serializers.SerializerMethodField()

    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "run",
            "workflow",
            "key",
            "title",
            "status",
            "requester",
            "current_stage",
            "deadline",
            "progress",
            "created_at",
            "decided_at",
        ]

    def get_progress(self, request: ApprovalRequest) -> str:
        return approval_progress(request)


class ApprovalDetailSerializer(ApprovalSerializer):
    stages = StageSerializer(many=True, read_only=True)
    history = DecisionRecordSerializer(many=True, read_only=True, source="decisions")
    decided_by = serializers.SlugRelatedField(read_only=True, slug_field="username")
    diff = serializers.SerializerMethodField()

    class Meta(ApprovalSerializer.Meta):
        fields = [
            *ApprovalSerializer.Meta.fields,
            "description",
            "payload",
            "value",
            "editable",
            "schema",
            "reason",
            "decided_by",
            "diff",
            "stages",
            "history",
        ]

    @extend_schema_field({"type": "array", "items": {"type": "object"}})
    def get_diff(self, request: ApprovalRequest) -> list[dict]:
        return approval_diff(request)


DECIDE_ACTIONS = [Action.APPROVE, Action.REJECT, Action.EDIT, Action.CANCEL, Action.COMMENT]


class DecideSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=[(a.value, a.label) for a in DECIDE_ACTIONS])
    comment = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=5000,
        help_text="Required to reject.",
    )
    value = JSONField(required=False, help_text="The changed value, for edit.")
    stage = serializers.CharField(
        required=False,
        max_length=100,
        help_text="The stage you mean to decide; refused with 409 if it is no longer open.",
    )


class ClaimSerializer(serializers.Serializer):
    release = serializers.BooleanField(default=False, help_text="True to unclaim.")
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class DelegateSerializer(serializers.Serializer):
    users = serializers.ListField(
        child=serializers.CharField(max_length=150),
        required=False,
        default=list,
        help_text="Usernames.",
    )
    groups = serializers.ListField(
        child=serializers.CharField(max_length=150),
        required=False,
        default=list,
        help_text="Group names.",
    )
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)

    def validate(self, attrs):
        if not attrs["users"] and not attrs["groups"]:
            raise serializers.ValidationError("Name at least one user or group to delegate to.")
        return attrs
