from rest_framework import serializers

from apps.versions.document import Text, WholeNumber
from apps.versions.lifecycle import Stage
from apps.web.serializers import Instant

from .models import Invalidation, RequestStatus, TransitionRequest
from .selectors import approver_shortfall, override_holds, production_gate_problems, quality_verdict, transition_request_is_gated, transition_request_is_stale, transition_request_policy


def _quality(transition_request: TransitionRequest) -> dict | None:
    """While a production request (or one for an alias with gates) is pending: the gate as it stands now (what the
    deciding approval will meet); once applied: the gate that decided."""
    if not transition_request_is_gated(transition_request):
        return None
    if transition_request.status != RequestStatus.PENDING:
        return {"decided": transition_request.gate_at_decision}
    verdict = quality_verdict(transition_request.version)
    return verdict.as_dict() | {
        "override_holds": override_holds(transition_request, verdict),
        "problems": production_gate_problems(transition_request.version, transition_request, verdict),
    }


class ApprovalSerializer(serializers.Serializer):
    """One decision on a request; `live` until a later change (new evidence, a stale request) invalidates it."""

    approver = serializers.CharField(source="approver.get_username")
    decision = serializers.CharField()
    comment = serializers.CharField(allow_blank=True)
    created_at = Instant()
    live = serializers.SerializerMethodField()
    invalidation = serializers.SerializerMethodField()

    def get_live(self, approval) -> bool:
        return approval.invalidated_at is None

    def get_invalidation(self, approval) -> str | None:
        return approval.invalidation or (Invalidation.STALE.value if approval.invalidated_at else None)


class TransitionRequestSerializer(serializers.Serializer):
    """A transition request as the API shows it, with the policy, the quality gate and the approvals as they stand."""

    id = serializers.IntegerField(source="pk")
    model = serializers.CharField(source="version.model.name")
    version = serializers.IntegerField(source="version.number")
    from_stage = serializers.SerializerMethodField()
    to_stage = serializers.CharField(allow_blank=True, help_text="The stage to move to; empty when the request points an alias.")
    alias = serializers.SerializerMethodField(help_text="The free alias to point at the version; null for a stage move.")
    status = serializers.CharField()
    requested_by = serializers.CharField(source="requested_by.get_username")
    justification = serializers.CharField(allow_blank=True)
    created_at = Instant()
    decided_at = Instant(allow_null=True)
    required_approvals = serializers.SerializerMethodField()
    approver_group = serializers.SerializerMethodField()
    stale = serializers.SerializerMethodField()
    override_reason = serializers.SerializerMethodField()
    override_baseline = serializers.SerializerMethodField()
    quality_gate = serializers.SerializerMethodField()
    approver_shortfall = serializers.SerializerMethodField()
    approvals = ApprovalSerializer(many=True)

    def to_representation(self, transition_request):
        self._policy = transition_request_policy(transition_request)  # (required approvals, approver group): one read for both fields
        return super().to_representation(transition_request)

    def get_alias(self, transition_request) -> str | None:
        return transition_request.alias or None

    def get_from_stage(self, transition_request) -> str | None:
        return transition_request.from_stage or None

    def get_required_approvals(self, transition_request) -> int:
        return self._policy[0]

    def get_approver_group(self, transition_request) -> str | None:
        group = self._policy[1]
        return group.name if group else None

    def get_stale(self, transition_request) -> bool:
        return transition_request.status == RequestStatus.PENDING and transition_request_is_stale(transition_request)

    def get_override_reason(self, transition_request) -> str | None:
        return transition_request.override_reason or None

    def get_override_baseline(self, transition_request) -> int | None:
        return transition_request.override_baseline.number if transition_request.override_baseline_id else None

    def get_quality_gate(self, transition_request) -> dict | None:
        return _quality(transition_request)

    def get_approver_shortfall(self, transition_request) -> dict | None:
        return approver_shortfall(transition_request)


class PointerChangeSerializer(serializers.Serializer):
    """One move of the production pointer."""

    changed_at = Instant()
    kind = serializers.CharField()
    version = serializers.IntegerField(source="version.number", allow_null=True)
    previous_version = serializers.IntegerField(source="previous_version.number", allow_null=True)
    actor = serializers.CharField(source="actor.get_username", allow_null=True)
    reason = serializers.CharField(allow_blank=True)


def transition_request_to_dict(transition_request: TransitionRequest) -> dict:
    return TransitionRequestSerializer(transition_request).data


def pointer_change_to_dict(change) -> dict:
    return PointerChangeSerializer(change).data


# -- request bodies ---------------------------------------------------------------------------------------------------


class TransitionRequestBodySerializer(serializers.Serializer):
    """POST .../transitions/: the stage to move to (or the alias to point at the version) and why. The service decides
    whether the move is allowed."""

    default_error_messages = {"invalid": "Send a JSON object with 'to_stage' (or 'alias') and optionally 'comment'."}

    to_stage = Text(help_text=f"One of {', '.join(Stage.values)}; leave it out when giving `alias`.")
    alias = Text(help_text="A free alias (e.g. champion) to point at this version, instead of `to_stage`; `production` is the stage.")
    comment = Text(help_text="Why (or `justification`).")
    justification = Text(help_text="The same as `comment`, for older clients.")


class DecisionBodySerializer(serializers.Serializer):
    """POST .../approve/ and .../reject/."""

    default_error_messages = {"invalid": "Send a JSON object, optionally with a 'comment'."}

    comment = Text(help_text="Shown on the request and in the audit log.")


class OverrideQualityBodySerializer(serializers.Serializer):
    """POST .../override-quality/: a manager's reason for letting a failed quality gate pass."""

    default_error_messages = {"invalid": "Send a JSON object with a 'reason'."}

    reason = Text(help_text="Why the failed gate may be overridden (required by the service).")


class RollbackBodySerializer(serializers.Serializer):
    """POST .../rollback/: why, and optionally which earlier production version to return to."""

    default_error_messages = {"invalid": "Send a JSON object with a 'reason' and optionally 'to_version'."}

    reason = Text(help_text="Why production is rolled back.")
    to_version = WholeNumber(
        required=False, allow_null=True, default=None, help_text="An earlier production version; left out, the previous one.",
        error_messages={"invalid": 'Give a version number, e.g. {{"to_version": 3}}, or leave it out for the previous one.'},
    )
