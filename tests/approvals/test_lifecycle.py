import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.versions.lifecycle import ALLOWED_TRANSITIONS, Stage, check_transition, IllegalTransition
from apps.approvals.services import version_transition
from apps.versions.models import ModelVersion, ProductionPointerChange, StageTransition
from apps.versions.selectors import production_at
from tests.factories import promote, register_version

pytestmark = pytest.mark.django_db


def test_every_stage_has_a_row_in_the_table():
    assert set(ALLOWED_TRANSITIONS) == set(Stage.values)


@pytest.mark.parametrize("from_stage, to_stage", [("draft", "production"), ("production", "staging"), ("archived", "production"), ("draft", "draft"), ("draft", "bogus")])
def test_illegal_moves_are_refused(from_stage, to_stage):
    with pytest.raises(IllegalTransition):
        check_transition(from_stage, to_stage)


def test_promotion_archives_the_previous_production_version_and_moves_the_pointer(model, owner, reviewer):
    first, second = register_version(model, owner), register_version(model, owner)
    promote(first, requester=owner, approver=reviewer, justification="first launch")
    promote(second, requester=owner, approver=reviewer, justification="better")
    first.refresh_from_db(), second.refresh_from_db()
    assert (first.stage, second.stage) == ("archived", "production")
    assert list(ModelVersion.objects.filter(stage="production")) == [second]
    pointer = list(ProductionPointerChange.objects.filter(model=model).order_by("changed_at", "id").values_list("version__number", "previous_version__number"))
    assert pointer == [(1, None), (2, 1)]
    assert StageTransition.objects.filter(version=first).count() == 3


def test_the_pointer_history_answers_what_was_in_production_at_a_time(model, owner, reviewer):
    first, second = register_version(model, owner), register_version(model, owner)
    before_anything = timezone.now()
    promote(first, requester=owner, approver=reviewer)
    while_first = timezone.now()
    promote(second, requester=owner, approver=reviewer)
    while_second = timezone.now()
    version_transition(version=second, to_stage=Stage.ARCHIVED, actor=owner)
    assert production_at(model, before_anything) is None
    assert production_at(model, while_first) == first
    assert production_at(model, while_second) == second
    assert production_at(model, timezone.now()) is None


def test_no_code_path_reaches_production_without_an_approved_request(model, owner, make_user):
    admin = make_user("root", is_superuser=True)
    version = register_version(model, owner)
    version_transition(version=version, to_stage=Stage.STAGING, actor=owner)
    for actor in (owner, admin):
        with pytest.raises(ValidationError, match="needs 1 approval"):
            version_transition(version=version, to_stage=Stage.PRODUCTION, actor=actor)
    version.refresh_from_db()
    assert version.stage == "staging"


def test_the_database_refuses_a_second_production_version(model, owner):
    first, second = register_version(model, owner), register_version(model, owner)
    ModelVersion.objects.filter(pk=first.pk).update(stage=Stage.PRODUCTION)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=second.pk).update(stage=Stage.PRODUCTION)


def test_an_illegal_move_leaves_no_history(model, owner):
    version = register_version(model, owner)
    with pytest.raises(ValidationError):
        version_transition(version=version, to_stage=Stage.ARCHIVED, actor=owner, rollback=True)
    with pytest.raises(ValidationError):
        version_transition(version=version, to_stage=Stage.PRODUCTION, actor=owner)
    assert not StageTransition.objects.exists() and not ProductionPointerChange.objects.exists()
