"""Reads of the approvals app: who must approve a move, the production gate as it stands now, whether approvals went
stale, the inbox and the roster of approvers. Services import these; these never import services."""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import models
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Value, prefetch_related_objects
from django.db.models.functions import Coalesce, NullIf
from django.http import Http404

from apps.accounts.teams import team_leads_group
from apps.catalog.tables import Column, Sort, order_table
from apps.models.models import RegisteredModel
from apps.models.permissions import Action, can, models_where, users_holding, visible_models
from apps.validation.models import JobStatus, QualityStatus, ValidationJob, Verdict
from apps.validation.selectors import quality_gate, validation_policy
from apps.versions.aliases import PRODUCTION_ALIAS
from apps.versions.lifecycle import Stage
from apps.versions.models import ModelAlias, ModelVersion
from apps.versions.selectors import alias_rollback_candidates

from .models import DEFAULT_REQUIRED_APPROVALS, GATED_STAGES, AliasPolicy, Approval, ApprovalPolicy, Decision, RequestStatus, TransitionRequest

NAMES_SHOWN = 5


def reviewed_stage(from_stage: str, to_stage: str) -> str | None:
    """Whose approval policy governs a move: production's for any move into *or out of* production, staging's for a
    move into staging, none otherwise. Taking production down is a production change."""
    if Stage.PRODUCTION in (from_stage, to_stage):
        return Stage.PRODUCTION
    return Stage.STAGING if to_stage == Stage.STAGING else None


def approval_policy(model: RegisteredModel, stage: str) -> tuple[int, object]:
    """(required distinct approvals, approver group or None) for moving a version of `model` into `stage`."""
    if stage not in GATED_STAGES:
        return 0, None
    policy = ApprovalPolicy.objects.filter(model=model, target_stage=stage).select_related("approver_group").first()
    if policy is None:
        return DEFAULT_REQUIRED_APPROVALS[stage], None
    return policy.required_approvals, policy.approver_group


def review_policy(model: RegisteredModel, *, from_stage: str, to_stage: str, actor=None) -> tuple[int, object]:
    """(required approvals, approver group) for one move. A move out of production is reviewed under production's
    policy, like a move into it; a manager of the model may take production down without review (audited)."""
    stage = reviewed_stage(from_stage, to_stage)
    if stage is None:
        return 0, None
    if from_stage == Stage.PRODUCTION and to_stage != Stage.PRODUCTION and actor is not None and can(actor, Action.MANAGE, model):
        return 0, None
    return approval_policy(model, stage)


@dataclass(frozen=True)
class AliasRules:
    """An alias's policy: distinct approvals to move it, the group approvers must be in, and whether the production
    gates (validation passed, quality gate, no unsafe serialization) are judged when it moves."""

    alias: str
    required_approvals: int
    approver_group: object
    gates: bool

    @property
    def governed(self) -> bool:
        """A move needs approvals: it goes through a request (request -> approve -> apply)."""
        return self.required_approvals > 0

    def as_dict(self) -> dict:
        group = self.approver_group
        return {
            "alias": self.alias, "builtin": self.alias == PRODUCTION_ALIAS, "governed": self.governed,
            "required_approvals": self.required_approvals, "approver_group": group.name if group else None, "gates": self.gates,
        }


def alias_policy(model: RegisteredModel, alias: str) -> AliasRules:
    """The rules for moving an alias: production's approval policy and all gates for `production`; for a free alias
    its AliasPolicy, or none (it moves at once) when it has none."""
    if alias == PRODUCTION_ALIAS:
        required, group = approval_policy(model, Stage.PRODUCTION)
        return AliasRules(alias=alias, required_approvals=required, approver_group=group, gates=True)
    return alias_policies(model, [alias])[alias]


def alias_policies(model: RegisteredModel, aliases: list[str]) -> dict[str, AliasRules]:
    """The policies of free aliases of a model, by name (one query); those without one are ungoverned."""
    found = {policy.alias: policy for policy in AliasPolicy.objects.filter(model=model, alias__in=aliases).select_related("approver_group")}
    rules = {}
    for alias in aliases:
        policy = found.get(alias)
        if policy is None:
            rules[alias] = AliasRules(alias=alias, required_approvals=0, approver_group=None, gates=False)
        else:
            rules[alias] = AliasRules(alias=alias, required_approvals=policy.required_approvals, approver_group=policy.approver_group, gates=policy.gates)
    return rules


def aliases_with_policies(model: RegisteredModel) -> list:
    """The model's free aliases by name with their versions, each with its policy's `required_approvals` and `gates`
    (None: no policy), in one query: what a page shows as badges, in its aliases card and for drift."""
    return pointers_with_policies(model)[1]


def pointers_with_policies(model: RegisteredModel) -> tuple[ModelVersion | None, list[ModelAlias]]:
    """The version in production and the free aliases as `aliases_with_policies` gives them, in one query: the
    production version (its partial unique index) beside the versions the aliases point at (one row per alias)."""
    policy = AliasPolicy.objects.filter(model=model, alias=OuterRef("aliases__name"))
    none = {name: Value(None, output_field=field) for name, field in _ALIAS_COLUMNS.items()}
    in_production = ModelVersion.objects.production().filter(model=model).annotate(**none)
    aliased = ModelVersion.objects.filter(aliases__model=model).annotate(
        alias_id=F("aliases__id"),
        alias_name=F("aliases__name"),
        alias_updated_at=F("aliases__updated_at"),
        required_approvals=Subquery(policy.values("required_approvals")[:1]),
        gates=Subquery(policy.values("gates")[:1]),
    )
    production, aliases = None, []
    for row in in_production.order_by().union(aliased.order_by(), all=True):
        if row.alias_id is None:
            production = row
            continue
        alias = ModelAlias(id=row.alias_id, model=model, name=row.alias_name, version=row, updated_at=row.alias_updated_at)
        alias.required_approvals, alias.gates = row.required_approvals, row.gates
        aliases.append(alias)
    return production, sorted(aliases, key=lambda alias: alias.name)


_ALIAS_COLUMNS = {
    "alias_id": models.BigIntegerField(),
    "alias_name": models.CharField(),
    "alias_updated_at": models.DateTimeField(),
    "required_approvals": models.PositiveSmallIntegerField(),
    "gates": models.BooleanField(),
}


def transition_request_is_gated(transition_request: TransitionRequest) -> bool:
    """Whether the production gates (validation, quality gate, unsafe serialization) decide this request: a move to
    production, or a move of an alias whose policy has gates."""
    if transition_request.alias:
        return alias_policy(transition_request.version.model, transition_request.alias).gates
    return transition_request.to_stage == Stage.PRODUCTION


def transition_request_policy(transition_request: TransitionRequest) -> tuple[int, object]:
    """The approvals a request needs: an alias move's from the alias's policy; a stage move's fixed by the stage its
    version was in when it was requested."""
    version = transition_request.version
    if transition_request.alias:
        rules = alias_policy(version.model, transition_request.alias)
        return rules.required_approvals, rules.approver_group
    return review_policy(version.model, from_stage=transition_request.from_stage or version.stage, to_stage=transition_request.to_stage)


@dataclass(frozen=True)
class QualityVerdict:
    """The quality gate as it stands now, beside the verdict validation recorded."""

    status: str
    baseline: ModelVersion | None
    pinned: bool
    rules: list[dict]
    validated_status: str
    validated_baseline: ModelVersion | None

    @property
    def passed(self) -> bool:
        return self.status == QualityStatus.PASSED

    @property
    def baseline_moved(self) -> bool:
        return self.validated_status != "" and _pk(self.baseline) != _pk(self.validated_baseline)

    @property
    def baseline_number(self) -> int | None:
        return _number(self.baseline)

    def failures(self) -> str:
        return "; ".join(f"{r['metric']}: {r['reason']}" for r in self.rules if r["verdict"] == Verdict.FAIL)

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "baseline": self.baseline_number,
            "baseline_pinned": self.pinned,
            "at_validation": {"status": self.validated_status or None, "baseline": _number(self.validated_baseline)},
            "baseline_moved": self.baseline_moved,
            "rules": self.rules,
        }


def _pk(version: ModelVersion | None) -> int | None:
    return version.pk if version is not None else None


def _number(version: ModelVersion | None) -> int | None:
    return version.number if version is not None else None


def quality_verdict(version: ModelVersion) -> QualityVerdict:
    """The quality gate evaluated now: against the pinned baseline, or else today's production version."""
    policy = validation_policy(version.model)
    status, baseline, rules = quality_gate(version, policy)
    job = ValidationJob.objects.filter(version=version).select_related("quality_baseline").order_by("-created_at", "-id").first()
    finished = job is not None and job.is_finished
    return QualityVerdict(
        status=status, baseline=baseline, pinned=bool(policy and policy.pinned_baseline_id and baseline and baseline.pk == policy.pinned_baseline_id),
        rules=rules, validated_status=(job.quality_status or "") if finished else "", validated_baseline=job.quality_baseline if finished else None,
    )


def override_holds(transition_request: TransitionRequest | None, verdict: QualityVerdict) -> bool:
    """A manager's override counts for the baseline it was given against; once the baseline moves it must be given again."""
    return bool(transition_request and transition_request.override_reason) and transition_request.override_baseline_id == _pk(verdict.baseline)


def production_gate_problems(version: ModelVersion, transition_request: TransitionRequest | None = None, verdict: QualityVerdict | None = None) -> list[str]:
    """What stands between a version and production now, besides approvals. Empty: nothing."""
    job = ValidationJob.objects.filter(version=version).order_by("-created_at", "-id").first()
    if job is None or not job.is_finished:
        return ["Validation has not finished yet; approve once it has passed."]
    problems = []
    if job.unsafe_finding:
        problems.append("Validation found unsafe serialization; this version can never reach production.")
    failed = list(job.checks.filter(verdict__in=[Verdict.FAIL, Verdict.ERROR]).values_list("name", flat=True))
    if failed or job.status == JobStatus.ERROR:
        problems.append(f"Validation did not pass ({', '.join(failed) or job.error or 'error'}); fix the files and register a new version.")
    verdict = verdict or quality_verdict(version)
    if not verdict.passed and not override_holds(transition_request, verdict):
        against = f" against v{verdict.baseline.number} ({'pinned baseline' if verdict.pinned else 'in production now'})" if verdict.baseline else ""
        problem = f"The quality gate failed{against}: {verdict.failures()}. A manager may override it with a written reason."
        if transition_request is not None and transition_request.override_reason:
            given = f"v{transition_request.override_baseline.number}" if transition_request.override_baseline_id else "no baseline"
            problem += f" The override given against {given} no longer counts: the baseline moved."
        problems.append(problem)
    return problems


def stale_decisions(transition_request: TransitionRequest) -> QuerySet[Approval]:
    """Live decisions on a request given while another version than today's held production (the quality gate's
    baseline). Approvals of a move of an alias without gates never go stale: production is not their evidence."""
    if transition_request.alias and not alias_policy(transition_request.version.model, transition_request.alias).gates:
        return transition_request.approvals.none()
    current = ModelVersion.objects.production().filter(model_id=transition_request.version.model_id).values_list("pk", flat=True).first()
    return transition_request.approvals.filter(invalidated_at__isnull=True).exclude(production_version_at_approval_id=current)


def transition_request_is_stale(transition_request: TransitionRequest) -> bool:
    """True when live approvals were given while another version held production: they need renewing."""
    return stale_decisions(transition_request).filter(decision=Decision.APPROVE).exists()


def requests_with_details(queryset: QuerySet[TransitionRequest] | None = None) -> QuerySet[TransitionRequest]:
    queryset = queryset if queryset is not None else TransitionRequest.objects.all()
    related = ("version__model__team", "version__created_by", "requested_by", "override_by", "override_baseline")
    return queryset.select_related(*related).prefetch_related(_approvals())


def _approvals() -> Prefetch:
    return Prefetch("approvals", queryset=Approval.objects.select_related("approver"))


def pending_pointer_requests(model, alias: str) -> QuerySet[TransitionRequest]:
    """The pending requests to move an alias of `model` (`production`: requests into the production stage), oldest first."""
    pending = TransitionRequest.objects.pending().filter(version__model=model)
    pending = pending.filter(to_stage=Stage.PRODUCTION) if alias == PRODUCTION_ALIAS else pending.filter(alias=alias)
    return requests_with_details(pending).order_by("created_at", "id")


def transition_request_for(user, pk: int) -> TransitionRequest:
    """A transition request on a model the user may view, or 404."""
    transition_request = requests_with_details(TransitionRequest.objects.filter(pk=pk, version__model__in=visible_models(user))).first()
    if transition_request is None:
        raise Http404("No such transition request.")
    return transition_request


class InboxView(models.TextChoices):
    REVIEW = "review", "Mine to review"
    MINE = "mine", "My requests"


INBOX_COLUMNS = {
    "requested": Column(F("created_at")),
    "model": Column(F("version__model__name")),
    "requester": Column(F(f"requested_by__{get_user_model().USERNAME_FIELD}")),
    "to": Column(Coalesce(NullIf(F("to_stage"), Value("")), F("alias"))),
}
INBOX_DEFAULT_SORTS = {InboxView.REVIEW: Sort("requested", descending=False), InboxView.MINE: Sort("requested", descending=True)}


def approval_inbox(user, *, view: str = InboxView.REVIEW, model: str = "", stage: str = "", sort: Sort | None = None) -> QuerySet[TransitionRequest]:
    """Mine to review: pending requests on models the user may approve, not their own (oldest first). My requests:
    the user's own on models they still see, any status (newest first). Narrowed to a model (by name) and a target
    stage, sorted by `sort` (INBOX_COLUMNS); each with its live approvals and its version's newest validation status
    and whether any validation found unsafe serialization."""
    if view == InboxView.MINE:
        queryset = TransitionRequest.objects.filter(requested_by=user, version__model__in=visible_models(user))
    else:
        queryset = TransitionRequest.objects.pending().filter(version__model__in=models_where(user, Action.APPROVE_TRANSITION)).exclude(requested_by=user)
    if model:
        queryset = queryset.filter(version__model__name=model)
    if stage:
        queryset = queryset.filter(to_stage=stage)
    latest_job = ValidationJob.objects.filter(version=OuterRef("version_id")).order_by("-created_at", "-id")
    queryset = requests_with_details(queryset).annotate(
        live_approvals=Count("approvals", filter=Q(approvals__decision=Decision.APPROVE, approvals__invalidated_at__isnull=True)),
        validation_status=Subquery(latest_job.values("status")[:1]),
        unsafe=Exists(ValidationJob.objects.filter(version=OuterRef("version_id"), unsafe_finding=True)),
    )
    return order_table(queryset, sort or INBOX_DEFAULT_SORTS[InboxView(view)], INBOX_COLUMNS, tie="id")


def requests_for_version(version) -> QuerySet[TransitionRequest]:
    """The version page's list of its requests: what each moves, its status, who asked and when (no approvals)."""
    return TransitionRequest.objects.filter(version=version).select_related("requested_by")


def rollback_candidates(model, production=None) -> list[int]:
    """Numbers of the versions that were in production before and could be rolled back to, newest first."""
    return alias_rollback_candidates(model, PRODUCTION_ALIAS, production)


class ApproverRoster:
    """Who may approve on one model, and who could fix a lack of approvers; read once for all its pending requests."""

    def __init__(self, model):
        self.model = model
        self.approvers: dict[int, str] = dict(users_holding(model, Action.APPROVE_TRANSITION).values_list("pk", "username"))
        self._members: dict[int, set[int]] = {}
        self._policies: dict[tuple[str, str], tuple[int, object]] = {}
        self._fixers: dict | None = None

    def policy(self, transition_request: TransitionRequest) -> tuple[int, object]:
        key = (transition_request.from_stage or transition_request.version.stage, transition_request.to_stage, transition_request.alias)
        if key not in self._policies:
            self._policies[key] = transition_request_policy(transition_request)
        return self._policies[key]

    def enough_approvers(self, transition_request: TransitionRequest) -> bool:
        """Whether as many people as the request needs may approve it besides its requester: then it cannot fall
        short, whatever approvals it has (each one given counts out of both the missing and the available)."""
        required, group = self.policy(transition_request)
        if not required:
            return True
        allowed = self.members(group) if group is not None else None
        eligible = [pk for pk in self.approvers if pk != transition_request.requested_by_id and (allowed is None or pk in allowed)]
        return len(eligible) >= required

    def members(self, group) -> set[int]:
        if group.pk not in self._members:
            self._members[group.pk] = set(group.user_set.values_list("pk", flat=True))
        return self._members[group.pk]

    def fixers(self) -> dict:
        if self._fixers is None:
            leads = team_leads_group(self.model.team)
            self._fixers = {
                "managers": sorted(users_holding(self.model, Action.MANAGE).values_list("username", flat=True)[:NAMES_SHOWN]),
                "administrators": sorted(get_user_model().objects.filter(is_superuser=True, is_active=True).values_list("username", flat=True)[:NAMES_SHOWN]),
                "leads_group": leads.name if leads else None,
            }
        return self._fixers


def approver_shortfall(transition_request: TransitionRequest, roster: ApproverRoster | None = None) -> dict | None:
    """Why a pending request cannot collect its approvals from anyone but its requester, and who can fix that; None if it can.

    Eligible: active users granted *approve transitions* on the model (directly or through a team, e.g. its leads
    group), in the policy's group if one is set, other than the requester and those whose approval already counts.
    Superusers are not counted: they can always approve, and are named as the way out.
    """
    if transition_request.status != RequestStatus.PENDING:
        return None
    roster = roster or ApproverRoster(transition_request.version.model)
    if roster.enough_approvers(transition_request):
        return None
    required, group = roster.policy(transition_request)
    allowed = roster.members(group) if group is not None else None
    given = {
        a.approver_id for a in transition_request.approvals.all()
        if a.decision == Decision.APPROVE and a.invalidated_at is None and (allowed is None or a.approver_id in allowed)
    }
    available = sorted(
        name for pk, name in roster.approvers.items() if pk != transition_request.requested_by_id and pk not in given and (allowed is None or pk in allowed)
    )
    missing = required - len(given)
    if len(available) >= missing:
        return None
    where = f" from members of '{group.name}'" if group is not None else ""
    if not available and not given:
        message = f"Nobody but the requester ({transition_request.requested_by.get_username()}) may approve this request{where}."
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
    pending = TransitionRequest.objects.pending().filter(version__model=model).order_by("created_at", "id")
    pending = list(requests_with_details(pending).prefetch_related(None)[:20])
    if not pending:
        return []
    roster = ApproverRoster(model)
    short = [transition_request for transition_request in pending if not roster.enough_approvers(transition_request)]
    prefetch_related_objects(short, _approvals())  # only those that may fall short need the approvals given
    return [(transition_request, shortfall) for transition_request in short if (shortfall := approver_shortfall(transition_request, roster))]


def archive_plan(model: RegisteredModel, versions: list[ModelVersion], actor) -> list[dict]:
    """What archiving each of `versions` would do for `actor`: `outcome` (archived at once, a request for review, or
    production taken down at once by a manager) or the `problem` that stops it. Read before asking for confirmation."""
    pending = set(
        TransitionRequest.objects.pending().filter(version__in=versions, to_stage=Stage.ARCHIVED).values_list("version_id", flat=True)
    )
    plan = []
    for version in versions:
        item = {"version": version, "outcome": "", "problem": ""}
        if version.stage == Stage.ARCHIVED:
            item["problem"] = "already archived"
        elif version.pk in pending:
            item["problem"] = "already has a pending request to be archived"
        else:
            required, _ = review_policy(model, from_stage=version.stage, to_stage=Stage.ARCHIVED, actor=actor)
            if required:
                item["outcome"] = f"a request for review is opened ({required} approval(s)); production stays up until it is approved"
            elif version.stage == Stage.PRODUCTION:
                item["outcome"] = "taken out of production at once (you manage this model; audited)"
            else:
                item["outcome"] = "archived at once"
        plan.append(item)
    return plan
