"""Who hears of a request's life and of rollbacks (apps.notifications), called by the services in their transaction.

Eligible reviewers are the active users granted *approve transitions* on the model (directly or through a team), in the
policy's approver group when one is set, never the requester; superusers hear only through such a grant. Nobody is
told of their own action.
"""

from django.urls import reverse

from apps.models.models import RegisteredModel
from apps.models.permissions import Action, users_holding
from apps.notifications.models import Kind
from apps.notifications.services import notify
from apps.versions.aliases import PRODUCTION_ALIAS
from apps.versions.models import ModelVersion

from .models import Decision, RequestStatus, TransitionRequest
from .selectors import transition_request_policy


def _reviewers(transition_request: TransitionRequest):
    _, group = transition_request_policy(transition_request)
    reviewers = users_holding(transition_request.version.model, Action.APPROVE_TRANSITION).exclude(pk=transition_request.requested_by_id)
    return reviewers.filter(groups=group) if group is not None else reviewers


def _about(transition_request: TransitionRequest) -> str:
    version = transition_request.version
    target = f"@{transition_request.alias}" if transition_request.alias else transition_request.to_stage
    return f"{version.model.name} v{version.number} → {target}"


def _review_url(transition_request: TransitionRequest) -> str:
    return reverse("approvals:review", args=[transition_request.pk])


def review_requested(transition_request: TransitionRequest, actor) -> None:
    notify(
        recipients=_reviewers(transition_request), kind=Kind.REVIEW_REQUESTED, model=transition_request.version.model, actor=actor,
        title=f"Review request #{transition_request.pk}: {_about(transition_request)}, asked by {actor.get_username()}",
        body=transition_request.justification, url=_review_url(transition_request),
    )


def request_approved(transition_request: TransitionRequest, actor, comment: str) -> None:
    applied = transition_request.status == RequestStatus.APPLIED
    outcome = "and the move was applied" if applied else "more approvals are needed"
    notify(
        recipients=[transition_request.requested_by], kind=Kind.REQUEST_APPROVED, model=transition_request.version.model, actor=actor,
        title=f"{actor.get_username()} approved request #{transition_request.pk} ({_about(transition_request)}); {outcome}",
        body=comment, url=_review_url(transition_request),
    )


def request_rejected(transition_request: TransitionRequest, actor, comment: str) -> None:
    notify(
        recipients=[transition_request.requested_by], kind=Kind.REQUEST_REJECTED, model=transition_request.version.model, actor=actor,
        title=f"{actor.get_username()} rejected request #{transition_request.pk} ({_about(transition_request)})",
        body=comment, url=_review_url(transition_request),
    )


def request_withdrawn(transition_request: TransitionRequest, actor) -> None:
    """The requester withdrew it: the reviewers it was waiting for no longer need to look."""
    notify(
        recipients=_reviewers(transition_request), kind=Kind.REQUEST_WITHDRAWN, model=transition_request.version.model, actor=actor,
        title=f"{actor.get_username()} withdrew request #{transition_request.pk} ({_about(transition_request)}); it no longer needs review",
        url=_review_url(transition_request),
    )


def approvals_went_stale(model: RegisteredModel, previous_production_id: int | None, actor, *, decided: TransitionRequest | None = None) -> None:
    """Production just moved away from `previous_production_id`: the requesters of pending requests holding approvals
    given under it learn that those approvals no longer count."""
    pending = TransitionRequest.objects.pending().filter(
        version__model=model, approvals__decision=Decision.APPROVE, approvals__invalidated_at__isnull=True,
        approvals__production_version_at_approval_id=previous_production_id,
    )
    if decided is not None:
        pending = pending.exclude(pk=decided.pk)
    for transition_request in pending.select_related("version__model", "requested_by").distinct():
        notify(
            recipients=[transition_request.requested_by], kind=Kind.REQUEST_STALE, model=model, actor=actor,
            title=f"Approvals on request #{transition_request.pk} ({_about(transition_request)}) went stale: production moved",
            body="The approvals were given while another version was in production; reviewers must approve again.",
            url=_review_url(transition_request),
        )


def rolled_back(model: RegisteredModel, actor, *, alias: str, previous: ModelVersion | None, to_version: ModelVersion, reason: str) -> None:
    """The model's managers learn that `alias` (`production` or a free alias) was rolled back, with a link to its history."""
    was = f" from v{previous.number}" if previous is not None else ""
    if alias == PRODUCTION_ALIAS:
        pointer, url = PRODUCTION_ALIAS, reverse("approvals:history", args=[model.name])
    else:
        pointer, url = f"@{alias}", reverse("aliases:detail", args=[model.name, alias])
    notify(
        recipients=users_holding(model, Action.MANAGE), kind=Kind.ROLLED_BACK, model=model, actor=actor,
        title=f"{actor.get_username()} rolled {model.name} {pointer} back{was} to v{to_version.number}",
        body=reason, url=url,
    )
