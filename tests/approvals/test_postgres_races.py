"""Racing approvals and rollbacks on PostgreSQL keep exactly one production version and an unbroken pointer chain."""

import pytest

from apps.versions.aliases import PRODUCTION_ALIAS
from apps.versions.lifecycle import Stage
from apps.approvals.services import alias_rollback, transition_request_approve, transition_request_create
from apps.validation.services import validation_run
from apps.versions.models import ModelVersion, ProductionPointerChange
from tests.factories import promote, register_version
from tests.helpers import in_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _assert_one_production_and_a_chain(model):
    assert ModelVersion.objects.filter(model=model, stage=Stage.PRODUCTION).count() == 1
    changes = list(ProductionPointerChange.objects.filter(model=model).order_by("changed_at", "id"))
    for earlier, later in zip(changes, changes[1:]):
        assert later.previous_version_id == earlier.version_id
    assert ModelVersion.objects.get(model=model, stage=Stage.PRODUCTION).pk == changes[-1].version_id
    return changes


def test_racing_last_approvals_apply_one_after_another(model, owner, reviewer):
    requests = []
    for _ in range(6):
        version = register_version(model, owner)
        validation_run(job_id=version.validation_jobs.get().pk)
        transition_request_create(version=version, to_stage="staging", actor=owner, justification="ready")
        requests.append(transition_request_create(version=version, to_stage="production", actor=owner, justification="ship"))

    assert in_threads(6, lambda i: transition_request_approve(transition_request=requests[i], actor=reviewer)) == []
    changes = _assert_one_production_and_a_chain(model)
    assert len(changes) == 6


def test_racing_rollbacks_keep_one_production_version(model, owner, reviewer):
    versions = [register_version(model, owner) for _ in range(4)]
    for version in versions:
        promote(version, requester=owner, approver=reviewer)
    targets = versions[:3]

    errors = in_threads(3, lambda i: alias_rollback(model=model, alias=PRODUCTION_ALIAS, actor=reviewer, reason="incident", to_version=targets[i]))
    # A rollback to the version another thread just put in production is refused; all others apply in turn.
    assert all("already in production" in str(e) for e in errors)
    _assert_one_production_and_a_chain(model)


def test_racing_moves_of_one_alias_apply_one_after_another_with_an_unbroken_history(model, owner, reviewer):
    from apps.approvals.services import alias_set
    from apps.versions.models import AliasChange, ModelAlias

    versions = [register_version(model, owner) for _ in range(4)]
    # The alias does not exist yet: every thread may try to create it; the model's row lock serialises them.
    assert in_threads(4, lambda i: alias_set(model=model, alias="champion", version=versions[i], actor=owner)) == []
    changes = list(AliasChange.objects.filter(model=model, alias="champion").order_by("changed_at", "id"))
    assert len(changes) == 4 and changes[0].previous_version_id is None
    for earlier, later in zip(changes, changes[1:]):
        assert later.previous_version_id == earlier.version_id
    assert ModelAlias.objects.get(model=model, name="champion").version_id == changes[-1].version_id
