"""The audit chain's lock and a model's row are taken in one order by every transaction (PostgreSQL, real threads).

Reproduced in the suite: a validation job finishing (audit entry first, then a notification row referring to the
model, whose foreign key is checked at commit) deadlocked with a pointer move (model row locked first, audit entry
after)."""

import threading

import pytest
from django.db import connections, transaction

from apps.audit import services as audit
from apps.events.models import Event, EventType
from apps.models.models import RegisteredModel

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_appending_for_a_model_whose_row_another_transaction_holds_waits_instead_of_deadlocking(model, owner):
    mover_holds_row, appender_holds_chain = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def move_pointer():  # as version_transition: lock the model row, then append
        try:
            with transaction.atomic():
                RegisteredModel.objects.select_for_update().get(pk=model.pk)
                mover_holds_row.set()
                appender_holds_chain.wait(1.5)  # with the fix the appender never gets the chain while we hold the row
                audit.record(actor=owner, obj=model, action="test.moved", registered_model_id=model.pk)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    def finish_job():  # as a validation job finishing: append, then write a row that refers to the model
        mover_holds_row.wait(10)
        try:
            with transaction.atomic():
                audit.record(actor=None, obj=model, action="test.finished", registered_model_id=model.pk)
                appender_holds_chain.set()
                Event.objects.create(model_id=model.pk, type=EventType.VERSION_STAGE_CHANGED, payload={})
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=move_pointer), threading.Thread(target=finish_job)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert list(audit.AuditEntry.objects.filter(action__startswith="test.").order_by("sequence").values_list("action", flat=True)) == ["test.moved", "test.finished"]
