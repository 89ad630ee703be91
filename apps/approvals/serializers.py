from rest_framework import serializers

from apps.versions.document import Text, WholeNumber
from apps.versions.lifecycle import Stage

from .models import Invalidation, RequestStatus, TransitionRequest
from .selectors import approver_shortfall, override_holds, production_gate_problems, quality_verdict, request_is_stale, request_policy


def _quality(transition_request: TransitionRequest) -> dict | None:
    """While a production request is pending: the gate as it stands now (what the deciding approval will meet);
    once applied: the gate that decided."""
    if transition_request.to_stage != Stage.PRODUCTION:
        return None
    if transition_request.status != RequestStatus.PENDING:
        return {"decided": transition_request.gate_at_decision}
    verdict = quality_verdict(transition_request.version)
    return verdict.as_dict() | {
        "override_holds": override_holds(transition_request, verdict),
        "problems": production_gate_problems(transition_request.version, transition_request, verdict),
    }


def request_to_dict(transition_request: TransitionRequest) -> dict:
    required, group = request_policy(transition_request)
    return {
        "id": transition_request.pk,
        "model": transition_request.version.model.name,
        "version": transition_request.version.number,
        "from_stage": transition_request.from_stage or None,
        "to_stage": transition_request.to_stage,
        "status": transition_request.status,
        "requested_by": transition_request.requested_by.get_username(),
        "justification": transition_request.justification,
        "created_at": transition_request.created_at.isoformat(),
        "decided_at": transition_request.decided_at.isoformat() if transition_request.decided_at else None,
        "required_approvals": required,
        "approver_group": group.name if group else None,
        "stale": transition_request.status == RequestStatus.PENDING and request_is_stale(transition_request),
        "override_reason": transition_request.override_reason or None,
        "override_baseline": transition_request.override_baseline.number if transition_request.override_baseline_id else None,
        "quality_gate": _quality(transition_request),
        "approver_shortfall": approver_shortfall(transition_request),
        "approvals": [
            {
                "approver": a.approver.get_username(),
                "decision": a.decision,
                "comment": a.comment,
                "created_at": a.created_at.isoformat(),
                "live": a.invalidated_at is None,
                "invalidation": a.invalidation or (Invalidation.STALE.value if a.invalidated_at else None),
            }
            for a in transition_request.approvals.all()
        ],
    }


# -- request bodies ---------------------------------------------------------------------------------------------------


class TransitionRequestBodySerializer(serializers.Serializer):
    """POST .../transitions/: the stage to move to and why. The service decides whether the move is allowed."""

    default_error_messages = {"invalid": "Send a JSON object with 'to_stage' and optionally 'comment'."}

    to_stage = Text(help_text=f"One of {', '.join(Stage.values)}.")
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
