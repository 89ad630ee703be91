import secrets
from collections.abc import Iterable
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.audit import services as audit

from .models import ApiToken, TokenScope, token_digest

TOKEN_PREFIX = "mr_"


@transaction.atomic
def api_token_create(
    *,
    user,
    name: str,
    scope: str = TokenScope.READ,
    expires_at: datetime | None = None,
    models: Iterable | None = None,
) -> tuple[ApiToken, str]:
    """Create a token and return it with its secret, which is not stored and cannot be shown again.

    `scope` defaults to read only, what a deployment pipeline needs. `models`, when given (even empty), limits the
    token to those registered models; the caller offers only models the user may view, and the permission helper
    intersects with the user's permissions anyway, so a limit never widens anything.
    """
    if scope not in TokenScope.values:
        raise ValidationError({"scope": [f"Choose one of {', '.join(TokenScope.values)}."]})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": ["The expiry must be in the future."]})
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name.strip() or "token",
        prefix=raw[:10],
        digest=token_digest(raw),
        scope=scope,
        expires_at=expires_at,
        limited_to_models=models is not None,
    )
    chosen = sorted(models or [], key=lambda model: model.name)
    if chosen:
        token.allowed_models.set(chosen)
    audit.record(
        actor=user,
        obj=token,
        action="api_token.created",
        after={
            "name": token.name,
            "prefix": token.prefix,
            "scope": token.scope,
            "expires_at": expires_at.isoformat() if expires_at else None,
            "models": [model.name for model in chosen] if models is not None else None,
        },
    )
    return token, raw


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit.record(actor=actor, obj=token, action="api_token.revoked", before={"name": token.name})
    return token
