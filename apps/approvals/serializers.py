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
