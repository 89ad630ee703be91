from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import Http404

from apps.models.permissions import Action, models_where, visible_models

from .models import Approval, TransitionRequest


def requests_with_details(queryset: QuerySet[TransitionRequest] | None = None) -> QuerySet[TransitionRequest]:
    queryset = queryset if queryset is not None else TransitionRequest.objects.all()
    return queryset.select_related("version__model", "version__created_by", "requested_by", "override_by").prefetch_related(
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
