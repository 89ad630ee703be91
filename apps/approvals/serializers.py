from .models import TransitionRequest
from .services import approval_policy, request_is_stale


def request_to_dict(request: TransitionRequest) -> dict:
    required, group = approval_policy(request.version.model, request.to_stage)
    return {
        "id": request.pk,
        "model": request.version.model.name,
        "version": request.version.number,
        "to_stage": request.to_stage,
        "status": request.status,
        "requested_by": request.requested_by.get_username(),
        "justification": request.justification,
        "created_at": request.created_at.isoformat(),
        "decided_at": request.decided_at.isoformat() if request.decided_at else None,
        "required_approvals": required,
        "approver_group": group.name if group else None,
        "stale": request.status == "pending" and request_is_stale(request),
        "override_reason": request.override_reason or None,
        "approvals": [
            {
                "approver": a.approver.get_username(),
                "decision": a.decision,
                "comment": a.comment,
                "created_at": a.created_at.isoformat(),
                "live": a.invalidated_at is None,
            }
            for a in request.approvals.all()
        ],
    }
