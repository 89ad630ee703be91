"""Datasets that existed before owners: one registered on its own (audited so) is owned by its registrant."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apps.audit import services as audit
from apps.lineage.models import Dataset

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE_OWNERS = [("lineage", "0003_parents_runs_dataset_size")]


def _migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor


def test_datasets_registered_on_their_own_get_their_registrant_as_owner_and_the_others_none(make_user):
    alice = make_user("alice")
    latest = [key for key in MigrationExecutor(connection).loader.graph.leaf_nodes() if key[0] == "lineage"]
    executor = _migrate(BEFORE_OWNERS)
    try:
        OldDataset = executor.loader.project_state(BEFORE_OWNERS).apps.get_model("lineage", "Dataset")
        alone = OldDataset.objects.create(name="alone", uri="s3://alone", created_by_id=alice.pk)
        with_version = OldDataset.objects.create(name="with-version", uri="s3://with-version", created_by_id=alice.pk)
        audit.record(actor=alice, obj=Dataset(pk=alone.pk, name="alone", uri="s3://alone"), action="dataset.registered", after={})
    finally:
        _migrate(latest)
    owners = dict(Dataset.objects.values_list("name", "owner"))
    assert owners == {"alone": alice.pk, "with-version": None}
    assert Dataset.objects.get(pk=with_version.pk).created_by == alice
