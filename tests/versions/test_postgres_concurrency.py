"""Races that only a real multi-connection database can show."""


import pytest
from django.db import connection

from apps.versions.models import ModelVersion
from tests.factories import register_version
from tests.helpers import in_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_registrations_get_gapless_unique_numbers(model, owner):
    assert connection.vendor == "postgresql"

    def register(index: int) -> None:
        for round_ in range(3):
            register_version(model, owner, files={f"w{index}-{round_}.bin": f"{index}-{round_}".encode()})

    assert in_threads(8, register) == []
    numbers = sorted(ModelVersion.objects.filter(model=model).values_list("number", flat=True))
    assert numbers == list(range(1, 25))
