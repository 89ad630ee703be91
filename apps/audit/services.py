from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models

from .models import AuditEntry


def record(
    *,
    actor,
    obj: models.Model,
    action: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    registered_model_id: int | None = None,
) -> AuditEntry:
    """The one way to write the audit trail. Call it inside the service's transaction so the change and its record commit together."""
    return AuditEntry.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        actor_name=getattr(actor, "get_username", lambda: "system")(),
        action=action,
        object_type=ContentType.objects.get_for_model(obj, for_concrete_model=True),
        object_id=str(obj.pk),
        object_repr=str(obj)[:300],
        registered_model_id=registered_model_id,
        before=before,
        after=after,
    )
