"""The lifecycle state machine: the one table of allowed stage transitions.

Only `apps.approvals.services.version_transition` applies a transition; every other code path
(forms, API, admin) calls it. Approval and quality gates hook into that function, not into this table.
"""

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


class IllegalTransition(Exception):
    def __init__(self, from_stage: str, to_stage: str):
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS.get(from_stage, ()))) or "none"
        super().__init__(f"A {from_stage} version cannot move to {to_stage}; from {from_stage} it may move to: {allowed}.")
        self.from_stage = from_stage
        self.to_stage = to_stage


# A rollback moves the production pointer back to a version that was in production before (now archived).
ROLLBACK_TRANSITIONS: dict[str, frozenset[str]] = {Stage.ARCHIVED: frozenset({Stage.PRODUCTION}), Stage.STAGING: frozenset({Stage.PRODUCTION})}


def check_transition(from_stage: str, to_stage: str, *, rollback: bool = False) -> None:
    table = ROLLBACK_TRANSITIONS if rollback else ALLOWED_TRANSITIONS
    if to_stage not in Stage.values or to_stage not in table.get(from_stage, ()):
        raise IllegalTransition(from_stage, to_stage)


# The move forward from each stage: offered first, so the default choice on a form is never a demotion.
FORWARD: dict[str, str] = {Stage.DRAFT: Stage.STAGING, Stage.STAGING: Stage.PRODUCTION, Stage.ARCHIVED: Stage.STAGING}


def allowed_targets(from_stage: str) -> list[str]:
    """The stages a version may move to from `from_stage`, the forward move first."""
    targets = [stage for stage in Stage.values if stage in ALLOWED_TRANSITIONS[from_stage]]
    return sorted(targets, key=lambda stage: stage != FORWARD.get(from_stage))


def reviewed_stage(from_stage: str, to_stage: str) -> str | None:
    """Whose approval policy governs a move: production's for any move into *or out of* production, staging's for a
    move into staging, none otherwise. Taking production down is a production change."""
    if Stage.PRODUCTION in (from_stage, to_stage):
        return Stage.PRODUCTION
    return Stage.STAGING if to_stage == Stage.STAGING else None
