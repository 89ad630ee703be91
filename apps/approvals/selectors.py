from django.contrib.auth import get_user_model
from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import Http404
from guardian.shortcuts import get_users_with_perms

from apps.accounts.teams import team_leads_group
from apps.models.permissions import Action, models_where, visible_models

from .models import Approval, Decision, TransitionRequest
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


def pending_count_for(user) -> int:
    return approval_inbox(user).count()




def rollback_candidates(model, production=None) -> list[int]:
    """Numbers of the versions that were in production before and could be rolled back to, newest first."""
    from apps.versions.models import ProductionPointerChange

    changes = ProductionPointerChange.objects.filter(model=model, version__isnull=False).order_by("-changed_at", "-id")
    if production is not None:
        changes = changes.exclude(version=production)
    return list(dict.fromkeys(changes.values_list("version__number", flat=True)))


def _holders(model, action: str):
    """Active users holding `action` on the model through a direct or group grant (superusers not counted)."""
    return get_users_with_perms(model, only_with_perms_in=[Action(action).value], with_group_users=True).filter(is_active=True)


def _names(users) -> list[str]:
    return sorted(users.values_list("username", flat=True)[:NAMES_SHOWN])


def approver_shortfall(request: TransitionRequest) -> dict | None:
    """Why a pending request cannot collect its approvals from anyone but its requester, and who can fix that; None if it can.

    Eligible: active users granted *approve transitions* on the model (directly or through a team, e.g. its leads
    group), in the policy's group if one is set, other than the requester and those whose approval already counts.
    Superusers are not counted: they can always approve, and are named as the way out.
    """
    if request.status != "pending":
        return None
    required, group = request_policy(request)
    if not required:
        return None
    model = request.version.model
    live = request.approvals.filter(decision=Decision.APPROVE, invalidated_at__isnull=True)
    if group is not None:
        live = live.filter(approver__groups=group)
    given = set(live.values_list("approver_id", flat=True))
    eligible = _holders(model, Action.APPROVE_TRANSITION).exclude(pk=request.requested_by_id)
    if group is not None:
        eligible = eligible.filter(groups=group)
    available = eligible.exclude(pk__in=given)
    missing = required - len(given)
    if available.count() >= missing:
        return None
    names = _names(available)
    where = f" from members of '{group.name}'" if group is not None else ""
    if not names and not given:
        message = f"Nobody but the requester ({request.requested_by.get_username()}) may approve this request{where}."
    else:
        message = f"This request needs {missing} more approval(s){where}, but only {len(names)} other person(s) may give one ({', '.join(names) or 'none'})."
    leads = team_leads_group(model.team)
    managers = _names(_holders(model, Action.MANAGE))
    administrators = sorted(get_user_model().objects.filter(is_superuser=True, is_active=True).values_list("username", flat=True)[:NAMES_SHOWN])
    to_whom = f" to a member of '{group.name}'" if group is not None else ""
    add_lead = f"add a lead to the group '{leads.name}'" if leads is not None else "grant it too"
    fix = (
        f"Managers of '{model.name}' ({', '.join(managers) or 'none'}) can grant 'Approve transitions'{to_whom} on its Permissions page; "
        f"administrators ({', '.join(administrators) or 'none'}) can {add_lead} or approve it themselves."
    )
    return {
        "message": message,
        "fix": fix,
        "managers": managers,
        "administrators": administrators,
        "leads_group": leads.name if leads else None,
    }


def approver_shortfalls(model) -> list[tuple[TransitionRequest, dict]]:
    """The pending requests of a model that nobody but their requester can approve, for the model page."""
    pending = requests_with_details(TransitionRequest.objects.pending().filter(version__model=model)).order_by("created_at", "id")[:20]
    return [(request, shortfall) for request in pending if (shortfall := approver_shortfall(request))]
