from apps.versions.lifecycle import Stage
from .models import RequestStatus, TransitionRequest
from .selectors import approver_shortfall
from .services import override_holds, production_gate_problems, quality_verdict, request_is_stale, request_policy


def _quality(request: TransitionRequest) -> dict | None:
    """While a production request is pending: the gate as it stands now (what the deciding approval will meet);
    once applied: the gate that decided."""
    if request.to_stage != Stage.PRODUCTION:
        return None
    if request.status != RequestStatus.PENDING:
        return {"decided": request.gate_at_decision}
    verdict = quality_verdict(request.version)
    return verdict.as_dict() | {
        "override_holds": override_holds(request, verdict),
        "problems": production_gate_problems(request.version, request, verdict),
    }


def request_to_dict(request: TransitionRequest) -> dict:
    required, group = request_policy(request)
    return {
        "id": request.pk,
        "model": request.version.model.name,
        "version": request.version.number,
        "from_stage": request.from_stage or None,
        "to_stage": request.to_stage,
        "status": request.status,
        "requested_by": request.requested_by.get_username(),
        "justification": request.justification,
        "created_at": request.created_at.isoformat(),
        "decided_at": request.decided_at.isoformat() if request.decided_at else None,
        "required_approvals": required,
        "approver_group": group.name if group else None,
        "stale": request.status == RequestStatus.PENDING and request_is_stale(request),
        "override_reason": request.override_reason or None,
        "override_baseline": request.override_baseline.number if request.override_baseline_id else None,
        "quality_gate": _quality(request),
        "approver_shortfall": approver_shortfall(request),
        "approvals": [
            {
                "approver": a.approver.get_username(),
                "decision": a.decision,
                "comment": a.comment,
                "created_at": a.created_at.isoformat(),
                "live": a.invalidated_at is None,
                "invalidation": a.invalidation or ("stale" if a.invalidated_at else None),
            }
            for a in request.approvals.all()
        ],
    }
