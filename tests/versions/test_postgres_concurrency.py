"""Races that only a real multi-connection database can show."""

import threading

import pytest
from django.db import connection, connections

from apps.versions.models import ModelVersion
from tests.factories import register_version

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def in_threads(count: int, work) -> list[BaseException]:
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

    assert in_threads(8, register) == []
    numbers = sorted(ModelVersion.objects.filter(model=model).values_list("number", flat=True))
    assert numbers == list(range(1, 25))
