"""The lifecycle of a version: its stages and the one table of allowed moves.

One function applies a move: `apps.versions.services.version_stage_change` (the stage, its history, the production
pointer). Whether a move may happen (permissions, reviews, quality gates) is decided by
`apps.approvals.services.version_transition`, which then calls it; every path (pages, API, admin, tasks, seeding)
goes through `version_transition`.
"""

from django.core.exceptions import ValidationError
from django.db import models


class Stage(models.TextChoices):
    DRAFT = "draft", "Draft"
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"
    ARCHIVED = "archived", "Archived"


ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    Stage.DRAFT: frozenset({Stage.STAGING, Stage.ARCHIVED}),
    Stage.STAGING: frozenset({Stage.PRODUCTION, Stage.DRAFT, Stage.ARCHIVED}),
    Stage.PRODUCTION: frozenset({Stage.ARCHIVED}),
    Stage.ARCHIVED: frozenset({Stage.STAGING}),
}

# A rollback moves the production pointer back to a version that was in production before (now archived).
ROLLBACK_TRANSITIONS: dict[str, frozenset[str]] = {Stage.ARCHIVED: frozenset({Stage.PRODUCTION}), Stage.STAGING: frozenset({Stage.PRODUCTION})}

# The move forward from each stage: offered first, so the default choice on a form is never a demotion.
FORWARD: dict[str, str] = {Stage.DRAFT: Stage.STAGING, Stage.STAGING: Stage.PRODUCTION, Stage.ARCHIVED: Stage.STAGING}


class IllegalTransition(Exception):
    def __init__(self, from_stage: str, to_stage: str):
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS.get(from_stage, ()))) or "none"
        super().__init__(f"A {from_stage} version cannot move to {to_stage}; from {from_stage} it may move to: {allowed}.")
        self.from_stage = from_stage
        self.to_stage = to_stage


def check_transition(from_stage: str, to_stage: str, *, rollback: bool = False) -> None:
    table = ROLLBACK_TRANSITIONS if rollback else ALLOWED_TRANSITIONS
    if to_stage not in Stage.values or to_stage not in table.get(from_stage, ()):
        raise IllegalTransition(from_stage, to_stage)


def checked_transition(from_stage: str, to_stage: str, *, rollback: bool = False) -> None:
    """`check_transition`, refusing an illegal move as a ValidationError on `to_stage` (what forms and the API show)."""
    try:
        check_transition(from_stage, to_stage, rollback=rollback)
    except IllegalTransition as exc:
        raise ValidationError({"to_stage": [str(exc)]}) from exc


def allowed_targets(from_stage: str) -> list[str]:
    """The stages a version may move to from `from_stage`, the forward move first."""
    targets = [stage for stage in Stage.values if stage in ALLOWED_TRANSITIONS[from_stage]]
    return sorted(targets, key=lambda stage: stage != FORWARD.get(from_stage))
