from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone


class AppendOnlyError(RuntimeError):
    """Raised on any attempt to change or remove an audit entry through the ORM."""


_WRITE_THROUGH = "Audit entries are append-only; write them with apps.audit.services.record()."


class AuditEntryQuerySet(models.QuerySet):
    """Reads only: bulk writes would skip the hash chain, bulk updates and deletes would rewrite history."""

    def update(self, **kwargs):
        raise AppendOnlyError(_WRITE_THROUGH)

    def delete(self):
        raise AppendOnlyError(_WRITE_THROUGH)

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError(_WRITE_THROUGH)

    def bulk_create(self, objs, *args, **kwargs):
        raise AppendOnlyError(_WRITE_THROUGH)

    def for_model(self, registered_model_id: int):
        return self.filter(registered_model_id=registered_model_id)


class AuditEntry(models.Model):
    """One change to one object, shaped like NetBox's ObjectChange: who, what, before and after, which request.

    Entries form a hash chain: `sequence` is gapless, `previous_hash` is the predecessor's `entry_hash`, and
    `entry_hash` covers this entry's canonical content (see `chain.entry_content`). On PostgreSQL a trigger
    refuses UPDATE and DELETE on the table as well (migration 0005).
    """

    sequence = models.PositiveBigIntegerField(unique=True, editable=False, help_text="Position in the chain: 1, 2, 3, ... with no gaps.")
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    # No database constraint and no cascade: the actor's id is part of the hashed content, so it must survive the
    # user's deletion unchanged (SET_NULL would rewrite history and break the chain).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    actor_name = models.CharField(max_length=150, help_text="Copied so the record survives the user's deletion.")
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=300)
    registered_model_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, default="", help_text="X-Request-ID of the web or API request, if any.")
    previous_hash = models.CharField(max_length=64, editable=False)
    entry_hash = models.CharField(max_length=64, editable=False)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-sequence"]
        indexes = [models.Index(fields=["object_type", "object_id"])]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"#{self.sequence} {self.created_at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.object_repr}"

    # Overriding save() and delete() is right here and nowhere else in the project: append-only is an invariant
    # of the row itself, not business logic, and it must hold whichever code path touches the model.
    def save(self, **kwargs):
        if not self._state.adding or kwargs.get("force_update") or kwargs.get("update_fields") is not None:
            raise AppendOnlyError(_WRITE_THROUGH)
        if not (self.sequence and self.entry_hash):
            raise AppendOnlyError(_WRITE_THROUGH)
        super().save(**{**kwargs, "force_insert": True})

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(_WRITE_THROUGH)
