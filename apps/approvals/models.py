from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models

from apps.models.models import RegisteredModel

from apps.versions.lifecycle import Stage

GATED_STAGES = (Stage.STAGING, Stage.PRODUCTION)
DEFAULT_REQUIRED_APPROVALS = {Stage.STAGING: 0, Stage.PRODUCTION: 1}


class ApprovalPolicy(models.Model):
    """How many distinct approvals a move into a stage needs, and from whom. Absent: the defaults above."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="approval_policies")
    target_stage = models.CharField(max_length=16, choices=[(s.value, s.label) for s in GATED_STAGES])
    required_approvals = models.PositiveSmallIntegerField(default=1)
    approver_group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="If set, only its members' approvals count."
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "target_stage"], name="one_policy_per_model_and_stage")]

    def __str__(self) -> str:
        return f"{self.model}: {self.required_approvals} approval(s) for {self.target_stage}"


class AliasPolicy(models.Model):
    """How a free alias of a model is governed: approvals to move it, from whom, and whether the production gates
    (validation passed, quality gate, no unsafe serialization) apply. Absent: ungoverned, it moves at once.

    Kept by name beside the alias, so a policy may be set before the alias first points anywhere and survives its
    deletion. The built-in `production` alias is governed by the production stage's ApprovalPolicy and its gates.
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="alias_policies")
    alias = models.CharField(max_length=128)
    required_approvals = models.PositiveSmallIntegerField(default=0)
    approver_group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="If set, only its members' approvals count."
    )
    gates = models.BooleanField(default=False, help_text="Validation, quality gate and unsafe-serialization gates apply, as for production.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "alias"], name="one_policy_per_model_and_alias")]

    def __str__(self) -> str:
        return f"{self.model}@{self.alias}: {self.required_approvals} approval(s)"


class RequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPLIED = "applied", "Applied"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Withdrawn"


class TransitionRequestQuerySet(models.QuerySet):
    def pending(self):
        return self.filter(status=RequestStatus.PENDING)


class TransitionRequest(models.Model):
    version = models.ForeignKey("versions.ModelVersion", on_delete=models.CASCADE, related_name="transition_requests")
    from_stage = models.CharField(max_length=16, choices=Stage.choices, blank=True, help_text="The version's stage when the move was requested.")
    to_stage = models.CharField(max_length=16, choices=Stage.choices, blank=True, help_text="The stage to move to; empty for an alias move.")
    alias = models.CharField(max_length=128, blank=True, help_text="The free alias to point at the version; empty for a stage move.")
    status = models.CharField(max_length=16, choices=RequestStatus.choices, default=RequestStatus.PENDING, db_index=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    justification = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    override_reason = models.TextField(blank=True, help_text="A manager's written reason to promote despite a failed quality gate.")
    override_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    override_baseline = models.ForeignKey(
        "versions.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The baseline the override was given against; it stops counting once the baseline moves.",
    )
    gate_at_decision = models.JSONField(
        null=True, blank=True, help_text="The quality gate that decided: status, baseline number, overridden; evaluated when the move was applied."
    )

    objects = TransitionRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "to_stage", "alias"],
                condition=models.Q(status=RequestStatus.PENDING),
                name="one_pending_request_per_version_and_target",
            ),
            models.CheckConstraint(
                condition=(models.Q(alias="") & ~models.Q(to_stage="")) | (~models.Q(alias="") & models.Q(to_stage="")),
                name="transition_request_targets_a_stage_or_an_alias",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version} -> {self.target} ({self.status})"

    @property
    def target(self) -> str:
        """What the request moves: a stage (`production`) or a free alias (`@champion`)."""
        return f"@{self.alias}" if self.alias else self.to_stage


class Decision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class Invalidation(models.TextChoices):
    STALE = "stale", "Stale: production moved after it was given"
    REPLACED = "replaced", "Replaced by the reviewer's later decision"


class Approval(models.Model):
    """One reviewer's decision. An approval given before the production pointer moved is invalidated (stale);
    a reviewer who changes their decision while the request is pending replaces their earlier one."""

    transition_request = models.ForeignKey(TransitionRequest, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    production_version_at_approval = models.ForeignKey(
        "versions.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    invalidated_at = models.DateTimeField(null=True, blank=True)
    invalidation = models.CharField(max_length=16, choices=Invalidation.choices, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["transition_request", "approver"], condition=models.Q(invalidated_at__isnull=True), name="one_live_decision_per_approver"
            )
        ]

    def __str__(self) -> str:
        return f"{self.approver} {self.decision} {self.transition_request}"
