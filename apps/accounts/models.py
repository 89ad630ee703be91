import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


def token_digest(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


class TokenScope(models.TextChoices):
    """What a token may do, within what its user may do (apps.models.permissions applies it). Ordered narrowest first."""

    READ = "read", "Read only"
    REGISTER = "register", "Register versions"
    FULL = "full", "Full"


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 is stored; the secret is shown once, at creation.

    A token never grants more than its user holds: its scope and model limit only take away.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="First characters of the token, to tell tokens apart.")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    scope = models.CharField(max_length=16, choices=TokenScope.choices, default=TokenScope.READ)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Refused from this instant on; empty: never expires.")
    # A flag besides the list, so that a token whose chosen models are all deleted sees none rather than all.
    limited_to_models = models.BooleanField(default=False)
    allowed_models = models.ManyToManyField("models.RegisteredModel", blank=True, related_name="+")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


@dataclass(frozen=True)
class TokenGrant:
    """The token a request authenticated with, as the permission helper reads it (DRF's `request.auth`).

    The authentication class attaches it to the user it returns (`user.active_token`), so that every check made
    for that user — views, services, selectors — applies the same scope and model limit.
    """

    id: int
    scope: str
    expires_at: datetime | None
    model_ids: frozenset[int] | None  # None: every model the user may see


def active_token(user) -> TokenGrant | None:
    """The token the user authenticated with in this request; None for sessions and for users loaded any other way."""
    return getattr(user, "active_token", None)


class TeamLeads(models.Model):
    """A team (an auth group) and the group of its leads. Leads approve stage changes on every model the team owns:
    the leads group is granted *view* and *approve transitions* when a model is created in the team or moved to it."""

    team = models.OneToOneField("auth.Group", on_delete=models.CASCADE, related_name="leads_link")
    leads = models.OneToOneField("auth.Group", on_delete=models.PROTECT, related_name="leads_of")

    class Meta:
        verbose_name_plural = "team leads"

    def __str__(self) -> str:
        return f"{self.team.name}: {self.leads.name}"


class IdempotencyRecord(models.Model):
    """The answer to one write sent with an Idempotency-Key, kept so that a retry gets it again (apps.accounts.idempotency).

    Written in the write's own transaction: a committed write always has its answer here.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the request: method, path and body (or its manifest).")
    status_code = models.PositiveSmallIntegerField()
    body = models.TextField(help_text="The JSON answer exactly as sent, so a replay is byte for byte the same.")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_once_per_user")]

    def __str__(self) -> str:
        return f"{self.key} ({self.status_code})"
