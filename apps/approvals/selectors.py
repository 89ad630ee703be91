from django.contrib.auth import get_user_model
from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import Http404
from guardian.shortcuts import get_users_with_perms

from apps.accounts.teams import team_leads_group
from apps.models.permissions import Action, models_where, visible_models
from apps.versions.models import ProductionPointerChange

from .models import Approval, Decision, RequestStatus, TransitionRequest
from .services import request_policy

NAMES_SHOWN = 5


def requests_with_details(queryset: QuerySet[TransitionRequest] | None = None) -> QuerySet[TransitionRequest]:
    queryset = queryset if queryset is not None else TransitionRequest.objects.all()
    related = ("version__model__team", "version__created_by", "requested_by", "override_by", "override_baseline")
    return queryset.select_related(*related).prefetch_related(
        Prefetch("approvals", queryset=Approval.objects.select_related("approver"))
    )


def request_for(user, pk: int) -> TransitionRequest:
    """A transition request on a model the user may view, or 404."""
    request = requests_with_details(TransitionRequest.objects.filter(pk=pk, version__model__in=visible_models(user))).first()
    if request is None:
        raise Http404("No such transition request.")
    return request


def approval_inbox(user) -> QuerySet[TransitionRequest]:
    """Pending requests on models the user may approve, not their own, oldest first."""
    return (
        requests_with_details(TransitionRequest.objects.pending().filter(version__model__in=models_where(user, Action.APPROVE_TRANSITION)))
        .exclude(requested_by=user)
        .annotate(live_approvals=Count("approvals", filter=Q(approvals__decision="approve", approvals__invalidated_at__isnull=True)))
        .order_by("created_at", "id")
    )


def requests_for_version(version) -> QuerySet[TransitionRequest]:
    return requests_with_details(TransitionRequest.objects.filter(version=version))


def rollback_candidates(model, production=None) -> list[int]:
    """Numbers of the versions that were in production before and could be rolled back to, newest first."""
    changes = ProductionPointerChange.objects.filter(model=model, version__isnull=False).order_by("-changed_at", "-id")
    if production is not None:
        changes = changes.exclude(version=production)
    return list(dict.fromkeys(changes.values_list("version__number", flat=True)))


def _holders(model, action: str):
    """Active users holding `action` on the model through a direct or group grant (superusers not counted)."""
    return get_users_with_perms(model, only_with_perms_in=[Action(action).value], with_group_users=True).filter(is_active=True)


class ApproverRoster:
    """Who may approve on one model, and who could fix a lack of approvers; read once for all its pending requests."""

    def __init__(self, model):
        self.model = model
        self.approvers: dict[int, str] = dict(_holders(model, Action.APPROVE_TRANSITION).values_list("pk", "username"))
        self._members: dict[int, set[int]] = {}
        self._policies: dict[tuple[str, str], tuple[int, object]] = {}
        self._fixers: dict | None = None

    def policy(self, request: TransitionRequest) -> tuple[int, object]:
        key = (request.from_stage or request.version.stage, request.to_stage)
        if key not in self._policies:
            self._policies[key] = request_policy(request)
        return self._policies[key]

    def members(self, group) -> set[int]:
        if group.pk not in self._members:
            self._members[group.pk] = set(group.user_set.values_list("pk", flat=True))
        return self._members[group.pk]

    def fixers(self) -> dict:
        if self._fixers is None:
            leads = team_leads_group(self.model.team)
            self._fixers = {
                "managers": sorted(_holders(self.model, Action.MANAGE).values_list("username", flat=True)[:NAMES_SHOWN]),
                "administrators": sorted(get_user_model().objects.filter(is_superuser=True, is_active=True).values_list("username", flat=True)[:NAMES_SHOWN]),
                "leads_group": leads.name if leads else None,
            }
        return self._fixers


def approver_shortfall(request: TransitionRequest, roster: ApproverRoster | None = None) -> dict | None:
    """Why a pending request cannot collect its approvals from anyone but its requester, and who can fix that; None if it can.

    Eligible: active users granted *approve transitions* on the model (directly or through a team, e.g. its leads
    group), in the policy's group if one is set, other than the requester and those whose approval already counts.
    Superusers are not counted: they can always approve, and are named as the way out.
    """
    if request.status != RequestStatus.PENDING:
        return None
    roster = roster or ApproverRoster(request.version.model)
    required, group = roster.policy(request)
    if not required:
        return None
    allowed = roster.members(group) if group is not None else None
    given = {
        a.approver_id for a in request.approvals.all()
        if a.decision == Decision.APPROVE and a.invalidated_at is None and (allowed is None or a.approver_id in allowed)
    }
    available = sorted(
        name for pk, name in roster.approvers.items() if pk != request.requested_by_id and pk not in given and (allowed is None or pk in allowed)
    )
    missing = required - len(given)
    if len(available) >= missing:
        return None
    where = f" from members of '{group.name}'" if group is not None else ""
    if not available and not given:
        message = f"Nobody but the requester ({request.requested_by.get_username()}) may approve this request{where}."
    else:
        shown = ", ".join(available[:NAMES_SHOWN]) or "none"
        message = f"This request needs {missing} more approval(s){where}, but only {len(available)} other person(s) may give one ({shown})."
    fixers = roster.fixers()
    to_whom = f" to a member of '{group.name}'" if group is not None else ""
    add_lead = f"add a lead to the group '{fixers['leads_group']}'" if fixers["leads_group"] else "grant it too"
    fix = (
        f"Managers of '{roster.model.name}' ({', '.join(fixers['managers']) or 'none'}) can grant 'Approve transitions'{to_whom} on its "
        f"Permissions page; administrators ({', '.join(fixers['administrators']) or 'none'}) can {add_lead} or approve it themselves."
    )
    return {"message": message, "fix": fix, **fixers}


def approver_shortfalls(model) -> list[tuple[TransitionRequest, dict]]:
    """The pending requests of a model that nobody but their requester can approve, for the model page."""
    pending = list(requests_with_details(TransitionRequest.objects.pending().filter(version__model=model)).order_by("created_at", "id")[:20])
    if not pending:
        return []
    roster = ApproverRoster(model)
    return [(request, shortfall) for request in pending if (shortfall := approver_shortfall(request, roster))]
