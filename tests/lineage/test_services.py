import os

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError

from apps.audit.models import AuditEntry
from apps.lineage.models import Dataset, TrainingRun, VersionParent
from apps.lineage.services import dataset_register
from apps.models.models import RegisteredModel
from apps.versions.document import metadata_from_dict
from apps.versions.models import ModelVersion
from tests.factories import register_version

from .conftest import DATASET, parent

pytestmark = pytest.mark.django_db


def _files_on_disk(root) -> list[str]:
    return [name for _, _, names in os.walk(root) for name in names]


def test_registration_records_parents_and_the_training_run(model, owner, version):
    child = register_version(
        model, owner,
        parents=[parent(model, 1, "fine_tuned_from")],
        run={"id": "mlflow-4f2a", "url": "https://mlflow.example.com/#/runs/4f2a"},
        datasets=[{**DATASET, "size_bytes": 1234}],
    )
    link = VersionParent.objects.get(child=child)
    assert (link.parent, link.relation) == (version, "fine_tuned_from")
    assert TrainingRun.objects.get(version=child).run_id == "mlflow-4f2a"
    assert child.dataset_links.get().dataset.size_bytes == 1234
    entry = AuditEntry.objects.get(action="version.registered", object_id=str(child.pk))
    assert entry.after["parents"] == [{"version_id": str(version.pk), "relation": "fine_tuned_from"}]  # ids: names could leak
    assert entry.after["run"]["id"] == "mlflow-4f2a"


def test_a_version_may_have_several_parents_from_several_models(model, owner, secret, stranger):
    teacher = register_version(model, owner)
    other = register_version(secret, stranger)
    student = register_version(secret, stranger, parents=[parent(model, 1, "distilled_from"), parent(secret, 1, "ensembled_from")])
    assert {(link.parent, link.relation) for link in student.parent_links.all()} == {(teacher, "distilled_from"), (other, "ensembled_from")}


@pytest.mark.parametrize(
    "parents, message",
    [
        ([{"model": "sentiment", "version": 7, "relation": "fine_tuned_from"}], "Parent #1: sentiment v7 is unknown or not visible to you."),
        ([{"model": "no-such-model", "version": 1, "relation": "fine_tuned_from"}], "Parent #1: no-such-model v1 is unknown or not visible to you."),
        ([{"model": "sentiment", "version": 2, "relation": "fine_tuned_from"}], "is the version being registered; a version cannot be its own parent"),
        ([{"model": "sentiment", "version": 1, "relation": "copied_from"}], "'relation' must be one of fine_tuned_from, distilled_from, ensembled_from"),
        ([{"model": "sentiment", "version": "1", "relation": "fine_tuned_from"}], "'version' must be a version number"),
        ([{"model": "sentiment", "version": 1, "relation": "fine_tuned_from"}] * 2, "sentiment v1 is listed twice"),
        ({"model": "sentiment"}, "must be a list"),
    ],
)
def test_bad_parents_are_refused_with_a_clear_message_and_nothing_is_stored(model, owner, version, isolated_artifacts, parents, message):
    files_before = _files_on_disk(isolated_artifacts)
    with pytest.raises(ValidationError) as raised:
        register_version(model, owner, parents=parents, files={"new-weights.bin": b"never stored"})
    assert message in " ".join(raised.value.messages)
    assert ModelVersion.objects.count() == 1 and not VersionParent.objects.exists()
    assert RegisteredModel.objects.get(pk=model.pk).last_version_number == 1
    assert _files_on_disk(isolated_artifacts) == files_before


def test_a_parent_on_another_model_is_fine_when_the_registrant_may_view_it(model, owner, secret, stranger):
    base = register_version(secret, stranger)
    child = register_version(model, owner, parents=[{"model": "secret-model", "version": 1, "relation": "fine_tuned_from"}])
    assert child.parent_links.get().parent == base


def test_a_hidden_parent_and_a_missing_one_get_the_same_answer(model, reviewer, owner, secret, stranger):
    from apps.models.permissions import Action
    from apps.models.services import model_permission_grant

    register_version(secret, stranger)
    model_permission_grant(model=model, actor=owner, action=Action.REGISTER, user=reviewer)
    answers = []
    for name in ("secret-model", "missing-model"):
        with pytest.raises(ValidationError) as raised:
            register_version(model, reviewer, parents=[{"model": name, "version": 1, "relation": "fine_tuned_from"}])
        answers.append(raised.value.messages[0].replace(name, "NAME"))
    assert answers[0] == answers[1] == "Parent #1: NAME v1 is unknown or not visible to you."
    assert not ModelVersion.objects.filter(model=model).exists()


@pytest.mark.parametrize(
    "run, message",
    [
        ({"id": "r1", "url": "javascript:alert(1)"}, "must be an http:// or https:// URL"),
        ({"url": "ftp://runs.example.com/1"}, "must be an http:// or https:// URL"),
        ({"url": "https://"}, "must be an http:// or https:// URL with a host"),
        ({"url": "https://ok.example.com/a b"}, "must not contain spaces"),
        ({"id": "", "url": ""}, "give the run's 'id', its 'url' or both"),
        ({"id": "r1", "name": "x"}, "must be an object with 'id' and/or 'url'"),
    ],
)
def test_a_bad_training_run_is_refused(run, message):
    with pytest.raises(ValidationError) as raised:
        metadata_from_dict({"run": run})
    assert message in " ".join(raised.value.messages)


def test_registering_a_dataset_on_its_own_is_deduplicated_by_uri_and_digest(owner, reviewer):
    team = Group.objects.create(name="nlp-team")
    reviewer.groups.add(team)
    owner.groups.add(team)
    first, created = dataset_register(actor=owner, name="imdb", uri="s3://data/imdb", digest="v2", size_bytes=10, description="reviews", team=team)
    again, created_again = dataset_register(actor=reviewer, name="IMDB (copy)", uri="s3://data/imdb", digest="v2")
    other, created_other = dataset_register(actor=reviewer, name="imdb", uri="s3://data/imdb", digest="v3")
    assert created and not created_again and created_other
    assert again == first and again.name == "imdb" and other != first
    assert (first.created_by, first.owner, first.team, first.size_bytes) == (owner, owner, team, 10)
    assert AuditEntry.objects.filter(action="dataset.registered").count() == 2


def test_registering_a_dataset_someone_else_hides_is_refused_without_naming_it(owner, outsider):
    dataset_register(actor=owner, name="payroll", uri="s3://hr/payroll", digest="v1", description="salaries")
    with pytest.raises(ValidationError) as raised:
        dataset_register(actor=outsider, name="mine", uri="s3://hr/payroll", digest="v1")
    message = " ".join(raised.value.messages)
    assert "already registered" in message and "payroll" not in message.replace("s3://hr/payroll", "")
    assert Dataset.objects.get().name == "payroll" and AuditEntry.objects.filter(action="dataset.registered").count() == 1


def test_a_team_the_registrant_is_not_in_is_refused(owner):
    team = Group.objects.create(name="hr")
    with pytest.raises(ValidationError) as raised:
        dataset_register(actor=owner, name="x", uri="s3://x", team=team)
    assert "team" in raised.value.message_dict and not Dataset.objects.exists()


def test_a_dataset_registered_with_a_version_is_the_same_record(model, owner):
    dataset, _ = dataset_register(actor=owner, name="imdb", uri=DATASET["uri"], digest=DATASET["digest"])
    version = register_version(model, owner, datasets=[DATASET])
    assert version.dataset_links.get().dataset == dataset and Dataset.objects.count() == 1


@pytest.mark.parametrize(
    "fields, key",
    [
        ({"name": "", "uri": "s3://x"}, "name"),
        ({"name": "x", "uri": "  "}, "uri"),
        ({"name": "x", "uri": "s3://x", "size_bytes": -1}, "size_bytes"),
        ({"name": "x", "uri": "s3://x\n"}, None),
        ({"name": "x" * 201, "uri": "s3://x"}, "name"),
        ({"name": 5, "uri": "s3://x"}, "name"),
    ],
)
def test_a_bad_dataset_is_refused_field_by_field(owner, fields, key):
    if key is None:  # surrounding whitespace is trimmed, so this one is fine
        dataset_register(actor=owner, **fields)
        return
    with pytest.raises(ValidationError) as raised:
        dataset_register(actor=owner, **fields)
    assert key in raised.value.message_dict
    assert not Dataset.objects.exists()


def test_anonymous_users_cannot_register_datasets():
    from django.contrib.auth.models import AnonymousUser

    with pytest.raises(PermissionDenied):
        dataset_register(actor=AnonymousUser(), name="x", uri="s3://x")
