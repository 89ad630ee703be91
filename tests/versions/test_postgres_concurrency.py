"""Races that only a real multi-connection database can show."""

import threading

import pytest
from django.db import connection, connections

from apps.approvals.lifecycle import Stage
from apps.approvals.services import version_transition
from apps.versions.models import ModelVersion, ProductionPointerChange
from tests.factories import register_version

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _in_threads(count: int, work) -> list[BaseException]:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_registrations_get_gapless_unique_numbers(model, owner):
    assert connection.vendor == "postgresql"

    def register(index: int) -> None:
        for round_ in range(3):
            register_version(model, owner, files={f"w{index}-{round_}.bin": f"{index}-{round_}".encode()})

    assert _in_threads(8, register) == []
    numbers = sorted(ModelVersion.objects.filter(model=model).values_list("number", flat=True))
    assert numbers == list(range(1, 25))


def test_racing_promotions_leave_exactly_one_production_version(model, owner):
    versions = [register_version(model, owner) for _ in range(6)]
    for version in versions:
        version_transition(version=version, to_stage=Stage.STAGING, actor=owner)

    def promote(index: int) -> None:
        version_transition(version=versions[index], to_stage=Stage.PRODUCTION, actor=owner)

    assert _in_threads(6, promote) == []
    assert ModelVersion.objects.filter(model=model, stage=Stage.PRODUCTION).count() == 1
    changes = list(ProductionPointerChange.objects.filter(model=model).order_by("changed_at", "id"))
    assert len(changes) == 6
    # Each move's "previous" is the one before it: the pointer history is one unbroken chain.
    for earlier, later in zip(changes, changes[1:]):
        assert later.previous_version_id == earlier.version_id
    assert ModelVersion.objects.get(stage=Stage.PRODUCTION).pk == changes[-1].version_id
