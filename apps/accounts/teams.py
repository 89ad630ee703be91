"""Teams are auth groups; each may have a leads group whose members approve on the team's models."""

from django.contrib.auth.models import Group
from django.db import transaction

from .models import TeamLeads


@transaction.atomic
def team_leads_ensure(*, team: Group) -> Group:
    """The team's leads group, created empty ("<team> leads") the first time a model is placed in the team.

    Who leads a team is group membership, kept by administrators (admin → Groups); nothing here adds users.
    """
    link = TeamLeads.objects.select_related("leads").filter(team=team).first()
    if link is not None:
        return link.leads
    name = f"{team.name} leads"[:140]
    if TeamLeads.objects.filter(leads__name=name).exists() or name == team.name:
        name = f"{name} #{team.pk}"
    leads, _ = Group.objects.get_or_create(name=name)
    link, _ = TeamLeads.objects.get_or_create(team=team, defaults={"leads": leads})
    return link.leads


def team_leads_group(team: Group | None) -> Group | None:
    """The leads group of a team, or None when the team has none yet."""
    if team is None:
        return None
    link = TeamLeads.objects.select_related("leads").filter(team=team).first()
    return link.leads if link else None
